"""Child output: read a child's pipe, frame it line by line, hand it to a writer.

:func:`pump_output` reads the pipe of one child stream (our own pipe, so non-blocking is
fine), frames it per the process's ``output`` mode, and feeds an
:class:`~trinit.io.writer.FdWriter` with backpressure. It runs only inside trio.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import trio

from .log import rfc3339_utc

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Literal

    from ..config.model import LogFormat, OutputMode
    from .writer import FdWriter

__all__ = ["MAX_LINE", "pump_output"]

#: A line longer than this (without its newline) is emitted in pieces of this size.
MAX_LINE = 64 * 1024
#: At a cancellation, at most this much more is read from the pipe to be written or counted.
_SALVAGE_MAX = 1024 * 1024


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


class _Framer:
    """Turns raw lines into the bytes one mode writes (one chunk per batch of lines)."""

    def __init__(
        self,
        *,
        name: str,
        stream: str,
        mode: OutputMode,
        log_format: LogFormat,
        on_line: Callable[[str], None] | None,
    ) -> None:
        self.mode = mode
        self.stream = stream
        self.name = name
        self.json = mode == "prefix" and log_format == "json"
        self.prefix = (name + " | ").encode("utf-8", "backslashreplace")
        self.on_line = on_line

    def frame(self, lines: list[bytes], out: list[bytes]) -> None:
        """Append the output for ``lines`` (each raw, with its newline if it had one) to ``out``."""
        on_line = self.on_line
        if on_line is not None:
            for raw in lines:
                on_line(_strip_eol(raw).decode("utf-8", "replace"))
        if self.mode == "inherit":
            out.extend(lines)
        elif self.mode == "prefix":
            if self.json:
                ts = rfc3339_utc()
                for raw in lines:
                    obj = {
                        "ts": ts,
                        "process": self.name,
                        "stream": self.stream,
                        "line": _strip_eol(raw).decode("utf-8", "replace"),
                    }
                    out.append(
                        json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(
                            "utf-8", "backslashreplace"
                        )
                        + b"\n"
                    )
            else:
                prefix = self.prefix
                for raw in lines:  # the line's own ending (LF or CRLF) is kept
                    out.append(prefix + raw if raw.endswith(b"\n") else prefix + raw + b"\n")


def _strip_eol(raw: bytes) -> bytes:
    if raw.endswith(b"\n"):
        raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    return raw


def _split(buf: bytearray, *, final: bool) -> list[bytes]:
    """Take the complete lines (and over-long pieces) off the front of ``buf``.

    With ``final`` (EOF or cancellation) the remainder goes out too, as a partial line.
    """
    lines: list[bytes] = []
    start = 0
    n = len(buf)
    while start < n:
        nl = buf.find(b"\n", start, start + MAX_LINE + 1)
        if nl != -1 and nl - start <= MAX_LINE:
            lines.append(bytes(buf[start : nl + 1]))
            start = nl + 1
        elif n - start > MAX_LINE:
            cut = _utf8_cut(buf[start : start + MAX_LINE + 1], MAX_LINE)
            lines.append(bytes(buf[start : start + cut]))
            start += cut
        else:
            break
    if final and start < n:
        lines.append(bytes(buf[start:]))
        start = n
    del buf[:start]
    return lines


def _read_available(fd: int, limit: int = _SALVAGE_MAX) -> bytes:
    """What the pipe holds right now (it is non-blocking), at most ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        try:
            data = os.read(fd, min(MAX_LINE, limit - size))
        except OSError:  # EAGAIN: nothing more for now; EBADF/EIO: over
            break
        if not data:
            break
        parts.append(data)
        size += len(data)
    return b"".join(parts)


async def pump_output(
    read_fd: int,
    *,
    name: str,
    stream: Literal["stdout", "stderr"],
    mode: OutputMode,
    log_format: LogFormat,
    writer: FdWriter | None,
    on_line: Callable[[str], None] | None = None,
) -> None:
    """Copy one child stream from its pipe to ``writer``, framed per ``mode``; returns at EOF.

    Owns and closes ``read_fd`` (made non-blocking: it is our own pipe, never shared stdio).
    Each line goes out whole, in one ``put`` (several lines read together share one chunk),
    so the child is slowed rather than its output dropped when the terminal stalls.
    ``on_line`` sees every line's text (without newline, undecodable bytes replaced), in
    every mode. A final partial line is emitted at EOF; a line with no newline within
    ``MAX_LINE`` bytes is emitted in pieces of that size (cut on a UTF-8 boundary when it
    looks like UTF-8). If cancelled, what was already read (including a partial line) is
    handed to the writer (with what the pipe still holds) before the cancellation goes on,
    to be written or counted as lost at the deadline, never dropped silently.
    """
    discard = writer is None or mode == "null"
    framer: _Framer | None = None
    if not discard or on_line is not None:  # else a pure drain: no need to even split lines
        framer = _Framer(
            name=name, stream=stream, mode="null" if discard else mode, log_format=log_format, on_line=on_line
        )

    fd_stream = trio.lowlevel.FdStream(read_fd)
    buf = bytearray()
    pending: bytes | None = None  # a framed chunk read but not yet accepted by the writer
    try:
        while True:
            try:
                data = await fd_stream.receive_some(MAX_LINE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""  # EIO from a pty and the like: the stream is over
            if framer is None:
                if not data:
                    return
                continue
            if data:
                buf += data
            lines = _split(buf, final=not data)
            if lines:
                out: list[bytes] = []
                framer.frame(lines, out)
                if out and not discard:
                    assert writer is not None
                    pending = out[0] if len(out) == 1 else b"".join(out)
                    await writer.put(pending)
                    pending = None
            if not data:
                return
    except BaseException:
        # Cancellation (or anything else): what was read, and what the child already wrote
        # into the pipe, must not be lost silently: it is queued whatever the writer's bounds,
        # so that it is written or counted (FdWriter.abandon) at the end.
        if framer is not None and not discard and writer is not None:
            try:
                if pending is not None:
                    writer.salvage(pending)
                buf += _read_available(read_fd)
                if buf:
                    framer.on_line = None  # on_line already saw nothing of this; keep probes quiet
                    rest: list[bytes] = []
                    framer.frame(_split(buf, final=True), rest)
                    if rest:
                        writer.salvage(b"".join(rest))
            except Exception:
                pass
        raise
    finally:
        fd_stream.close()
