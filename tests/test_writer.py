"""FdWriter against real pipes and files."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
import trio.testing
from fdutil import read_exactly, small_pipe

from trinit.io.writer import FdWriter

# -- helpers ------------------------------------------------------------------------------


def stall(writer: FdWriter, w: int, size: int = 1000) -> list[bytes]:
    """Wedge ``writer`` (on pipe write end ``w``): pipe full, thread stuck in write, queue full.

    Returns everything the pipe's reader will see, in order. Deterministic: the queue only
    fills once the thread is known to be blocked in os.write, so it cannot drain behind us.
    """
    os.set_blocking(w, False)
    prefill = b""
    try:
        while True:
            prefill += b"P" * os.write(w, b"P" * 4096)
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(w, True)
    seen = [prefill]
    first = b"F" * size
    assert writer.put_nowait(first)
    seen.append(first)
    with writer._lock:  # inside trio the thread is woken once trio's steps end: not while we spin
        writer._bell.ring()
    deadline = time.monotonic() + 10
    while not writer.flushed() and writer._queue:  # until the thread has popped it
        assert time.monotonic() < deadline
        time.sleep(0.001)
    i = 0
    while True:
        chunk = (f"{i:08d}".encode() * (size // 8 + 1))[:size]
        if not writer.put_nowait(chunk):
            return seen
        seen.append(chunk)
        i += 1
        assert i < 100_000, "the writer never filled up"


@pytest.fixture
def out_file(tmp_path: Path) -> Iterator[tuple[int, Callable[[], bytes]]]:
    """An fd on a regular file (writes never block) and a function reading it back."""
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    yield fd, path.read_bytes
    os.close(fd)


# -- FdWriter -----------------------------------------------------------------------------


def test_writer_writes_everything_in_order(out_file: tuple[int, Callable[[], bytes]]) -> None:
    fd, read_back = out_file
    writer = FdWriter(fd, capacity=8)
    chunks = [f"line {i}\n".encode() * (i % 7 + 1) for i in range(5000)]
    for chunk in chunks:
        while not writer.put_nowait(chunk):
            writer.close(10)  # queue full: let it drain (sync caller)
    writer.close(10)
    assert writer.flushed()
    assert read_back() == b"".join(chunks)
    assert os.get_blocking(fd)


async def test_put_backpressure_blocks_then_delivers_everything_in_order() -> None:
    r, w = small_pipe()
    try:
        writer = FdWriter(w, capacity=4)
        accepted = stall(writer, w)  # the pipe is full and so is the queue
        assert not writer.put_nowait(b"refused")

        extra = [f"awaited {i}\n".encode() * 50 for i in range(20)]
        done = trio.Event()

        async def producer() -> None:
            for chunk in extra:
                await writer.put(chunk)
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer)
            await trio.testing.wait_all_tasks_blocked()
            assert not done.is_set(), "put() should wait while the queue is full"
            expected = b"".join(accepted) + b"".join(extra)
            got = await trio.to_thread.run_sync(read_exactly, r, len(expected))
            await done.wait()
        assert got == expected  # complete, in order, nothing lost, nothing refused slipped in
        assert os.get_blocking(w), "the writer must never make its fd non-blocking"
    finally:
        os.close(r)
        os.close(w)


async def test_cancelled_put_queues_nothing_and_later_puts_work() -> None:
    r, w = small_pipe()
    try:
        writer = FdWriter(w, capacity=2)
        accepted = stall(writer, w)
        with trio.CancelScope() as scope:
            scope.cancel()
            await writer.put(b"never (already cancelled)")
        with trio.move_on_after(0.05):
            await writer.put(b"never (cancelled while waiting)")
        expected = b"".join(accepted) + b"after\n"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.put, b"after\n")
            got = await trio.to_thread.run_sync(read_exactly, r, len(expected))
        assert got == expected
    finally:
        os.close(r)
        os.close(w)


def test_close_is_bounded_when_the_fd_stalls() -> None:
    r, w = small_pipe()
    try:
        writer = FdWriter(w, capacity=4)
        stall(writer, w)
        t0 = time.monotonic()
        writer.close(0.2)
        elapsed = time.monotonic() - t0
        assert 0.19 <= elapsed < 2.0
        assert not writer.flushed()
    finally:
        os.close(r)  # the thread then gets EPIPE and discards the rest
        os.close(w)


async def test_reader_gone_discards_without_crashing() -> None:
    r, w = os.pipe()
    os.close(r)
    try:
        writer = FdWriter(w, capacity=2)
        assert writer.put_nowait(b"first")
        writer.close(5)  # the first write fails with EPIPE
        assert writer.broken
        for _ in range(100):
            assert writer.put_nowait(b"x" * 1000)  # never refused from now on: discarded, not dropped
        await writer.put(b"y")
        writer.close(5)
        assert writer.flushed()
        assert writer._thread is not None and writer._thread.is_alive()
    finally:
        os.close(w)


async def test_put_waiters_released_when_reader_goes_away() -> None:
    r, w = small_pipe()
    try:
        writer = FdWriter(w, capacity=2)
        stall(writer, w)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.put, b"blocked")
            await trio.testing.wait_all_tasks_blocked()
            os.close(r)  # the writer thread gets EPIPE, discards, and wakes the waiter
        assert writer.broken
    finally:
        os.close(w)


def test_writer_thread_blocks_all_signals_and_is_idle_quiet(
    out_file: tuple[int, Callable[[], bytes]],
) -> None:
    fd, _ = out_file
    main_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    writer = FdWriter(fd)
    writer.start()
    writer.start()  # idempotent
    thread = writer._thread
    assert thread is not None and thread.daemon
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == main_mask, "caller's mask must be restored"
    writer.put_nowait(b"hello\n")
    writer.close(5)
    tid = thread.native_id

    def status() -> dict[str, str]:
        text = Path(f"/proc/self/task/{tid}/status").read_text()
        return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)

    blocked = int(status()["SigBlk"].strip(), 16)
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP) or sig > 64:
            continue
        assert blocked & (1 << (sig - 1)), f"signal {sig} not blocked in the writer thread"
    # Idle: asleep on a condition without a timeout, so no wake-ups at all. (A measurement,
    # not synchronization: let it settle into its wait, then count switches over 0.3 s.)
    before = status()["voluntary_ctxt_switches"]
    for _ in range(100):
        time.sleep(0.02)
        now, before = before, status()["voluntary_ctxt_switches"]
        if now == before:
            break
    time.sleep(0.3)
    assert status()["voluntary_ctxt_switches"] == before


def _no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)


def test_without_threads_the_writer_writes_in_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under RLIMIT_NPROC no thread can start: nothing is lost and nothing raises."""
    _no_threads(monkeypatch)
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        writer = FdWriter(fd)
        assert writer.put_nowait(b"one\n")
        assert writer.put_nowait(b"two\n")
        writer.close(1.0)
        assert writer.flushed()
    finally:
        os.close(fd)
    assert path.read_bytes() == b"one\ntwo\n"


