"""Strict readers for YAML and JSON documents that remember where each value came from.

YAML is read through the composed node tree so that every value has a line number and duplicate
keys are errors, not silent overwrites. JSON rejects duplicate keys and the non-standard constants
NaN and Infinity, which Python's json module accepts by default.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._limits import LIMITS
from .errors import CharterError, Diagnostic, Location, json_path

PathKey = tuple[str | int, ...]


@dataclass
class SourceMap:
    """Line numbers of the values of one document, keyed by their path of keys and indexes."""

    file: str
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: Iterable[str | int]) -> int | None:
        """The line of the value at `path`, or of its closest ancestor that has one."""
        key = tuple(path)
        while True:
            if key in self.lines:
                return self.lines[key]
            if not key:
                return None
            key = key[:-1]

    def location(self, path: Iterable[str | int], rule: str | None = None) -> Location:
        """A `Location` for the value at `path` in this document."""
        parts = tuple(path)
        return Location(file=self.file, line=self.line_of(parts), path=json_path(parts), rule=rule)


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader; composition gives us nodes with marks, construction stays safe.

    libyaml's parser (CSafeLoader) composes the same nodes with the same marks several times faster than
    the pure-Python one; without libyaml, the pure-Python loader is used.
    """


#: Nodes a document may expand to; aliases make small texts expand exponentially ("billion laughs").
MAX_YAML_NODES = 200_000


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0
        self.open: set[int] = set()


def _construct(node: yaml.Node, loader: _LineLoader, path: PathKey, smap: SourceMap,
               problems: list[Diagnostic], line: int | None = None, budget: _Budget | None = None) -> Any:
    budget = budget or _Budget()
    budget.nodes += 1
    if budget.nodes > MAX_YAML_NODES:
        raise yaml.constructor.ConstructorError(None, None, f"the document expands to more than {MAX_YAML_NODES} "
                                                "values (aliases?)", node.start_mark)
    if id(node) in budget.open:
        raise yaml.constructor.ConstructorError(None, None, "an alias refers to a value that contains it",
                                                node.start_mark)
    # A mapping entry is located at its key: for a block value that is the line a reader looks at.
    smap.lines[path] = line or node.start_mark.line + 1
    expected_tag = ("tag:yaml.org,2002:map" if isinstance(node, yaml.MappingNode)
                    else "tag:yaml.org,2002:seq" if isinstance(node, yaml.SequenceNode) else node.tag)
    if node.tag != expected_tag:
        # Collections are built here, not by the loader, so its tag check must be repeated.
        raise yaml.constructor.ConstructorError(None, None, f"unsupported YAML tag {node.tag!r}", node.start_mark)
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        budget.open.add(id(node))
        try:
            return _construct_collection(node, loader, path, smap, problems, budget)
        finally:
            budget.open.discard(id(node))
    return loader.construct_object(node, deep=True)


def _construct_collection(node: yaml.Node, loader: _LineLoader, path: PathKey, smap: SourceMap,
                          problems: list[Diagnostic], budget: _Budget) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                problems.append(Diagnostic("yaml_key", f"mapping keys must be scalars, got {key!r}",
                                           Location(smap.file, key_node.start_mark.line + 1, json_path(path))))
                continue
            key_str = key if isinstance(key, str) else str(key)
            if key_str in result:
                problems.append(Diagnostic(
                    "duplicate_key", f"duplicate key {key_str!r} (first on line "
                    f"{smap.lines.get((*path, key_str), '?')})",
                    Location(smap.file, key_node.start_mark.line + 1, json_path((*path, key_str)))))
                continue
            result[key_str] = _construct(value_node, loader, (*path, key_str), smap, problems,
                                         key_node.start_mark.line + 1, budget)
        return result
    return [_construct(item, loader, (*path, i), smap, problems, budget=budget) for i, item in enumerate(node.value)]


