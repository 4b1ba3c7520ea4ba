"""The state one service process keeps: the ledger, the KPI catalog, the authenticator, read caches.

Nothing here decides anything: routes call the library (submission, statements, incidents, report,
ledger) exactly as the CLI does, inside `recording_via` so each appended entry names who asked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import CharterError
from ..incidents import ACTIVE, IncidentBook, kept_book
from ..kpis import KpiCatalog
from ..ledger import Ledger, SigningKey
from ..ledger.checkpoints import checkpoint_due, make_checkpoint
from ..notify import ChannelNotifier
from ..policy.compiler import PolicyCompiler
from .auth import Authenticator
from .oidc import OIDCVerifier
from .settings import ServiceSettings

__all__ = ["Service"]


class Service:
    """One process's view of the ledger it serves."""

    def __init__(self, settings: ServiceSettings, *, ledger: Ledger | None = None,
                 oidc: OIDCVerifier | None = None) -> None:
        self.settings = settings
        self.ledger = ledger or Ledger.open(settings.database_url, log_key=SigningKey.load(settings.ledger_key))
        if self.ledger.log_key is None:
            raise ValueError("the service appends: open its ledger with the log key")
        #: the service holds the log key, so its public half is the pinned key verification uses
        self.log_public_key = self.ledger.log_key.public
        if settings.kpis is not None:
            # Bundles are read with the custom KPIs the ledger's policy activation recorded, never a file's.
            raise CharterError.single("kpis_not_active", "custom KPIs are recorded with the policy set "
                                      "(`charter policy activate` records the folder's kpis.yaml); the service "
                                      "reads them from the ledger and takes no KPI file", file=str(settings.kpis))
        self._compiled_for: tuple[KpiCatalog, PolicyCompiler] | None = None
        if oidc is None and settings.oidc is not None:
            oidc = OIDCVerifier(settings.oidc)
        self.authenticator = Authenticator(self.ledger, oidc)
        self.notifier = ChannelNotifier(settings.notifications_log)
        self._checkpoint_lock = threading.Lock()

    @property
    def catalog(self) -> KpiCatalog:
        """The KPI catalog in force: built-in plus the custom KPIs the ledger's policy activations recorded."""
        from ..authority import active_catalog

        return active_catalog(self.ledger)

    @property
    def compiler(self) -> PolicyCompiler:
        """The policy compiler for the catalog in force (one per catalog: compiled sets are cached by compiler)."""
        from ..submission import default_compiler

        catalog = self.catalog
        if self._compiled_for is None or self._compiled_for[0] is not catalog:
            self._compiled_for = (catalog, default_compiler(catalog))
        return self._compiled_for[1]

    @contextmanager
    def incidents(self) -> Iterator[IncidentBook]:
        """The incident book folded up to the ledger's head (the one submissions keep); read it inside the block."""
        books = kept_book(self.ledger)
        with books.lock:
            yield books.advanced_to(self.ledger, self.ledger.size())

    def open_incidents_by_stage(self) -> tuple[int, dict[str, int]]:
        """The ledger's size and the open incidents by state, for the metrics endpoint."""
        size = self.ledger.size()
        books = kept_book(self.ledger)
        with books.lock:
            counts: dict[str, int] = {}
            for incident in books.advanced_to(self.ledger, size).incidents.values():
                if incident.state in ACTIVE:
                    counts[incident.state.value] = counts.get(incident.state.value, 0) + 1
            return size, counts

    def after_append(self) -> None:
        """Sign a checkpoint when enough entries arrived since the last one (one thread at a time per process)."""
        if not self._checkpoint_lock.acquire(blocking=False):
            return  # another request of this process is signing one now
        try:
            if checkpoint_due(self.ledger, self.settings.checkpoint_every):
                make_checkpoint(self.ledger)
        finally:
            self._checkpoint_lock.release()
