"""Where Charter's built-in data lives: inside the wheel, or at the top of a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def builtin_dir(name: str) -> Path:
    """The built-in data folder `name` (``policies``, ``frameworks`` or ``evidence``).

    An installed wheel carries it as ``charter/_data/NAME``; an editable install or a checkout
    uses the repository's top-level ``NAME/``.
    """
    packaged = _PACKAGE_DIR / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE_DIR.parent.parent / name


def package_file(name: str) -> Path:
    """A data file shipped inside the package itself, such as the KPI catalog."""
    return _PACKAGE_DIR / name
