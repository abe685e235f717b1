"""Framing a child's output: the bytes read from its pipe in, the bytes its ``output`` mode writes out.

Lines arrive by the hundred per read, so the common case frames a whole block of complete lines
with a few C-level calls (one split, one join; for JSON a check for control characters and
invalid UTF-8, and a replace per escaped character: quote, backslash, tab) instead of Python work
per line. Anything else, a line over ``max_line`` bytes, or in JSON a control character or bytes
that are not UTF-8, takes a slower path that gives exactly the same bytes (tests/test_framing.py
checks both against the line-by-line definition on arbitrary input).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .log import rfc3339_utc

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config.model import LogFormat, OutputMode

__all__ = ["MAX_LINE", "Framer", "split_lines"]

#: A line longer than this (without its newline) is emitted in pieces of this size.
MAX_LINE = 64 * 1024
#: C0 controls but the newline that ends a line and the tab, and DEL: in JSON they become \u
#: escapes (or \b, \f, \r), so a block holding one takes the line-by-line encoder.
_JSON_RARE = bytes([*range(0x09), *range(0x0B, 0x20), 0x7F])
#: The UTF-8 of the C1 controls (U+0080 to U+009F), which trinit escapes (as it does U+2028/9).
_UTF8_C1 = re.compile(rb"\xc2[\x80-\x9f]")
#: What json.dumps leaves raw and trinit escapes (the set escape_json_controls escapes).
_RAW_CONTROLS = re.compile("[\x7f-\x9f\u2028\u2029]")


def _u_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match[0]):04x}"


def _escape_json(text: str) -> str:
    """:func:`~trinit._text.escape_json_controls`, but fast on long non-ASCII text with nothing to escape."""
    if text.isascii() and "\x7f" not in text:
        return text
    return _RAW_CONTROLS.sub(_u_escape, text)


def _utf8_cut(buf: bytes | bytearray, limit: int) -> int:
    """Where to cut ``buf`` at most ``limit`` bytes in without splitting a UTF-8 sequence."""
    cut = limit
    # Back off over at most 3 continuation bytes (10xxxxxx) to the start of the character.
    for _ in range(3):
        if cut > 0 and (buf[cut] & 0xC0) == 0x80:
            cut -= 1
        else:
            break
    if (buf[cut] & 0xC0) == 0x80 or cut == 0:
        return limit  # not UTF-8 after all: cut where asked
    return cut


def split_lines(buf: bytearray, *, final: bool, max_line: int = MAX_LINE) -> list[bytes]:
    """Take the complete lines (each with its newline) and over-long pieces off the front of ``buf``.

    A line with no newline within ``max_line`` bytes is cut into pieces of that size (on a UTF-8
    boundary when it looks like UTF-8). With ``final`` (EOF or cancellation) the remainder goes
    out too, as a partial line. This defines the framing; :class:`Framer` only goes faster.
    """
    lines: list[bytes] = []
    start = 0
    n = len(buf)
    while start < n:
        nl = buf.find(b"\n", start, start + max_line + 1)
        if nl != -1 and nl - start <= max_line:
            lines.append(bytes(buf[start : nl + 1]))
            start = nl + 1
        elif n - start > max_line:
            cut = _utf8_cut(buf[start : start + max_line + 1], max_line)
            lines.append(bytes(buf[start : start + cut]))
            start += cut
        else:
            break
    if final and start < n:
        lines.append(bytes(buf[start:]))
        start = n
    del buf[:start]
    return lines


def _lines_fit(data: bytes, end: int, max_line: int) -> bool:
    """True if no line in ``data[:end]`` (which ends with a newline) is longer than ``max_line``.

    A line over ``max_line`` bytes covers a whole window of about half that size, so one ``find``
    per window (each stops at the window's first newline) clears the block; only a window with no
    newline at all has its line measured.
    """
    if end <= max_line + 1:
        return True
    step = (max_line + 2) // 2
    find = data.find
    start = 0
    while start + step <= end:
        if find(b"\n", start, start + step) != -1:
            start += step
            continue
        after = find(b"\n", start + step, end)  # found: data[end - 1] is a newline
        if after - data.rfind(b"\n", 0, start) - 1 > max_line:
            return False
        start = after + 1
    return True


def _json_plain(block: bytes) -> bytes | None:
    """``block`` with each line as the inside of its JSON string, if that takes no more than escaping
    quotes, backslashes and tabs: no other control character, and valid UTF-8 (which JSON holds as it
    is). Else None, for the line-by-line encoder (replacement characters, escaped controls)."""
    if len(block.translate(None, _JSON_RARE)) != len(block):
        return None
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if (
            b"\xe2\x80\xa8" in block
            or b"\xe2\x80\xa9" in block
            or (b"\xc2" in block and _UTF8_C1.search(block))
        ):
            return None
    if b"\\" in block:
        block = block.replace(b"\\", b"\\\\")
    if b'"' in block:
        block = block.replace(b'"', b'\\"')
    if b"\t" in block:
        block = block.replace(b"\t", b"\\t")
    return block


class Framer:
    """Frames one child stream per ``output`` mode; holds the partial line between reads.

    ``inherit``: the bytes unchanged. ``prefix``: ``NAME | line``, each line keeping its own
    ending (LF or CRLF), a partial last line given a newline. ``prefix`` with JSON: one object a
    line, ``{"ts":...,"process":...,"stream":...,"line":...}``, the line without its ending, bytes
    that are not UTF-8 replaced, and C0, DEL, C1 and U+2028/9 escaped. ``null``: nothing. In
    every mode ``on_line`` sees each line's text (as the JSON ``line``, before escaping).
    """

    def __init__(
        self,
        *,
        name: str,
        stream: str,
        mode: OutputMode,
        log_format: LogFormat,
        on_line: Callable[[str], None] | None,
        max_line: int = MAX_LINE,
    ) -> None:
        self.mode = mode
        self.json = mode == "prefix" and log_format == "json"
        self.on_line = on_line
        self.max_line = max_line
        # The partial line read so far, in the pieces it came in (joined once its line is complete,
        # so a long line arriving a few bytes at a time is not copied again at every read).
        self._held: list[bytes] = []
        self._held_size = 0
        self._prefix = (name + " | ").encode("utf-8", "backslashreplace")
        self._nl_prefix = b"\n" + self._prefix
        self._json_keys = ""
        self._encode: Callable[[str], str] = str
        if self.json:
            # encode_basestring is what json.dumps(ensure_ascii=False) itself calls for a str: using
            # it per line skips building a dict and an encoder for each one, with the same escapes
            # byte for byte. Loaded here, so that text output never loads json.
            from json.encoder import encode_basestring

            self._encode = encode_basestring
            # Everything of a JSON line after the timestamp and before the line's string.
            self._json_keys = _escape_json(
                f'","process":{encode_basestring(name)},"stream":{encode_basestring(stream)},"line":'
            )

    def feed(self, data: bytes) -> bytes:
        """The output for the complete lines (and over-long pieces) that ``data`` ends; the rest is kept."""
        if b"\n" not in data and self._held_size + len(data) <= self.max_line:
            if data:
                self._held.append(data)
                self._held_size += len(data)
            return b""
        return self._take(self._release(data), final=False)

    def finish(self) -> bytes:
        """The output for what is left, a partial line (at EOF or a cancellation)."""
        rest = self._release(b"")
        return self._take(rest, final=True) if rest else b""

    def _release(self, data: bytes) -> bytes:
        """What is held, then ``data``; nothing is held after."""
        if not self._held:
            return data
        self._held.append(data)
        whole = b"".join(self._held)
        self._held = []
        self._held_size = 0
        return whole

    def _hold(self, rest: bytes) -> None:
        if rest:
            self._held = [rest]
            self._held_size = len(rest)

    def _take(self, data: bytes, *, final: bool) -> bytes:
        end = data.rfind(b"\n") + 1
        ts = rfc3339_utc() if self.json else ""
        if len(data) - end > self.max_line or not _lines_fit(data, end, self.max_line):
            buf = bytearray(data)
            pieces = split_lines(buf, final=final, max_line=self.max_line)
            self._hold(bytes(buf))
            return b"".join(
                self._block(raw, ts) if raw.endswith(b"\n") else self._piece(raw, ts) for raw in pieces
            )
        block, rest = (data, b"") if end == len(data) else (data[:end], data[end:])
        out = self._block(block, ts) if block else b""
        if final and rest:
            return out + self._piece(rest, ts)
        self._hold(rest)
        return out

    def _block(self, block: bytes, ts: str) -> bytes:
        """Output for whole lines, each ending with its newline."""
        if self.on_line is not None:
            for line in block.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")[:-1]:
                self.on_line(line)
        if self.mode == "inherit":
            return block
        if self.mode != "prefix":
            return b""
        if not self.json:  # each line keeps its ending: CRLF stays CRLF
            return self._prefix + self._nl_prefix.join(block[:-1].split(b"\n")) + b"\n"
        head = '{"ts":"' + ts + self._json_keys
        if b"\r" in block:
            block = block.replace(b"\r\n", b"\n")
        plain = _json_plain(block)
        if plain is not None:  # each line's JSON string is its (escaped) bytes between quotes
            head_b = head.encode("utf-8", "backslashreplace") + b'"'
            return head_b + (b'"}\n' + head_b).join(plain[:-1].split(b"\n")) + b'"}\n'
        lines = block.decode("utf-8", "replace").split("\n")[:-1]
        text = head + ("}\n" + head).join(map(self._encode, lines)) + "}\n"
        return _escape_json(text).encode("utf-8", "backslashreplace")

    def _piece(self, raw: bytes, ts: str) -> bytes:
        """Output for a line with no newline: an over-long line's piece, or the last partial line."""
        if self.on_line is not None:
            self.on_line(raw.decode("utf-8", "replace"))
        if self.mode == "inherit":
            return raw
        if self.mode != "prefix":
            return b""
        if not self.json:
            return self._prefix + raw + b"\n"
        text = '{"ts":"' + ts + self._json_keys + self._encode(raw.decode("utf-8", "replace")) + "}\n"
        return _escape_json(text).encode("utf-8", "backslashreplace")
