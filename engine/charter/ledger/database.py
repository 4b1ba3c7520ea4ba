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
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import NullPool

from ..errors import CharterError
from .layout import HEAD_TABLES, LEDGER_TABLES, SCHEMA_HEAD
from .layout import default_url as default_url  # re-exported: where callers have always found it

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
WRITE_OPTION = "charter_write"
#: How long a writer waits for another writer's lock before giving up with `ledger_busy`, in seconds.
WRITE_LOCK_TIMEOUT = 30.0


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine with the transaction behaviour the append path relies on.

    Args:
        url: a SQLite or PostgreSQL URL.
        read_only: open for reading only. SQLite opens the file with ``mode=ro`` (it must exist;
            nothing is created or changed, not even the journal mode) and PostgreSQL sessions are
            read-only, so a reading command cannot alter the database it inspects.

    Raises:
        CharterError: ``database_url`` for a URL that is not SQLite or PostgreSQL, ``database_driver``
            when its driver is not installed, ``ledger_missing`` for a read-only SQLite file that
            does not exist.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise CharterError.single("database_url", f"not a database URL: {_shorten(url)!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, read_only)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        connect_args = {}
        if read_only:
            # connect_args replace the URL's own ``options`` (a search_path, say): keep them in front.
            given = parsed.query.get("options")
            connect_args["options"] = " ".join([*([given] if isinstance(given, str) else given or []),
                                                "-c default_transaction_read_only=on"])
        return _create(parsed, isolation_level="READ COMMITTED", pool_pre_ping=True, connect_args=connect_args)
    raise CharterError.single("database_url", f"unsupported database {backend!r}: use sqlite or postgresql")


def _create(parsed: URL, **options: Any) -> Engine:
    try:
        return create_engine(parsed, **options)
    except (ImportError, NoSuchModuleError) as exc:
        raise CharterError.single("database_driver", f"the database driver {parsed.drivername!r} is not available "
                                  f"({exc}); use sqlite:///PATH or postgresql://... (psycopg 3)") from exc


def _sqlite_engine(parsed: URL, read_only: bool) -> Engine:
    database = parsed.database
    in_memory = not database or database == ":memory:"
    if read_only and not in_memory:
        assert database is not None
        if not Path(database).is_file():
            raise CharterError.single("ledger_missing", "no ledger database here; run `charter ledger init` "
                                      "(only init creates a ledger)", file=database)
        # A URI filename opened read-only: SQLite cannot create, extend or convert the file.
        parsed = parsed.set(database=f"file:{quote(str(Path(database).resolve()))}?mode=ro",
                            query={**parsed.query, "uri": "true"})
    elif not in_memory:
        assert database is not None
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CharterError.single("database_unavailable", f"cannot create the ledger's directory: "
                                      f"{exc.strerror}", file=database) from exc
    engine = _create(parsed, connect_args={"timeout": WRITE_LOCK_TIMEOUT}, poolclass=NullPool)
    _configure_sqlite(engine, read_only)
    return engine


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def _configure_sqlite(engine: Engine, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit, late BEGIN: we issue our own
        cursor = dbapi_connection.cursor()
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        else:
            # WAL lets readers keep reading a snapshot while a writer appends.
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


def database_error(exc: DBAPIError) -> CharterError:
    """A located error for an operational database failure: busy, read-only or unreachable."""
    text = str(exc.orig).lower()
    if "locked" in text or "busy" in text:
        return CharterError.single("ledger_busy", f"another process held the ledger's write lock for more than "
                                   f"{WRITE_LOCK_TIMEOUT:.0f} s; nothing was written, try again")
    if "readonly" in text or "read-only" in text or "read only" in text:
        return CharterError.single("database_readonly", f"the ledger database cannot be written ({exc.orig}); "
                                   "nothing was written")
    return CharterError.single("database_unavailable", f"the ledger database failed: {exc.orig}")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that intends to write: on SQLite it holds the write lock from its first statement."""
    try:
        with engine.connect().execution_options(**{WRITE_OPTION: True}) as connection, connection.begin():
            yield connection
    except OperationalError as exc:
        raise database_error(exc) from exc


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def code_revision() -> str:
    """The newest schema revision this version of Charter knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def ensure_schema(engine: Engine, *, create: bool, read_only: bool = False) -> None:
    """Create or upgrade the schema; refuse a database written by a newer Charter or by something else.

    Args:
        engine: from `make_engine`.
        create: create the schema in an empty database (only `charter ledger init` and the demo do).
        read_only: check, never change: a ledger at an older revision is refused rather than upgraded.

    Raises:
        CharterError: ``schema_too_new`` when the database's revision is unknown to this code;
            ``not_a_ledger`` for a database that holds other tables or no Charter schema;
            ``ledger_missing`` when there is no ledger and `create` is false; ``schema_outdated``
            for an older ledger opened read-only.
    """
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            current = _stored_revision(connection) if "alembic_version" in tables else None
    except DBAPIError as exc:
        raise CharterError.single("database_unavailable", f"cannot open the ledger database: {exc.orig}") from exc
    if current == SCHEMA_HEAD and tables >= HEAD_TABLES:
        return  # what the checks below conclude for a ledger at the newest revision, without importing alembic
    from alembic import command
    from alembic.script import ScriptDirectory

    config = _alembic_config()
    script = ScriptDirectory.from_config(config)
    known = {revision.revision for revision in script.walk_revisions()}
    if current is not None and current not in known:
        if not tables >= LEDGER_TABLES:
            raise CharterError.single("not_a_ledger", "this database is not a Charter ledger (it holds another "
                                      f"application's schema revision {current!r}); nothing was changed")
        raise CharterError.single("schema_too_new", f"the ledger uses schema revision {current!r}, which this "
                                  f"version of Charter does not know (newest known: {script.get_current_head()!r}); "
                                  "upgrade Charter before using this ledger")
    if current is None:
        if tables:
            raise CharterError.single("not_a_ledger", f"this database is not a Charter ledger (it holds "
                                      f"{len(tables)} other tables and no Charter schema); nothing was changed")
        if not create:
            raise CharterError.single("ledger_missing", "no ledger here yet; run `charter ledger init` or "
                                      "`charter demo`")
    if current != script.get_current_head():
        if read_only:
            raise CharterError.single("schema_outdated", f"the ledger uses the older schema revision {current!r}; "
                                      "run a writing command (e.g. `charter ledger checkpoint`) to upgrade it")
        with write_transaction(engine) as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")


def _stored_revision(connection: Connection) -> str | None:
    """The one revision in ``alembic_version``, read without alembic; None if there is not exactly one."""
    revisions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return revisions[0] if len(revisions) == 1 else None


