"""SPEC §5.5 for real: prefixed output is drained to the last byte within the shutdown budget,
whatever could not be written is counted in a log line, and no line is ever torn.

trinit runs as a plain child (not PID 1) with its stdout on a pipe that a slow, or stalled,
reader empties.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

LINE = re.compile(rb"app \| line (\d+) x{40}\n")

WRITER = """
import os, signal, sys
count = 0
def done(signum, frame):
    with open(sys.argv[2], "w") as f:
        f.write(str(count))
    os._exit(0)
signal.signal(signal.SIGTERM, done)
for i in range(int(sys.argv[1])):
    os.write(1, b"line %d %s\\n" % (i, b"x" * 40))
    count += 1
done(0, None)
"""


def _config(tmp_path: Path, lines: int, budget: float) -> Path:
    (tmp_path / "writer.py").write_text(WRITER)
    config = tmp_path / "trinit.toml"
    config.write_text(
        f"[trinit]\nshutdown_timeout = {budget}\n\n[process.app]\n"
        f'command = ["{sys.executable}", "writer.py", "{lines}", "written"]\n'
        'main = true\noutput = "prefix"\n'
    )
    return config


def _start(tmp_path: Path, config: Path) -> tuple[subprocess.Popen[bytes], Path]:
    err = tmp_path / "stderr"
    with err.open("wb") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trinit", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=err_file,
            cwd=tmp_path,
        )
    return proc, err


def _check_lines(out: bytes) -> int:
    """Every line whole and in order, none missing in between; returns how many."""
    lines = out.splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = LINE.fullmatch(line)
        assert m is not None, f"line {i} is torn or wrong: {line[:80]!r}"
        assert int(m.group(1)) == i, f"line {i} is followed by line {int(m.group(1))}"
    return len(lines)


def test_a_slow_reader_gets_every_line(tmp_path: Path) -> None:
    """~4.5 MB queued when the app exits, read at ~1.6 MB/s: the old fixed 1 s drain lost the end."""
    total = 60_000
    proc, err = _start(tmp_path, _config(tmp_path, total, 30))
    assert proc.stdout is not None
    chunks: list[bytes] = []
    while True:
        data = proc.stdout.read1(32 * 1024)  # type: ignore[attr-defined]
        if not data:
            break
        chunks.append(data)
        time.sleep(0.02)
    assert proc.wait(30) == 0, err.read_text()
    assert _check_lines(b"".join(chunks)) == total, err.read_text()
    assert "could not be written" not in err.read_text()


def test_a_stalled_reader_costs_counted_lines_never_torn_ones(tmp_path: Path) -> None:
    proc, err = _start(tmp_path, _config(tmp_path, 2_000_000, 1))
    assert proc.stdout is not None
    time.sleep(1.5)  # the app fills the pipes and the writer's queue, then waits
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(proc.stdout.read()))  # type: ignore[union-attr]
    reader.start()
    reader.join(10)
    log = err.read_text()
    written = int((tmp_path / "written").read_text())
    got = _check_lines(received[0])
    m = re.search(
        r"warning: (\d+) lines \((\d+) bytes\) of process output could not be written to stdout", log
    )
    assert m is not None, log
    assert got + int(m.group(1)) == written, log