def parse_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document, returning the data and a map of its line numbers.

    Raises:
        CharterError: on a syntax error or duplicate keys, located by file and line.
    """
    smap = SourceMap(file)
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, smap
        problems: list[Diagnostic] = []
        data = _construct(node, loader, (), smap, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise CharterError.single("yaml_syntax", f"invalid YAML: {exc.problem or exc}", file=file,
                                  line=line) from exc
    except yaml.YAMLError as exc:
        raise CharterError.single("yaml_syntax", f"invalid YAML: {exc}", file=file) from exc
    except RecursionError as exc:
        raise CharterError.single("yaml_syntax", "invalid YAML: nested too deeply", file=file) from exc
    finally:
        loader.dispose()
    if problems:
        raise CharterError(problems)
    return data, smap


_STDIN = "-"


def read_bytes(path: Path | str, max_bytes: int | None = None) -> bytes:
    """Read a regular file (or standard input when `path` is ``-``) of at most `max_bytes` bytes.

    A FIFO, device, socket or directory is refused without blocking: the file is opened with
    ``O_NONBLOCK`` and checked with ``fstat`` on the open descriptor, so it cannot be swapped
    between the check and the read. ``/dev/zero`` or a writer-less FIFO therefore give a located
    error at once rather than an endless read or a hang.

    Raises:
        CharterError: ``file_not_found``, ``not_a_file``, ``file_too_large`` or ``file_unreadable``.
    """
    limit = LIMITS.max_bytes if max_bytes is None else max_bytes
    name = str(path)
    if name == _STDIN:
        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise CharterError.single("file_too_large", f"standard input exceeds {limit:,} bytes "
                                      "(set CHARTER_MAX_INPUT_BYTES to raise the limit)", file="<stdin>")
        return data
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise CharterError.single("file_not_found", "no such file", file=name) from exc
    except IsADirectoryError as exc:
        raise CharterError.single("not_a_file", "is a directory, expected a file", file=name) from exc
    except OSError as exc:
        raise CharterError.single("file_unreadable", exc.strerror or str(exc), file=name) from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise CharterError.single("not_a_file", "is a directory, expected a file", file=name)
        if not stat.S_ISREG(info.st_mode):
            raise CharterError.single("not_a_file", f"is a {_file_kind(info.st_mode)}, not a regular file; "
                                      "give a file (or - for standard input)", file=name)
        if info.st_size > limit:
            raise CharterError.single("file_too_large", f"{info.st_size:,} bytes exceed the limit of {limit:,} "
                                      "(set CHARTER_MAX_INPUT_BYTES to raise it)", file=name)
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # the file grew while we read it
                raise CharterError.single("file_too_large", f"more than {limit:,} bytes (set "
                                          "CHARTER_MAX_INPUT_BYTES to raise the limit)", file=name)
        return b"".join(chunks)
    except OSError as exc:
        raise CharterError.single("file_unreadable", exc.strerror or str(exc), file=name) from exc
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return kind
    return "special file"


def read_text(path: Path | str, max_bytes: int | None = None) -> str:
    """Read a UTF-8 regular file (see `read_bytes`), turning every problem into a located `CharterError`."""
    data = read_bytes(path, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CharterError.single("encoding", f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                                  file=str(path)) from exc


def regular_files(directory: Path, pattern: str) -> list[Path]:
    """The regular files under `directory` matching `pattern`, sorted; FIFOs, devices and sockets are skipped.

    ``Path.is_file`` follows symlinks and does not open the file, so walking never blocks.
    """
    return sorted(p for p in directory.rglob(pattern) if p.is_file())


def load_yaml_file(path: Path) -> tuple[Any, SourceMap]:
    """Read and parse a YAML file; see `parse_yaml`."""
    return parse_yaml(read_text(path), str(path))


class _DuplicateKey(ValueError):
    pass


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


#: Longer integers are refused (Python's own limit is 4300 digits; no KPI needs more than a few).
MAX_INT_DIGITS = 100


class _TooLong(ValueError):
    pass


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _TooLong(f"an integer of {len(text.lstrip('-'))} digits is too large")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # 1e999 is valid JSON syntax but overflows to infinity.
        raise ValueError(f"{text} overflows a 64-bit float")
    return value


def parse_json_strict(text: str | bytes, file: str | None = None) -> Any:
    """Parse JSON per RFC 8259: no duplicate keys, no NaN or Infinity.

    Raises:
        CharterError: ``json_syntax``, ``duplicate_key`` or ``non_finite_number``, with the line
            and, for duplicates, the key that repeats.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CharterError.single("encoding", f"not UTF-8 ({exc.reason} at byte {exc.start})",
                                      file=file) from exc
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant,
                          parse_float=_finite_float, parse_int=_bounded_int)
        if "\\u" in text and (where := _lone_surrogate_path(data)) is not None:
            # Valid JSON syntax, but not Unicode text: it can be neither canonicalized nor signed.
            raise CharterError.single("encoding", "a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff "
                                      "without its pair), which is not Unicode text", file=file, path=where)
        return data
    except _DuplicateKey as exc:
        raise CharterError.single("duplicate_key", f"duplicate key {exc.args[0]!r} in a JSON object",
                                  file=file, path=_find_duplicate_path(text, exc.args[0])) from exc
    except json.JSONDecodeError as exc:
        raise CharterError.single("json_syntax", f"invalid JSON: {exc.msg} (column {exc.colno})",
                                  file=file, line=exc.lineno) from exc
    except RecursionError as exc:
        raise CharterError.single("json_syntax", "invalid JSON: nested too deeply", file=file) from exc
    except ValueError as exc:
        # The constant may come before a syntax error later in the text; report that one then.
        try:
            path = _find_constant_path(text)
        except json.JSONDecodeError as syntax:
            raise CharterError.single("json_syntax", f"invalid JSON: {syntax.msg} (column {syntax.colno})",
                                      file=file, line=syntax.lineno) from syntax
        except (ValueError, RecursionError):
            path = None
        if isinstance(exc, _TooLong):
            raise CharterError.single("number_too_large", f"{exc} (at most {MAX_INT_DIGITS} digits)",
                                      file=file, path=path) from exc
        raise CharterError.single("non_finite_number", f"{exc}: NaN and Infinity are not allowed",
                                  file=file, path=path) from exc


