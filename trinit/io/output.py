"""Getting bytes out to trinit's stdout/stderr without ever blocking trio.

Two pieces:

* :class:`FdWriter` owns the writing side of one of trinit's own fds (1 or 2). That fd is
  inherited stdio, shared with the main process, so it must stay blocking (setting
  O_NONBLOCK would make the main process see EAGAIN). Blocking writes therefore happen in
  one daemon thread fed by a bounded queue; trio only ever enqueues.
* :func:`pump_output` reads the pipe of one child stream (our own pipe, so non-blocking is
  fine), frames it line by line, and feeds a writer with backpressure.

Nothing here imports trio (or anything heavy) at module level: the CLI's fast start and the logger
use this module before trio is imported.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import threading
    from collections import deque
    from collections.abc import Callable
    from typing import Literal

    import trio

    from ..config.model import LogFormat, OutputMode

__all__ = ["MAX_LINE", "FdWriter", "pump_output", "rfc3339_utc", "stdio_writer"]

#: A line longer than this (without its newline) is emitted in pieces of this size.
MAX_LINE = 64 * 1024
#: Most bytes the writer thread joins into one os.write (fewer syscalls under load).
_BATCH_BYTES = 64 * 1024
#: errnos that mean the reader of the fd is gone for good: stop writing, discard.
_GONE_ERRNOS = frozenset({32, 9, 5})  # EPIPE, EBADF, EIO (same values on every Linux arch)


def rfc3339_utc(t: float | None = None) -> str:
    """RFC 3339 UTC timestamp with milliseconds (``2024-05-01T12:00:00.123Z``), without datetime."""
    if t is None:
        t = time.time()
    secs = int(t)
    ms = int((t - secs) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"


class FdWriter:
    """Writes whole chunks to an fd (trinit's stdout or stderr) from one daemon thread, so trio never blocks on a stalled terminal.

    The queue is bounded by ``capacity`` chunks and by ``max_bytes`` (a single chunk is
    always accepted into an empty queue, so an oversized chunk cannot wedge it). Chunks are
    written in order, each completely, by the one thread; the fd is never made
    non-blocking. Once the fd reports EPIPE/EBADF/EIO everything is discarded from then on
    (the reader is gone): puts still succeed, so callers neither block nor count drops.

    The thread is started lazily, is a daemon, blocks every signal (so signals always reach
    the main thread), and sleeps on a condition variable when idle: no timeouts, no polling.
    """

    def __init__(self, fd: int, *, capacity: int = 4096, max_bytes: int = 4 * 1024 * 1024) -> None:
        import threading
        from collections import deque

        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.fd = fd
        self._capacity = capacity
        self._max_bytes = max_bytes
        # Space waiters are woken once the queue is at most half full: fewer cross-thread
        # wake-ups than one per freed slot, and robust against a woken waiter being cancelled.
        self._low_water = capacity // 2
        # RLock: a Python-level signal handler that logs runs on the main thread between
        # bytecodes, possibly while that thread is inside put_nowait.
        self._lock = threading.RLock()
        self._not_empty = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._writing = False  # the thread holds a popped batch not yet fully written
        self._broken = False
        self._thread: threading.Thread | None = None
        # (trio token, event) of tasks blocked in put() for space.
        self._waiters: list[tuple[trio.lowlevel.TrioToken, trio.Event]] = []

    # -- public API ---------------------------------------------------------------------

    @property
    def broken(self) -> bool:
        """True once the fd's reader is gone (EPIPE/EBADF/EIO); output is discarded since."""
        return self._broken

    def start(self) -> None:
        """Start the writer thread (idempotent).

        All signals are blocked in the calling thread while the new thread is created, so it
        is born with everything blocked: no window in which a signal could land on it. It
        also blocks them itself first thing, as documented.
        """
        if self._thread is not None:
            return
        import signal
        import threading

        with self._lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name=f"trinit-fd{self.fd}-writer", daemon=True)
            try:
                old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            except (OSError, ValueError):  # pragma: no cover - exotic platforms
                old = None
            try:
                thread.start()
            finally:
                if old is not None:
                    signal.pthread_sigmask(signal.SIG_SETMASK, old)
            self._thread = thread

    def put_nowait(self, data: bytes) -> bool:
        """Queue one chunk; never blocks. False if the queue is full (the caller counts drops)."""
        if self._thread is None:
            self.start()
        with self._lock:
            if self._broken:
                return True
            if not self._has_room_locked(len(data)):
                return False
            self._append_locked(data)
            return True

    async def put(self, data: bytes) -> None:
        """Queue one chunk, waiting (in trio) while the queue is full: backpressure, never drops.

        A checkpoint either way. If cancelled, the chunk was not queued.
        """
        import trio

        await trio.lowlevel.checkpoint_if_cancelled()
        if self._thread is None:
            self.start()
        token = trio.lowlevel.current_trio_token()
        while True:
            with self._lock:
                if self._broken:
                    break
                if self._has_room_locked(len(data)):
                    self._append_locked(data)
                    break
                waiter = (token, trio.Event())
                self._waiters.append(waiter)
            try:
                await waiter[1].wait()
            finally:
                with self._lock:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def close(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for everything queued to be written (blocking).

        Meant for exit, from sync code inside or outside trio. The writer stays usable
        afterwards (a late log line still goes out); the daemon thread never holds up exit.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            if self._thread is None:
                return
            while (self._queue or self._writing) and not self._broken:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._idle.wait(remaining)

    def flushed(self) -> bool:
        """True when nothing is queued or being written (or the fd is gone)."""
        with self._lock:
            return self._broken or not (self._queue or self._writing)

    # -- internals ----------------------------------------------------------------------

    def _has_room_locked(self, size: int) -> bool:
        if not self._queue:
            return True
        return len(self._queue) < self._capacity and self._queued_bytes + size <= self._max_bytes

    def _append_locked(self, data: bytes) -> None:
        self._queue.append(data)
        self._queued_bytes += len(data)
        if len(self._queue) == 1:
            self._not_empty.notify()

    def _take_waiters_locked(self) -> list[tuple[trio.lowlevel.TrioToken, trio.Event]]:
        if not self._waiters:
            return []
        if not self._broken and (
            len(self._queue) > self._low_water or self._queued_bytes > self._max_bytes // 2
        ):
            return []
        waiters = self._waiters
        self._waiters = []
        return waiters

    @staticmethod
    def _wake(waiters: list[tuple[trio.lowlevel.TrioToken, trio.Event]]) -> None:
        if not waiters:
            return
        import contextlib

        for token, event in waiters:
            # trio.RunFinishedError: that run is over, nobody left to wake.
            with contextlib.suppress(Exception):
                token.run_sync_soon(event.set)

    def _run(self) -> None:
        import contextlib

        try:
            import signal

            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        except Exception:  # pragma: no cover - best effort
            pass
        while True:
            with self._lock:
                while not self._queue:
                    if self._writing:
                        self._writing = False
                        self._idle.notify_all()
                    self._not_empty.wait()
                chunks: list[bytes] = []
                size = 0
                while self._queue and size < _BATCH_BYTES:
                    chunk = self._queue.popleft()
                    chunks.append(chunk)
                    size += len(chunk)
                self._queued_bytes -= size
                self._writing = True
                waiters = self._take_waiters_locked()
            self._wake(waiters)
            if not self._broken:
                # Never let the thread die on a surprise: put() would then wait forever.
                with contextlib.suppress(Exception):
                    self._write_all(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                # Somebody else made the shared file description non-blocking: wait for room
                # without spinning, and never touch the flag ourselves.
                if not self._wait_writable():
                    return
                continue
            except OSError as exc:
                if exc.errno in _GONE_ERRNOS:
                    self._mark_broken()
                # Anything else (ENOSPC, EFBIG, ...): lose this batch, keep going.
                return
            view = view[n:]

    def _wait_writable(self) -> bool:
        import select

        try:
            poller = select.poll()
            poller.register(self.fd, select.POLLOUT)
            for _fd, ev in poller.poll():
                if ev & (select.POLLERR | select.POLLNVAL):
                    self._mark_broken()
                    return False
        except OSError:
            self._mark_broken()
            return False
        return True

    def _mark_broken(self) -> None:
        with self._lock:
            self._broken = True
            self._queue.clear()
            self._queued_bytes = 0
            waiters = self._waiters
            self._waiters = []
            self._idle.notify_all()
        self._wake(waiters)


_SHARED: dict[int, FdWriter] = {}


def stdio_writer(fd: int) -> FdWriter:
    """The process-wide writer for trinit's own fd 1 or 2, created on first use.

    Everything that writes to one fd should share its writer: one thread writing in order
    means lines from the logger and from prefixed children never interleave mid-line,
    even where a batch is larger than PIPE_BUF.
    """
    writer = _SHARED.get(fd)
    if writer is None:
        writer = _SHARED.setdefault(fd, FdWriter(fd))  # setdefault: atomic under the GIL
    return writer


# -- child output pumps -------------------------------------------------------------------


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
                import json

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
                for raw in lines:
                    out.append(prefix + _strip_eol(raw) + b"\n")


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
    handed to the writer with ``put_nowait``, best effort, before the cancellation goes on.
    """
    import trio

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
        # Cancellation (or anything else): lines already read must not be lost.
        if framer is not None and not discard and writer is not None:
            try:
                if pending is not None:
                    writer.put_nowait(pending)
                if buf:
                    framer.on_line = None  # on_line already saw nothing of this; keep probes quiet
                    rest: list[bytes] = []
                    framer.frame(_split(buf, final=True), rest)
                    if rest:
                        writer.put_nowait(b"".join(rest))
            except Exception:
                pass
        raise
    finally:
        fd_stream.close()
