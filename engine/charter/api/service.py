"""The state one service process keeps: the ledger, the KPI catalog, the authenticator, read caches.

Nothing here decides anything: routes call the library (submission, statements, incidents, report,
ledger) exactly as the CLI does, inside `recording_via` so each appended entry names who asked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..incidents import ACTIVE, INCIDENT_TYPES, IncidentBook, apply
from ..kpis import KpiCatalog, load_catalog
from ..ledger import Ledger, SigningKey
from ..ledger.checkpoints import checkpoint_due, make_checkpoint
from ..notify import ChannelNotifier
from ..policy.compiler import PolicyCompiler
from .auth import Authenticator
from .oidc import OIDCVerifier
from .settings import ServiceSettings

__all__ = ["Service"]


@dataclass
class _BookCache:
    size: int = 0
    book: IncidentBook = field(default_factory=IncidentBook)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Service:
    """One process's view of the ledger it serves."""

    def __init__(self, settings: ServiceSettings, *, ledger: Ledger | None = None,
                 oidc: OIDCVerifier | None = None) -> None:
        from ..submission import default_compiler

        self.settings = settings
        self.ledger = ledger or Ledger.open(settings.database_url, log_key=SigningKey.load(settings.ledger_key))
        if self.ledger.log_key is None:
            raise ValueError("the service appends: open its ledger with the log key")
        #: the service holds the log key, so its public half is the pinned key verification uses
        self.log_public_key = self.ledger.log_key.public
        self.catalog: KpiCatalog = load_catalog(settings.kpis)
        self.compiler: PolicyCompiler = default_compiler(self.catalog)
        if oidc is None and settings.oidc is not None:
            oidc = OIDCVerifier(settings.oidc)
        self.authenticator = Authenticator(self.ledger, oidc)
        self.notifier = ChannelNotifier(settings.notifications_log)
        self._book = _BookCache()
        self._checkpoint_lock = threading.Lock()

    @contextmanager
    def incidents(self) -> Iterator[IncidentBook]:
        """The incident book folded up to the ledger's head; read it inside the block (it is updated in place)."""
        with self._book.lock:
            size = self.ledger.size()
            if size > self._book.size:
                try:
                    for entry in self.ledger.entries(self._book.size, size, types=INCIDENT_TYPES):
                        apply(self._book.book, entry)
                except BaseException:
                    # half folded: start again from nothing next time rather than fold entries twice
                    self._book.book, self._book.size = IncidentBook(), 0
                    raise
                self._book.size = size
            yield self._book.book

    def open_incidents_by_stage(self) -> tuple[int, dict[str, int]]:
        """The ledger's size and the open incidents by state, for the metrics endpoint."""
        with self.incidents() as book:
            counts: dict[str, int] = {}
            for incident in book.incidents.values():
                if incident.state in ACTIVE:
                    counts[incident.state.value] = counts.get(incident.state.value, 0) + 1
            return self._book.size, counts

    def after_append(self) -> None:
        """Sign a checkpoint when enough entries arrived since the last one (one thread at a time per process)."""
        if not self._checkpoint_lock.acquire(blocking=False):
            return  # another request of this process is signing one now
        try:
            if checkpoint_due(self.ledger, self.settings.checkpoint_every):
                make_checkpoint(self.ledger)
        finally:
            self._checkpoint_lock.release()