def _lone_surrogate_path(value: Any, path: PathKey = ()) -> str | None:
    """The JSON path of the first string (or key) holding a lone surrogate, or None."""
    stack: list[tuple[Any, PathKey]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return json_path(where)
        elif isinstance(item, dict):
            for key, child in item.items():
                if _SURROGATE.search(key):
                    return json_path((*where, key))
                stack.append((child, (*where, key)))
        elif isinstance(item, list):
            stack.extend((child, (*where, i)) for i, child in enumerate(item))
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


_DECODER = json.JSONDecoder()
_scanstring: Any = getattr(json.decoder, "scanstring")  # noqa: B009 - public, but missing from typeshed
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def json_positions(text: str, paths: Iterable[Iterable[str | int]]) -> dict[PathKey, tuple[int, int]]:
    """(line, column), both 1-based, where the value at each of `paths` starts in JSON `text`.

    One walk for all paths: it descends only into the containers on some path and skips every
    other value with the decoder, so locating any number of diagnostics costs one pass over the
    text (a lookup per path cost a pass each: 100 diagnostics on a 64 MiB bundle, 100 passes).
    Paths that are not in the text are left out. Used on the error path, for pydantic's JSON paths.
    """
    wanted = [tuple(p) for p in paths]
    trie: dict[Any, Any] = {}
    for path in wanted:
        node = trie
        for part in path:
            node = node.setdefault(part, {})
    offsets: dict[PathKey, int] = {}

    def skip(position: int) -> int:
        return _WHITESPACE.match(text, position).end()  # type: ignore[union-attr]  # ``*`` always matches

    def walk(position: int, node: dict[Any, Any], path: PathKey) -> int:
        """Record where the value at `position` starts; return where it ends."""
        offsets[path] = position
        opener = text[position] if node else ""
        if opener not in ("{", "["):
            return int(_DECODER.raw_decode(text, position)[1])
        position, index = skip(position + 1), 0
        while text[position] not in "}]":
            if opener == "{":
                part: str | int
                part, position = _scanstring(text, position + 1)
                position = skip(skip(position) + 1)  # the colon
            else:
                part, index = index, index + 1
            child = node.get(part)
            position = walk(position, child, (*path, part)) if child is not None else \
                int(_DECODER.raw_decode(text, position)[1])
            position = skip(position)
            if text[position] == ",":
                position = skip(position + 1)
        return position + 1

    # On text parse_json_strict would not accept, the offsets found before the problem are still right.
    with contextlib.suppress(IndexError, ValueError, RecursionError):
        walk(skip(0), trie, ())
    located: dict[int, tuple[int, int]] = {}
    line, line_start, last = 1, 0, 0
    for offset in sorted(set(offsets.values())):
        line += text.count("\n", last, offset)
        newline = text.rfind("\n", last, offset)
        line_start = newline + 1 if newline >= 0 else line_start
        located[offset], last = (line, offset - line_start + 1), offset
    return {path: located[offsets[path]] for path in wanted if path in offsets}


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name


def _paths_to(value: Any, predicate: Any, path: PathKey = ()) -> Iterable[PathKey]:
    if predicate(value):
        yield path
    if isinstance(value, _PairList):
        for key, child in value.pairs:
            yield from _paths_to(child, predicate, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths_to(child, predicate, (*path, i))


class _PairList:
    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


def _find_constant_path(text: str) -> str | None:
    doc = json.loads(text, object_pairs_hook=_PairList, parse_constant=_Marker,
                     parse_float=lambda t: float(t) if math.isfinite(float(t)) else _Marker(t),
                     parse_int=lambda t: _Marker(t) if len(t.lstrip("-")) > MAX_INT_DIGITS else int(t))
    for path in _paths_to(doc, lambda v: isinstance(v, _Marker)):
        return json_path(path)
    return None


def _find_duplicate_path(text: str, key: str) -> str | None:
    try:
        doc = json.loads(text, object_pairs_hook=_PairList, parse_constant=_Marker, parse_int=_Marker)
    except (ValueError, RecursionError):
        return None

    def has_duplicate(value: Any) -> bool:
        if not isinstance(value, _PairList):
            return False
        keys = [k for k, _ in value.pairs]
        return keys.count(key) > 1

    for path in _paths_to(doc, has_duplicate):
        return json_path((*path, key))
    return None
