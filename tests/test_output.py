"""FdWriter and pump_output against real pipes and files."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from trinit.io.output import MAX_LINE, FdWriter, pump_output, rfc3339_utc

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# -- helpers ------------------------------------------------------------------------------


def small_pipe() -> tuple[int, int]:
    """A pipe with the smallest kernel buffer, so it fills after a few KiB."""
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    return r, w


def read_exactly(fd: int, n: int) -> bytes:
    """Blocking read of n bytes (run in a thread)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        b = os.read(fd, min(65536, n - got))
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def read_to_eof(fd: int) -> bytes:
    parts: list[bytes] = []
    while b := os.read(fd, 65536):
        parts.append(b)
    return b"".join(parts)


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


async def pump(
    chunks: list[bytes],
    *,
    mode: str = "prefix",
    log_format: str = "text",
    name: str = "app",
    stream: str = "stdout",
    on_line: Callable[[str], None] | None = None,
    with_writer: bool = True,
    tmp_path: Path,
) -> bytes:
    """Feed ``chunks`` through a real pipe into pump_output; return what reached the writer's fd."""
    path = tmp_path / f"pump-{time.monotonic_ns()}"
    out_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    writer = FdWriter(out_fd) if with_writer else None
    r, w = os.pipe()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: pump_output(
                    r,
                    name=name,
                    stream=stream,  # type: ignore[arg-type]
                    mode=mode,  # type: ignore[arg-type]
                    log_format=log_format,  # type: ignore[arg-type]
                    writer=writer,
                    on_line=on_line,
                )
            )
            async with trio.lowlevel.FdStream(w) as feeder:
                for chunk in chunks:
                    await feeder.send_all(chunk)
        if writer is not None:
            writer.close(10)
            assert writer.flushed()
    finally:
        os.close(out_fd)
    return path.read_bytes()


# -- rfc3339 ------------------------------------------------------------------------------


