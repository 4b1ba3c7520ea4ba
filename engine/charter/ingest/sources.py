"""Where the rows come from, and how an engine opens them.

A source is a Parquet, CSV or JSON-lines file or a folder of them (read by DuckDB, embedded, or by
Spark), a PostgreSQL table (``postgresql://user@host:5432/database/table``, read inside PostgreSQL)
or a table of a Spark catalog (``spark:database.table``). Whatever the engine, the rows stay in it:
Charter sends Ibis expressions and receives aggregates.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from ..errors import CharterError
from .mapping import file_digest

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

Engine = Literal["duckdb", "spark", "postgres"]
ENGINES: tuple[Engine, ...] = ("duckdb", "spark", "postgres")
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "json", ".ndjson": "json",
           ".json": "json"}
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


@dataclass(frozen=True)
class Window:
    """A half-open time window [start, end) in UTC."""

    start: datetime.datetime
    end: datetime.datetime

    @classmethod
    def parse(cls, text: str, *, option: str = "--window") -> Window:
        """``2026-06`` (a calendar month), ``2026-06-03`` (a day) or ``START/END`` (ISO 8601 instants).

        Raises:
            CharterError: ``bad_window``, naming the option and what was wrong.
        """
        text = text.strip()
        try:
            if match := _MONTH.match(text):
                year, month = int(match[1]), int(match[2])
                start = datetime.datetime(year, month, 1, tzinfo=datetime.UTC)
                end = datetime.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=datetime.UTC)
                return cls(start, end)
            if match := _DAY.match(text):
                start = datetime.datetime(int(match[1]), int(match[2]), int(match[3]), tzinfo=datetime.UTC)
                return cls(start, start + datetime.timedelta(days=1))
            if "/" in text:
                first, _, second = text.partition("/")
                start, end = (_instant(first), _instant(second))
                if end <= start:
                    raise ValueError(f"its end {second} is not after its start {first}")
                return cls(start, end)
        except ValueError as exc:
            raise CharterError.single("bad_window", f"{option} {text!r}: {exc}") from None
        raise CharterError.single("bad_window", f"{option} {text!r}: give a month (2026-06), a day (2026-06-03) "
                                  "or START/END as ISO 8601 instants with a time zone")

    def label(self) -> str:
        """``2026-06-01T00:00:00Z/2026-07-01T00:00:00Z``."""
        return f"{_iso(self.start)}/{_iso(self.end)}"


def _instant(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text} has no time zone (add Z or +00:00)")
    return moment.astimezone(datetime.UTC)


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Source:
    """A parsed SOURCE argument: files (with their format), a PostgreSQL table or a Spark table."""

    uri: str
    kind: Literal["files", "postgres", "spark"]
    files: tuple[Path, ...] = ()
    format: str | None = None
    url: str | None = None
    table: str | None = None
    schema: str | None = None
    root: Path | None = None

    @property
    def default_engine(self) -> Engine:
        """The engine that reads this source where it lies: DuckDB for files, PostgreSQL for its tables."""
        return {"files": "duckdb", "postgres": "postgres", "spark": "spark"}[self.kind]  # type: ignore[return-value]

    def redacted(self) -> str:
        """The URI without a password, as it is recorded in a bundle."""
        if self.kind != "postgres":
            return self.uri
        parts = urlsplit(self.uri)
        if parts.password is None:
            return self.uri
        netloc = f"{parts.username}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def parse_source(text: str, *, base: Path | None = None, option: str = "SOURCE") -> Source:
    """Resolve a SOURCE argument; relative paths are taken from `base` (the working directory by default).

    Raises:
        CharterError: ``source_not_found``, ``bad_source`` or ``not_a_file``.
    """
    if text.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        parts = urlsplit(text)
        pieces = [p for p in parts.path.split("/") if p]
        if len(pieces) != 2:
            raise CharterError.single("bad_source", f"{option} {text!r}: give postgresql://user@host:port/DATABASE/"
                                      "TABLE (or DATABASE/SCHEMA.TABLE)")
        database, table = pieces
        schema, _, name = table.rpartition(".")
        for ident in (name, *([schema] if schema else [])):
            if not _IDENT.match(ident):
                raise CharterError.single("bad_source", f"{option}: {ident!r} is not a plain SQL identifier")
        url = urlunsplit(("postgresql", parts.netloc, "/" + database, parts.query, ""))
        return Source(uri=text, kind="postgres", url=url, table=name, schema=schema or None)
    if text.startswith("spark:"):
        name = text.removeprefix("spark:")
        if not all(_IDENT.match(p) for p in name.split(".")) or name.count(".") > 2:
            raise CharterError.single("bad_source", f"{option} {text!r}: give spark:TABLE or spark:DATABASE.TABLE")
        return Source(uri=text, kind="spark", table=name)
    path = Path(text) if base is None or Path(text).is_absolute() else base / text
    try:
        info = path.stat()
    except FileNotFoundError:
        raise CharterError.single("source_not_found", "no such file or folder", file=text) from None
    except OSError as exc:
        raise CharterError.single("source_unreadable", exc.strerror or str(exc), file=text) from None
    if stat.S_ISDIR(info.st_mode):
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in FORMATS and p.is_file()
                       and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts))
        if not files:
            raise CharterError.single("source_empty", f"no data files ({', '.join(sorted(FORMATS))}) in the folder",
                                      file=text)
        formats = {FORMATS[p.suffix.lower()] for p in files}
        if len(formats) > 1:
            raise CharterError.single("bad_source", f"the folder mixes formats ({', '.join(sorted(formats))}): "
                                      "one format per source", file=text)
        return Source(uri=text, kind="files", files=tuple(files), format=formats.pop(), root=path)
    if not stat.S_ISREG(info.st_mode):
        raise CharterError.single("not_a_file", "is not a regular file or a folder", file=text)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CharterError.single("bad_source", f"unknown data format {path.suffix or '(no suffix)'!r}: use "
                                  f"{', '.join(sorted(FORMATS))}", file=text)
    return Source(uri=text, kind="files", files=(path,), format=fmt)


# -- engines ---------------------------------------------------------------------------------------

@dataclass
class Opened:
    """A source opened on an engine: its Ibis table, the backend, and how to close it."""

    table: ir.Table
    backend: BaseBackend
    engine: Engine


def open_source(source: Source, engine: Engine, *, spark: Any = None, name: str = "rows") -> Opened:
    """Open `source` as an Ibis table on `engine`; nothing is read yet.

    Raises:
        CharterError: ``engine_unavailable`` when the engine's package is not installed, ``bad_source`` when
        the engine cannot read this kind of source, ``source_unreadable`` when the engine cannot open it.
    """
    if source.kind == "postgres" and engine != "postgres":
        raise CharterError.single("bad_source", f"{source.redacted()} is a PostgreSQL table: it is read by "
                                  "--engine postgres, where it lies")
    if source.kind == "spark" and engine != "spark":
        raise CharterError.single("bad_source", f"{source.uri} is a Spark table: use --engine spark")
    if source.kind == "files" and engine == "postgres":
        raise CharterError.single("bad_source", "--engine postgres reads PostgreSQL tables; files are read by "
                                  "duckdb or spark")
    try:
        if engine == "duckdb":
            return _open_duckdb(source, name)
        if engine == "spark":
            return _open_spark(source, spark, name)
        return _open_postgres(source)
    except CharterError:
        raise
    except ImportError as exc:
        hint = " (pip install 'charter-governance[spark]')" if engine == "spark" else ""
        raise CharterError.single("engine_unavailable", f"the {engine} engine is not installed{hint}: {exc}") from None
    except Exception as exc:  # the engines raise their own families; the reader needs the message, not a trace
        raise CharterError.single("source_unreadable", f"{engine} could not open {source.redacted()}: "
                                  f"{engine_message(exc)}") from None


#: lines of an engine's message that say which file or what cause, kept after its first line
_TELLING = re.compile(r"\b(file|path|encod|utf-8|column|schema|mismatch|expected|found|line)\b", re.I)


def engine_message(exc: BaseException) -> str:
    """The engine's message, bounded: its first line, and the later lines that name the file or the cause
    (DuckDB puts "file = ..." and "not utf-8 encoded" lines after a first line that says neither)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    telling = [line for line in lines[1:] if _TELLING.search(line)][:4]
    return "; ".join([lines[0], *telling])[:500]


