"""``python -m charter`` runs the CLI."""

from ._entry import main

main()
