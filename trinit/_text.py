"""Escaping control characters in what trinit prints, so one message is always one line.

A process name, a key, a value or a path may hold ``\\n``, ``\\r`` or a terminal escape
(``\\x1b]0;pwned\\x07``): printed raw, it splits a message over several lines or drives the
reader's terminal. Every such character is shown as Python escapes it (``\\n``, ``\\x1b``).
Imports nothing: the fast start's logger uses it.
"""

from __future__ import annotations

__all__ = ["CONTROLS", "escape_controls", "escape_json_controls", "who"]

#: C0, DEL, C1 and the Unicode line and paragraph separators (what str.splitlines splits on).
CONTROLS = frozenset([*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), "\u2028", "\u2029"])

_TEXT = str.maketrans({c: repr(c)[1:-1] for c in CONTROLS})
#: In JSON, json.dumps already escapes C0; the rest become \u escapes (still valid JSON).
_JSON = str.maketrans({c: f"\\u{ord(c):04x}" for c in CONTROLS if ord(c) >= 0x20})


def escape_controls(text: str) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return text if text.isprintable() else text.translate(_TEXT)


def escape_json_controls(text: str) -> str:
    """A JSON text with the control characters json.dumps leaves raw escaped as ``\\uXXXX``."""
    # DEL is ASCII, and json.dumps leaves it raw.
    return text if text.isascii() and "\x7f" not in text else text.translate(_JSON)


def who(process: object, pid: object) -> str:
    """The subject of a log line: ``"app (pid 12) "``, ``"app "`` without a pid, ``""`` without a
    process (trinit's own text lines and ``trinit ctl events`` read the same)."""
    if process is None:
        return ""
    return f"{process} " if pid is None else f"{process} (pid {pid}) "