def _open_duckdb(source: Source, name: str) -> Opened:
    import ibis

    backend = ibis.duckdb.connect()
    files = [str(p) for p in source.files]
    if source.format == "parquet":
        table = backend.read_parquet(files, table_name=name)
    elif source.format == "csv":
        table = backend.read_csv(files, table_name=name)
    else:
        table = backend.read_json(files, table_name=name, format="newline_delimited")
    return Opened(table, backend, "duckdb")


def spark_session(master: str | None = None) -> Any:
    """A Spark session: the active one, or a new one (``local[2]`` unless `master` names a cluster), in UTC."""
    import os

    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    builder = (SparkSession.builder.master(master or os.environ.get("CHARTER_SPARK_MASTER", "local[2]"))
               .appName("charter-ingest")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "8")
               .config("spark.sql.ansi.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false"))  # progress bars would garble the CLI's output
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _open_spark(source: Source, spark: Any, name: str) -> Opened:
    import ibis

    session = spark or spark_session()
    backend = ibis.pyspark.connect(session)
    if source.kind == "spark":
        return Opened(backend.table(source.table or ""), backend, "spark")
    # Absolute: the JVM resolves relative paths against its own start directory, not Python's current one.
    files = [str(p.resolve()) for p in source.files]
    reader = session.read
    if source.format == "parquet":
        frame = reader.parquet(*files)
    elif source.format == "csv":
        frame = reader.options(header=True, inferSchema=True).csv(files)
    else:
        frame = reader.json(files)
    view = f"charter_{name}_{hashlib.sha256('|'.join(files).encode()).hexdigest()[:12]}"
    frame.createOrReplaceTempView(view)
    return Opened(backend.table(view), backend, "spark")