def test_rfc3339_utc() -> None:
    assert rfc3339_utc(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339_utc(1700000000.1234) == "2023-11-14T22:13:20.123Z"
    assert TS_RE.match(rfc3339_utc())


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


# -- pump_output --------------------------------------------------------------------------


async def test_prefix_text(tmp_path: Path) -> None:
    out = await pump([b"hello\nwor", b"ld\r\n", b"\n"], tmp_path=tmp_path)
    assert out == b"app | hello\napp | world\napp | \n"


async def test_prefix_partial_last_line(tmp_path: Path) -> None:
    out = await pump([b"one\ntwo"], tmp_path=tmp_path)
    assert out == b"app | one\napp | two\n"


async def test_prefix_keeps_undecodable_bytes(tmp_path: Path) -> None:
    out = await pump([b"caf\xe9\n"], tmp_path=tmp_path, name="db")
    assert out == b"db | caf\xe9\n"


async def test_prefix_json(tmp_path: Path) -> None:
    out = await pump(
        [b'plain\nquote " and \\ back\n', b"caf\xc3\xa9 \xff\npartial"],
        log_format="json",
        stream="stderr",
        tmp_path=tmp_path,
    )
    lines = out.split(b"\n")
    assert lines[-1] == b""
    objs = [json.loads(line) for line in lines[:-1]]
    assert [o["line"] for o in objs] == ["plain", 'quote " and \\ back', "café \ufffd", "partial"]
    for o in objs:
        assert list(o) == ["ts", "process", "stream", "line"]
        assert o["process"] == "app" and o["stream"] == "stderr"
        assert TS_RE.match(o["ts"])


async def test_inherit_passes_bytes_unchanged(tmp_path: Path) -> None:
    data = [b"a\r\n", b"\xff\xfe bin\x00ary\n", b"x" * (MAX_LINE * 2 + 10), b"\nno newline at end"]
    out = await pump(data, mode="inherit", tmp_path=tmp_path)
    assert out == b"".join(data)


async def test_null_writes_nothing_but_on_line_sees_lines(tmp_path: Path) -> None:
    seen: list[str] = []
    out = await pump([b"a\nb\n", b"c"], mode="null", on_line=seen.append, tmp_path=tmp_path)
    assert out == b""
    assert seen == ["a", "b", "c"]


async def test_without_writer_drains_and_calls_on_line(tmp_path: Path) -> None:
    seen: list[str] = []
    out = await pump([b"x\n" * 1000], with_writer=False, on_line=seen.append, tmp_path=tmp_path)
    assert out == b""
    assert seen == ["x"] * 1000


async def test_on_line_sees_every_line_in_every_mode(tmp_path: Path) -> None:
    payload = b"".join(f"line {i} \xff\n".encode("latin-1") for i in range(3000)) + b"tail"
    pieces = [payload[i : i + 777] for i in range(0, len(payload), 777)]
    want = [f"line {i} \ufffd" for i in range(3000)] + ["tail"]
    for mode in ("prefix", "inherit", "null"):
        seen: list[str] = []
        out = await pump(pieces, mode=mode, on_line=seen.append, tmp_path=tmp_path)
        assert seen == want, mode
        if mode == "inherit":
            assert out == payload


async def test_long_lines_split_into_prefixed_pieces(tmp_path: Path) -> None:
    total = 200 * 1024
    out = await pump([b"x" * total + b"\n", b"short\n"], tmp_path=tmp_path)
    lines = out.split(b"\n")[:-1]
    assert [len(line) - len(b"app | ") for line in lines] == [
        MAX_LINE,
        MAX_LINE,
        MAX_LINE,
        total - 3 * MAX_LINE,
        5,
    ]
    assert all(line.startswith(b"app | ") for line in lines)


async def test_line_of_exactly_max_length_is_not_split(tmp_path: Path) -> None:
    out = await pump([b"y" * MAX_LINE, b"\n"], tmp_path=tmp_path)
    assert out == b"app | " + b"y" * MAX_LINE + b"\n"


async def test_long_utf8_line_split_on_character_boundary(tmp_path: Path) -> None:
    text = "a" + "é" * 50_000  # 100 001 bytes; byte 65536 is the middle of a 2-byte character
    out = await pump([text.encode() + b"\n"], log_format="json", tmp_path=tmp_path)
    pieces = [json.loads(line)["line"] for line in out.split(b"\n")[:-1]]
    assert len(pieces) == 2
    assert "".join(pieces) == text
    assert "\ufffd" not in "".join(pieces)
    assert all(len(p.encode()) <= MAX_LINE for p in pieces)


async def test_backpressure_end_to_end_nothing_lost(tmp_path: Path) -> None:
    """A child much faster than its reader is slowed down, never dropped."""
    out_r, out_w = small_pipe()
    writer = FdWriter(out_w, capacity=2)
    n = 20_000
    payload = b"".join(f"{i} {'z' * (i % 50)}\n".encode() for i in range(n))
    r, w = os.pipe()
    reader = threading.Thread(target=lambda: result.append(read_to_eof(out_r)))
    result: list[bytes] = []
    reader.start()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: pump_output(
                    r, name="fast", stream="stdout", mode="prefix", log_format="text", writer=writer
                )
            )
            async with trio.lowlevel.FdStream(w) as feeder:
                await feeder.send_all(payload)
        writer.close(30)
        assert writer.flushed()
    finally:
        os.close(out_w)
        await trio.to_thread.run_sync(reader.join)
        os.close(out_r)
    expected = b"".join(b"fast | " + line + b"\n" for line in payload.split(b"\n")[:-1])
    assert result[0] == expected


async def test_pump_closes_its_fd(tmp_path: Path) -> None:
    r, w = os.pipe()
    os.close(w)
    await pump_output(r, name="a", stream="stdout", mode="null", log_format="text", writer=None)
    with pytest.raises(OSError):
        os.fstat(r)


async def test_cancel_flushes_what_was_already_read(tmp_path: Path) -> None:
    path = tmp_path / "out"
    out_fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    writer = FdWriter(out_fd)
    r, w = os.pipe()
    seen = trio.Event()
    try:
        os.write(w, b"complete\npartial")
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    lambda: pump_output(
                        r,
                        name="app",
                        stream="stdout",
                        mode="prefix",
                        log_format="text",
                        writer=writer,
                        on_line=lambda _line: seen.set(),
                    )
                )
                await seen.wait()
                await trio.testing.wait_all_tasks_blocked()  # the pump now holds "partial"
                scope.cancel()
        writer.close(5)
        assert path.read_bytes() == b"app | complete\napp | partial\n"
    finally:
        os.close(w)
        os.close(out_fd)


def test_import_does_not_pull_in_trio() -> None:
    code = "import sys, trinit.io.output, trinit.io.log; sys.exit('trio' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
