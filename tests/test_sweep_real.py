"""The final sweep for real (SPEC §5.4): a process that keeps re-forking does not outlive
trinit, and without /proc the sweep says so and does what it can.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import require_namespaces

#: Ignores SIGTERM; leaves its main process at once, then forks every 0.5 ms, the parent
#: exiting each time: its pid keeps changing, so one look at /proc is always stale.
REFORKER = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
marker = sys.argv[1]
if os.fork():
    os._exit(0)
while True:
    with open(marker + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {os.getpgrp()}")
    os.replace(marker + ".tmp", marker)
    time.sleep(0.0005)
    if os.fork():
        os._exit(0)
"""


def _config(tmp_path: Path, main: str, budget: float) -> Path:
    config = tmp_path / "trinit.toml"
    config.write_text(
        f"[trinit]\nshutdown_timeout = {budget}\n\n[process.app]\nmain = true\n"
        f'command = ["sh", "-c", "{main}"]\n'
    )
    return config


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _kill_group(pgid: int) -> None:
    """Test clean-up: the re-forker's group, again and again until it is empty."""
    for _ in range(200):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.005)


def test_a_process_that_keeps_reforking_does_not_outlive_trinit(tmp_path: Path) -> None:
    (tmp_path / "reforker.py").write_text(REFORKER)
    marker = tmp_path / "marker"
    config = _config(tmp_path, f"{sys.executable} reforker.py {marker}; sleep 0.5", 1)
    err = tmp_path / "stderr"
    # Files, not pipes: an escaped re-forker must not hold the test's pipes open.
    with err.open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trinit", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            cwd=tmp_path,
        )
    try:
        code = proc.wait(30)
        time.sleep(0.3)
        pid, pgid = map(int, marker.read_text().split())
        time.sleep(0.2)
        assert marker.read_text() == f"{pid} {pgid}", "the re-forker still runs after trinit exited"
        assert not _alive(pid), err.read_text()
        assert code == 0, err.read_text()
    finally:
        proc.kill()
        if marker.exists():
            _kill_group(int(marker.read_text().split()[1]))


def _without_proc(
    tmp_path: Path, *, pid1: bool, main: str, budget: float
) -> subprocess.CompletedProcess[str]:
    require_namespaces()
    trinit = f"exec {sys.executable} -m trinit -c {_config(tmp_path, main, budget)}"
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if pid1:
        unshare[1:1] = ["--pid", "--fork"]
    return subprocess.run(
        [*unshare, "sh", "-c", f"mount -t tmpfs none /proc && {trinit}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )


def test_as_pid1_without_proc_the_sweep_says_so_and_uses_kill_minus_1(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = _without_proc(tmp_path, pid1=True, main="sleep 1000 & exit 0", budget=8)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "warning: cannot list the processes left behind (/proc is not mounted; mount proc" in proc.stderr
    assert "every process of the namespace" in proc.stderr
    assert "shutdown_timeout" not in proc.stderr  # the orphan got SIGTERM, not the budget's SIGKILL
    assert took < 6, proc.stderr


def test_not_pid1_without_proc_the_sweep_says_what_it_cannot_do(tmp_path: Path) -> None:
    proc = _without_proc(tmp_path, pid1=False, main="exit 0", budget=1)
    assert proc.returncode == 0, proc.stderr
    assert "warning: cannot list the processes left behind (/proc is not mounted;" in proc.stderr
    assert "only the processes trinit started were stopped" in proc.stderr
