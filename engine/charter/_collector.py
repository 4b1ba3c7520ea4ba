"""Pausing Python's cyclic garbage collector around bulk work that makes millions of acyclic objects."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the duration of a bulk computation.

    A back-test or a report over a large portfolio allocates millions of short-lived tuples, dicts,
    lists and models, none in cycles; each allocation burst would otherwise trigger collections
    that rescan everything alive (measured: about 40% of a back-test's time, and of the CPU time of
    building and rendering the three reports of 300 systems). Reference counting still frees everything as it goes;
    only garbage in reference cycles waits for the collector's next run.

    The pause is process-wide: ``gc.disable()`` affects every thread, not only the caller's. Nested
    and concurrent uses (threads of the service building reports at once) are counted: the collector
    is resumed when the last of them ends, and only if it was enabled when the first began.
    """
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