async def test_without_threads_put_writes_in_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_threads(monkeypatch)
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        writer = FdWriter(fd)
        await writer.put(b"line\n")
    finally:
        os.close(fd)
    assert path.read_bytes() == b"line\n"


def _pending(fd: int) -> int:
    """How many bytes wait in the pipe for its reader."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]  # type: ignore[no-any-return]


def test_abandon_counts_what_is_given_up_and_leaves_whole_lines() -> None:
    """At the deadline (SPEC §5.5): the reader gets whole lines only, the rest is counted."""
    r, w = small_pipe()
    writer = FdWriter(w)
    lines = [b"%05d " % i + b"y" * 93 + b"\n" for i in range(1000)]  # 100 bytes each
    for start in range(0, 1000, 200):  # 20 KB chunks: each batch is far over PIPE_BUF
        assert writer.put_nowait(b"".join(lines[start : start + 200]))
    deadline = time.monotonic() + 10
    while writer._unwritten is None or _pending(r) == 0:  # the thread is stuck in a write
        assert time.monotonic() < deadline
        time.sleep(0.001)
    time.sleep(0.05)
    given_up, size = writer.abandon()
    assert writer.put_nowait(b"after\n")  # the writer stays usable (the log line that counts)
    os.set_blocking(r, False)
    got = b""
    deadline = time.monotonic() + 10
    while not got.endswith(b"after\n"):
        assert time.monotonic() < deadline
        try:
            got += os.read(r, 65536)
        except BlockingIOError:
            time.sleep(0.001)
    received = got.splitlines(keepends=True)
    assert received[:-1] == lines[: len(received) - 1]  # in order, none torn
    # The piece the thread was blocked on (<= PIPE_BUF, whole lines) was not written by the
    # deadline, so it is counted; this reader came back for it later, so it got it too.
    in_flight = len(received) - 1 + given_up - len(lines)
    assert 0 < in_flight <= 4096 // 100
    assert size == given_up * 100
    os.close(r)
    os.close(w)


def test_lines_stay_whole_beside_another_writer_of_the_pipe() -> None:
    """trinit's stdout is shared with the main process: neither one's lines are ever cut by the
    other's (each of the writer's writes is whole lines of at most PIPE_BUF bytes: atomic)."""
    r, w = os.pipe()
    writer = FdWriter(w)
    ours = [b"T%07d " % i + b"t" * 80 + b"\n" for i in range(40_000)]
    theirs = [b"M%07d " % i + b"m" * 20 + b"\n" for i in range(40_000)]
    received: list[bytes] = []

    def read_all() -> None:
        while data := os.read(r, 1 << 20):
            received.append(data)

    def other_writer() -> None:
        for line in theirs:
            os.write(w, line)

    reader = threading.Thread(target=read_all)
    other = threading.Thread(target=other_writer)
    reader.start()
    other.start()
    for start in range(0, len(ours), 500):
        chunk = b"".join(ours[start : start + 500])
        while not writer.put_nowait(chunk):
            time.sleep(0.001)
    other.join()
    writer.close(30)
    assert writer.flushed()
    os.close(w)
    reader.join()
    os.close(r)
    lines = b"".join(received).splitlines(keepends=True)
    assert [line for line in lines if line.startswith(b"T")] == ours
    assert [line for line in lines if not line.startswith(b"T")] == theirs


async def test_inside_trio_a_burst_of_lines_wakes_the_thread_once_the_steps_are_done() -> None:
    """Lines put in one trio step wait for the step to end, then go out in one batch; a burst
    bigger than the eager bound wakes the thread at once (the queue never fills up in a burst)."""
    r, w = os.pipe()
    writer = FdWriter(w)
    try:
        writer.put_nowait(b"first\n")
        assert await _read_soon(r, 6) == b"first\n"
        while not writer._bell.asleep:  # the thread goes back to sleep on its own
            await trio.sleep(0.001)
        for i in range(10):
            assert writer.put_nowait(b"line %d\n" % i)
        time.sleep(0.05)  # no checkpoint: trio's step goes on, the thread is not woken
        os.set_blocking(r, False)
        with pytest.raises(BlockingIOError):
            os.read(r, 100)
        os.set_blocking(r, True)
        expected = b"".join(b"line %d\n" % i for i in range(10))
        assert await _read_soon(r, len(expected)) == expected
        many = [b"x%04d\n" % i for i in range(1000)]
        for line in many:
            assert writer.put_nowait(line)
        time.sleep(0.05)  # still inside one step: the eager bound woke it
        os.set_blocking(r, False)
        assert os.read(r, 6) == many[0]
        os.set_blocking(r, True)
        rest = b"".join(many)[6:]
        assert await _read_soon(r, len(rest)) == rest
    finally:
        writer.close(2.0)
        os.close(w)
        os.close(r)


async def _read_soon(fd: int, size: int) -> bytes:
    """Read ``size`` bytes while trio runs (the writer is woken once trio's steps are done)."""
    data = b""
    with trio.fail_after(5):
        while len(data) < size:
            await trio.lowlevel.wait_readable(fd)
            data += os.read(fd, size - len(data))
    return data
