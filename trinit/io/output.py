"""Child output: read a child's pipe, frame its lines, hand them to a writer.

:func:`pump_output` reads the pipe of one child stream (our own pipe, so non-blocking is
fine), frames what it reads per the process's ``output`` mode (:mod:`trinit.io.framing`, a
whole read at a time), and feeds an :class:`~trinit.io.writer.FdWriter` with backpressure.
It runs only inside trio.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import trio

from .framing import MAX_LINE, Framer

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Literal

    from ..config.model import LogFormat, OutputMode
    from .writer import FdWriter

__all__ = ["MAX_LINE", "pump_output"]

#: At a cancellation, at most this much more is read from the pipe to be written or counted.
_SALVAGE_MAX = 1024 * 1024


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
    framer: Framer | None = None
    if not discard or on_line is not None:  # else a pure drain: no need to even split lines
        framer = Framer(
            name=name, stream=stream, mode="null" if discard else mode, log_format=log_format, on_line=on_line
        )

    fd_stream = trio.lowlevel.FdStream(read_fd)
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
            out = framer.feed(data) if data else framer.finish()
            if out and not discard:
                assert writer is not None
                pending = out
                await writer.put(out)
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
                framer.on_line = None  # on_line already saw nothing of this; keep probes quiet
                rest = framer.feed(_read_available(read_fd)) + framer.finish()
                if rest:
                    writer.salvage(rest)
            except Exception:
                pass
        raise
    finally:
        fd_stream.close()
