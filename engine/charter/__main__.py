"""``python -m charter`` runs the CLI."""

from .cli import main

main()
