"""Logger: text and JSON shapes, verbosity, and never blocking on a stalled stderr."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fdutil import TS_RE

from trinit.io.log import Logger, rfc3339_utc
from trinit.io.writer import FdWriter

DROP_RE = re.compile(rb"trinit: warning: (\d+) log lines were dropped because stderr was not being read\n")


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[FdWriter, Callable[[], bytes]]]:
    """A writer on a regular file, and a function that flushes it and reads the file back."""
    path = tmp_path / "stderr"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    writer = FdWriter(fd)

    def read_back() -> bytes:
        writer.close(10)
        return path.read_bytes()

    yield writer, read_back
    os.close(fd)


def test_text_shapes(sink: tuple[FdWriter, Callable[[], bytes]]) -> None:
    writer, read_back = sink
    log = Logger(writer=writer)
    log.info("exited", "exited with code 3", process="app", pid=12, code=3)
    log.info("skipped", "skipped: dependency failed", process="job")
    log.info("shutdown", "shutdown begun (SIGTERM)")
    log.warning("killed", "did not stop within 5s, sent SIGKILL", process="app", pid=12)
    log.error("failed", "failed", process="app")
    log.error("config", "bad config")
    assert read_back().decode().splitlines() == [
        "trinit: app (pid 12) exited with code 3",
        "trinit: job skipped: dependency failed",
        "trinit: shutdown begun (SIGTERM)",
        "trinit: warning: app (pid 12) did not stop within 5s, sent SIGKILL",
        "trinit: error: app failed",
        "trinit: error: bad config",
    ]


def test_json_shape(sink: tuple[FdWriter, Callable[[], bytes]]) -> None:
    writer, read_back = sink
    log = Logger(log_format="json", writer=writer)
    log.info("exited", "exited with code 3", process="app", pid=12, code=3, runtime=1.5)
    log.warning("shutdown", "shutdown begun", signal="SIGTERM", where=Path("/x"), ts="clash")
    first, second = (json.loads(line) for line in read_back().splitlines())
    assert list(first) == ["ts", "level", "event", "process", "pid", "message", "code", "runtime"]
    assert TS_RE.match(first["ts"])
    assert first | {"ts": None} == {
        "ts": None,
        "level": "info",
        "event": "exited",
        "process": "app",
        "pid": 12,
        "message": "exited with code 3",
        "code": 3,
        "runtime": 1.5,
    }
    # process/pid always present; unknown values via str(); base keys never overridden.
    assert second["process"] is None and second["pid"] is None
    assert second["level"] == "warning"
    assert second["where"] == "/x"
    assert TS_RE.match(second["ts"]) and second["ts_"] == "clash"


def test_format_and_verbosity_settable_after_construction(sink: tuple[FdWriter, Callable[[], bytes]]) -> None:
    writer, read_back = sink
    log = Logger(writer=writer)
    log.debug("reaped", "hidden")
    log.verbosity = 1
    log.log_format = "json"
    log.debug("reaped", "orphan reaped", pid=99)
    (line,) = read_back().splitlines()
    assert json.loads(line)["message"] == "orphan reaped"


@pytest.mark.parametrize(
    ("verbosity", "shown"),
    [
        (2, ["debug", "info", "warning", "error"]),
        (1, ["debug", "info", "warning", "error"]),
        (0, ["info", "warning", "error"]),
        (-1, ["warning", "error"]),
        (-2, ["error"]),
        (-5, ["error"]),
    ],
)
def test_verbosity_filter(
    sink: tuple[FdWriter, Callable[[], bytes]], verbosity: int, shown: list[str]
) -> None:
    writer, read_back = sink
    log = Logger(log_format="json", verbosity=verbosity, writer=writer)
    log.debug("e", "m")
    log.info("e", "m")
    log.warning("e", "m")
    log.error("e", "m")
    assert [json.loads(line)["level"] for line in read_back().splitlines()] == shown
    assert [lvl for lvl in ("debug", "info", "warning", "error") if log.enabled(lvl)] == shown


def test_unencodable_text_does_not_crash(sink: tuple[FdWriter, Callable[[], bytes]]) -> None:
    writer, read_back = sink
    log = Logger(writer=writer)
    log.info("started", "started /bin/caf\udce9", process="x")  # a surrogate-escaped argv
    assert read_back() == b"trinit: x started /bin/caf\\udce9\n"


def _stalled_logger(capacity: int = 4) -> tuple[Logger, FdWriter, int, int]:
    """A logger whose stderr is a tiny pipe, already full of ``P`` bytes, that nobody reads yet."""
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    os.set_blocking(w, False)
    try:
        while os.write(w, b"P" * 4096):
            pass
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
    writer = FdWriter(w, capacity=capacity)
    return Logger(writer=writer), writer, r, w


def test_never_blocks_and_counts_dropped_lines() -> None:
    log, writer, r, w = _stalled_logger()
    try:
        t0 = time.monotonic()
        for i in range(2000):  # ~130 KB: far more than the pipe and the queue hold
            log.info("spam", f"line {i:05d} " + "x" * 50)
        assert time.monotonic() - t0 < 5
        dropped = log.dropped
        assert dropped > 0

        result: list[bytes] = []

        def reader() -> None:
            chunks = []
            while b := os.read(r, 65536):
                chunks.append(b)
            result.append(b"".join(chunks).lstrip(b"P"))

        thread = threading.Thread(target=reader)
        thread.start()
        writer.close(10)  # the reader drains everything queued
        assert writer.flushed()
        log.info("after", "after the stall")
        log.close(10)
        os.close(w)
        thread.join(10)
    finally:
        os.close(r)
    lines = result[0].splitlines(keepends=True)
    # The count comes right before the first line accepted after the stall.
    assert lines[-1] == b"trinit: after the stall\n"
    m = DROP_RE.fullmatch(lines[-2])
    assert m and int(m.group(1)) == dropped
    # Earlier notices can appear if the queue briefly accepted lines while the pipe filled.
    notices = [int(m.group(1)) for line in lines[:-2] if (m := DROP_RE.fullmatch(line))]
    kept = [line for line in lines[:-2] if not DROP_RE.fullmatch(line)]
    numbers = [int(line.split()[2]) for line in kept]
    assert numbers == sorted(numbers)  # in order, each line whole
    assert all(len(line) == len(b"trinit: line 00000 ") + 50 + 1 for line in kept)
    assert len(kept) + sum(notices) + dropped == 2000
    assert log.dropped == 0


def test_close_reports_dropped_count() -> None:
    log, writer, r, w = _stalled_logger()
    try:
        for i in range(500):
            log.info("spam", f"line {i} " + "x" * 50)
        dropped = log.dropped
        assert dropped > 0
        result: list[bytes] = []

        def reader() -> None:
            chunks = []
            while b := os.read(r, 65536):
                chunks.append(b)
            result.append(b"".join(chunks).lstrip(b"P"))

        thread = threading.Thread(target=reader)
        thread.start()
        writer.close(10)
        log.close(10)  # nothing else to log: close reports the count itself
        os.close(w)
        thread.join(10)
    finally:
        os.close(r)
    m = DROP_RE.fullmatch(result[0].splitlines(keepends=True)[-1])
    assert m and int(m.group(1)) == dropped


def test_close_is_bounded_when_stderr_stalls() -> None:
    log, _writer, r, w = _stalled_logger()
    try:
        for i in range(500):
            log.info("spam", f"line {i} " + "x" * 50)
        t0 = time.monotonic()
        log.close(0.2)
        assert 0.19 <= time.monotonic() - t0 < 2
    finally:
        os.close(r)
        os.close(w)


def test_close_without_any_line_is_a_no_op() -> None:
    log = Logger()
    log.close()  # no writer was ever created, nothing to flush


def _run_child(code: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)


def test_default_writer_is_stderr_and_works_without_trio() -> None:
    proc = _run_child(
        "import sys\n"
        "from trinit.io.log import Logger\n"
        "log = Logger()\n"
        "log.info('started', 'started', process='app', pid=7)\n"
        "log.close()\n"
        "assert 'trio' not in sys.modules\n"
        "import trio\n"
        "async def main():\n"
        "    log.log_format = 'json'\n"
        "    log.warning('inside', 'inside trio')\n"
        "trio.run(main)\n"
        "log.log_format = 'text'\n"
        "log.error('after', 'after trio.run')\n"
        "log.close()\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""
    first, second, third = proc.stderr.decode().splitlines()
    assert first == "trinit: app (pid 7) started"
    assert json.loads(second)["message"] == "inside trio"
    assert third == "trinit: error: after trio.run"


def test_stderr_closed_does_not_crash() -> None:
    proc = _run_child(
        "import os\n"
        "from trinit.io.log import Logger\n"
        "os.close(2)\n"
        "log = Logger()\n"
        "for i in range(10000):\n"
        "    log.info('spam', 'x' * 100)\n"
        "log.close(5)\n"
        "print('ok')\n"
    )
    assert proc.returncode == 0
    assert proc.stdout == b"ok\n"


def test_default_writer_is_the_shared_stderr_writer() -> None:
    from trinit.io.writer import stdio_writer

    assert stdio_writer(2) is stdio_writer(2)
    assert stdio_writer(1) is not stdio_writer(2)
    assert Logger().writer is stdio_writer(2)


def test_rfc3339_utc() -> None:
    assert rfc3339_utc(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339_utc(1700000000.1234) == "2023-11-14T22:13:20.123Z"
    assert TS_RE.match(rfc3339_utc())
