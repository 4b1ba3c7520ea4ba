"""Engines for the ledger database: SQLite (default) or PostgreSQL, and the schema version gate.

SQLite: pysqlite starts a transaction only at the first write, so a plain ``engine.begin()`` reads
the head outside any transaction and two writers fork the chain. The listeners below take the write
lock with ``BEGIN IMMEDIATE`` before anything is read. PostgreSQL runs at READ COMMITTED, where the
append path's ``SELECT ... FOR UPDATE`` on the head row serializes writers; under REPEATABLE READ
that pattern forks, so the engine pins the isolation level.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from ..errors import CharterError

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
WRITE_OPTION = "charter_write"


def default_url(directory: Path | None = None) -> str:
    """``sqlite:///.charter/ledger.db`` under `directory` (default: the working directory)."""
    base = (directory or Path.cwd()) / ".charter"
    return f"sqlite:///{base / 'ledger.db'}"


def make_engine(url: str) -> Engine:
    """An engine with the transaction behaviour the append path relies on.

    Raises:
        CharterError: ``database_url`` for a URL that is not SQLite or PostgreSQL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise CharterError.single("database_url", f"not a database URL: {url!r}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CharterError.single("database_unavailable", f"cannot create the ledger's directory: "
                                          f"{exc.strerror}", file=parsed.database) from exc
        engine = create_engine(parsed, connect_args={"timeout": 30}, poolclass=NullPool)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, isolation_level="READ COMMITTED", pool_pre_ping=True)
    raise CharterError.single("database_url", f"unsupported database {parsed.get_backend_name()!r}: use sqlite "
                              "or postgresql")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit, late BEGIN: we issue our own
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a receipt is only issued for durable rows
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # Writers take the write lock before reading the head; readers must not, or a reader inside
        # a writer's transaction (the append builder) would wait for itself.
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that intends to write: on SQLite it holds the write lock from its first statement."""
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as connection, connection.begin():
        yield connection


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def code_revision() -> str:
    """The newest schema revision this version of Charter knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def ensure_schema(engine: Engine, *, create: bool) -> None:
    """Create or upgrade the schema; refuse a database written by a newer Charter.

    Raises:
        CharterError: ``schema_too_new`` when the database's revision is unknown to this code;
            ``ledger_missing`` when there is no ledger and `create` is false.
    """
    config = _alembic_config()
    script = ScriptDirectory.from_config(config)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        raise CharterError.single("database_unavailable", f"cannot open the ledger database: {exc.orig}") from exc
    known = {revision.revision for revision in script.walk_revisions()}
    if current is not None and current not in known:
        raise CharterError.single("schema_too_new", f"the ledger uses schema revision {current!r}, which this "
                                  f"version of Charter does not know (newest known: {script.get_current_head()!r}); "
                                  "upgrade Charter before using this ledger")
    if current is None and not create:
        raise CharterError.single("ledger_missing", "no ledger here yet; run `charter ledger init` or `charter demo`")
    if current != script.get_current_head():
        with write_transaction(engine) as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