def _open_postgres(source: Source) -> Opened:
    import ibis

    parts = urlsplit(source.url or "")
    backend = ibis.postgres.connect(host=parts.hostname or "localhost", port=parts.port or 5432,
                                    user=parts.username, password=parts.password,
                                    database=parts.path.lstrip("/"))
    table = backend.table(source.table or "", database=source.schema) if source.schema else \
        backend.table(source.table or "")
    return Opened(table, backend, "postgres")


# -- digests -----------------------------------------------------------------------------------------

def files_digests(source: Source) -> list[tuple[str, str]]:
    """(path as recorded, SHA-256 of its bytes) for every file of a file source; a folder's files by relative path."""
    if source.root is None:
        return [(source.uri, file_digest(path)) for path in source.files]
    return [(f"{source.uri.rstrip('/')}/{path.relative_to(source.root).as_posix()}", file_digest(path))
            for path in source.files]


def rows_digest(table: ir.Table, columns: list[str]) -> str:
    """SHA-256 of the selected rows in a canonical text form, for sources that are tables, not files.

    The rows are streamed in a total order (every selected column) as Arrow batches; each value is cast to
    text by Arrow (shortest round-trip form for floats, ISO 8601 for times), nulls written as ``\\N``,
    fields separated by U+001F and rows by a newline. Streaming hashes the data without holding it.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    digest = hashlib.sha256()
    ordered = table.select(*columns).order_by(*columns)
    for batch in ordered.to_pyarrow_batches(chunk_size=65_536):
        texts = []
        for column in batch.columns:
            if pa.types.is_timestamp(column.type):
                column = pc.cast(column, pa.timestamp("us", tz="UTC"))
            texts.append(pc.fill_null(pc.cast(column, pa.string()), "\\N"))
        joined = pc.binary_join_element_wise(*texts, "\x1f")
        for value in joined.to_pylist():
            digest.update(value.encode("utf-8"))
            digest.update(b"\n")
    return digest.hexdigest()
