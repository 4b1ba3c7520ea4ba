"""Text that is safe to show a person: no terminal control sequences, no bidi tricks, bounded length.

Ids, segment keys, notes and error messages come from whoever wrote a bundle or a policy. Shown raw,
an ANSI escape can rewrite the terminal and a right-to-left override can make ``age:18-25`` read as
something else (Trojan Source, CVE-2021-42574). Every human-readable output passes such text through
`printable`; machine-readable JSON needs nothing, since ``json.dumps`` escapes control characters.
"""

from __future__ import annotations

import re

#: Longest value echoed back in a message; the rest is replaced by a count.
MAX_ECHO = 200

#: C0/C1 controls, bidi controls, marks and isolates, zero-width and other invisible format characters.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, limit: int | None = None, *, multiline: bool = False) -> str:
    """`text` with control, bidi and invisible format characters shown as ``\\xNN`` / ``\\uNNNN`` escapes.

    Args:
        text: any string.
        limit: cut to this many characters, noting how many were left out (default: no limit).
        multiline: keep newlines and tabs (for notes and multi-line messages); otherwise they are escaped.
    """
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"… ({len(text) - limit:,} more characters)"
    if multiline:
        return "\n".join(_UNSAFE.sub(_escape_char, line.replace("\t", "    ")) for line in text.split("\n"))
    text = text.replace("\n", "\\n").replace("\t", "\\t")
    text = _UNSAFE.sub(_escape_char, text)
    # Lone surrogates cannot be encoded for a terminal at all.
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if _has_surrogate(text) else text


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def echo(value: object, limit: int = MAX_ECHO) -> str:
    """A value quoted for an error message, like ``repr`` but bounded and printable."""
    shown = repr(value)
    if len(shown) > limit:
        shown = shown[:limit] + f"… ({len(shown) - limit:,} more characters)"
    return printable(shown)


__all__ = ["MAX_ECHO", "echo", "printable"]
