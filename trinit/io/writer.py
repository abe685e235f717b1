"""Writing trinit's own stdout/stderr from one daemon thread, so trio never blocks on them.

trinit's fds 1 and 2 are inherited stdio, shared with the main process, so they must stay
blocking (O_NONBLOCK would make the main process see EAGAIN). Blocking writes therefore
happen in one daemon thread per fd, fed by a bounded queue; trio only ever enqueues.

The logger uses this module before trio is imported (a config error is reported without
loading trio), so trio is imported only inside :meth:`FdWriter.put`, which runs in trio.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import stat
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from .doorbell import Doorbell

if TYPE_CHECKING:
    import trio

__all__ = ["FdWriter", "stdio_writer"]

#: Most bytes the writer thread joins into one os.write (fewer syscalls under load).
_BATCH_BYTES = 64 * 1024
#: Queued chunks that wake the thread at once, even in the middle of trio's batch of steps.
_EAGER_CHUNKS = 256
#: errnos that mean the reader of the fd is gone for good: stop writing, discard.
_GONE_ERRNOS = frozenset({32, 9, 5})  # EPIPE, EBADF, EIO (same values on every Linux arch)
#: A write of at most this many bytes to a pipe is atomic: all of it or nothing.
_PIPE_BUF = select.PIPE_BUF


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
        self._bell = Doorbell(self._not_empty, lambda: bool(self._queue))
        #: The part of the batch in hand not yet known to be written (``abandon`` counts it).
        self._unwritten: memoryview | None = None
        self._cut = False  # abandon() asked the thread to drop the rest of its batch
        self._whole_writes: bool | None = None  # fd is a regular file: no need to cut batches
        self._broken = False
        self._thread: threading.Thread | None = None
        #: No thread could be started (RLIMIT_NPROC, say): write in the caller instead.
        self._direct = False
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
        if self._thread is not None or self._direct:
            return
        with self._lock:
            if self._thread is not None or self._direct:
                return
            thread = threading.Thread(target=self._run, name=f"trinit-fd{self.fd}-writer", daemon=True)
            try:
                old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            except (OSError, ValueError):  # pragma: no cover - exotic platforms
                old = None
            try:
                thread.start()
            except RuntimeError:
                # "can't start new thread": degrade to writing in the caller (which may block
                # if the reader stalls) rather than lose output or crash trinit.
                self._direct = True
                return
            finally:
                if old is not None:
                    signal.pthread_sigmask(signal.SIG_SETMASK, old)
            self._thread = thread

    def put_nowait(self, data: bytes) -> bool:
        """Queue one chunk; never blocks. False if the queue is full (the caller counts drops)."""
        if self._thread is None:
            self.start()
            if self._direct:
                self._write_direct(data)
                return True
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
        import trio  # here, not at the top: the logger writes before trio is imported

        await trio.lowlevel.checkpoint_if_cancelled()
        if self._thread is None:
            self.start()
            if self._direct:
                self._write_direct(data)
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
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
            self._bell.ring()
            while (self._queue or self._writing) and not self._broken:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._idle.wait(remaining)

    def salvage(self, data: bytes) -> None:
        """Queue a cancelled pump's last bytes whatever the bounds (never blocks), so that
        :meth:`abandon` counts them rather than losing them silently."""
        if self._thread is None:
            self.put_nowait(data)
            return
        with self._lock:
            if not self._broken and data:
                self._append_locked(data)

    def abandon(self) -> tuple[int, int]:
        """Give up on everything not yet written: the deadline has come (never blocks).

        Drops the queue and the rest of the batch being written, after the piece in
        flight (a piece of a pipe write is whole lines of at most PIPE_BUF bytes, so what
        the reader gets ends on a line boundary). Returns (lines, bytes) given up, the piece in
        flight included, for the caller to report. Chunks put afterwards are written as usual.
        """
        with self._lock:
            if self._broken:
                return 0, 0
            lines = sum(chunk.count(b"\n") for chunk in self._queue)
            size = self._queued_bytes
            self._queue.clear()
            self._queued_bytes = 0
            rest = self._unwritten
            if rest is not None and len(rest) and not self._whole_writes:
                lines += bytes(rest).count(b"\n")
                size += len(rest)
                self._cut = True
            waiters = self._waiters
            self._waiters = []
        self._wake(waiters)
        return lines, size

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
        self._bell.ring_soon(len(self._queue) >= _EAGER_CHUNKS or self._queued_bytes >= _BATCH_BYTES)

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
        for token, event in waiters:
            # trio.RunFinishedError: that run is over, nobody left to wake.
            with contextlib.suppress(Exception):
                token.run_sync_soon(event.set)

    def _run(self) -> None:
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        except Exception:  # pragma: no cover - best effort
            pass
        while True:
            with self._lock:
                while not self._queue:
                    if self._writing:
                        self._writing = False
                        self._idle.notify_all()
                    self._bell.asleep = True
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
                    self._write_batch(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            with self._lock:
                self._unwritten = None
                self._cut = False

    def _write_batch(self, data: bytes) -> None:
        """Write one batch in pieces that end on a line, each at most PIPE_BUF where the
        lines allow, so a deadline (:meth:`abandon`) or exit never leaves half a line behind."""
        if self._whole_writes is None:
            try:
                self._whole_writes = stat.S_ISREG(os.fstat(self.fd).st_mode)
            except OSError:
                self._whole_writes = False
        view = memoryview(data)
        with self._lock:
            self._unwritten = view
        if self._whole_writes:
            self._write_all(view)
            return
        while view:
            end = len(view)
            if end > _PIPE_BUF:
                nl = data.rfind(b"\n", len(data) - len(view), len(data) - len(view) + _PIPE_BUF)
                if nl == -1:  # a line longer than PIPE_BUF: the whole line in one write
                    nl = data.find(b"\n", len(data) - len(view) + _PIPE_BUF)
                if nl != -1:
                    end = nl + 1 - (len(data) - len(view))
            self._write_all(view[:end])
            view = view[end:]
            with self._lock:
                if self._cut or self._broken:
                    return
                self._unwritten = view

    def _write_direct(self, data: bytes) -> None:
        with self._lock:  # one writer at a time keeps lines whole
            if not self._broken:
                with contextlib.suppress(Exception):
                    self._write_all(data)

    def _write_all(self, data: bytes | memoryview) -> None:
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
