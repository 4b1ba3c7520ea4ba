"""Publishing a report file: atomically, and taken back if issuing it fails.

One implementation for `charter report` (a file the user names) and the service (its report store),
so a report's file and its ``report.issued`` entry land together or not at all.
"""

import os
import stat
from pathlib import Path

from .errors import CharterError

__all__ = ["ReportFile"]


class ReportFile:
    """Publishes a report at `path` atomically, and takes it back if issuing it fails.

    Entering checks the destination and creates the temporary file beside it, so an unwritable path
    fails before any checkpoint is signed. `publish` renames the finished bytes into place (a reader
    never sees half a report); leaving the block with an error restores whatever `path` held before.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._temporary: Path | None = None
        self._backup: Path | None = None
        self._published = False

    def _fail(self, exc: OSError, path: Path | None = None) -> CharterError:
        return CharterError.single("write_failed", exc.strerror or str(exc), file=str(path or self.path))

    def __enter__(self) -> "ReportFile":
        import tempfile

        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise self._fail(exc) from exc
        if mode is not None and not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a symbolic link" if stat.S_ISLNK(mode) else "not a file"
            raise CharterError.single("write_failed", f"the destination is {kind}; name a regular file",
                                      file=str(self.path))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
            os.close(handle)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(name, 0o666 & ~umask)  # mkstemp makes the file private; a report is meant to be shared
        except OSError as exc:
            raise self._fail(exc) from exc
        self._temporary = Path(name)
        return self

    def publish(self, data: bytes) -> None:
        """Write `data` and move it into place, keeping a hard link to the previous file until the block ends."""
        assert self._temporary is not None, "publish inside the with block"
        try:
            with self._temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if self.path.exists():
                self._backup = self._temporary.with_suffix(".previous")
                os.link(self.path, self._backup)
            os.replace(self._temporary, self.path)
            self._published = True
        except OSError as exc:
            raise self._fail(exc) from exc

    def withdraw(self) -> None:
        """Remove whatever `path` holds (an earlier report's file that this one does not replace), restorably."""
        try:
            if self.path.exists():
                assert self._temporary is not None, "withdraw inside the with block"
                self._backup = self._temporary.with_suffix(".previous")
                os.link(self.path, self._backup)
                self.path.unlink()
                self._published = True
        except OSError as exc:
            raise self._fail(exc) from exc

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is not None and self._published:
            if self._backup is not None:
                os.replace(self._backup, self.path)
                self._backup = None
            else:
                self.path.unlink(missing_ok=True)
        for leftover in (self._temporary, self._backup):
            if leftover is not None:
                leftover.unlink(missing_ok=True)
