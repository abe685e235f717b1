"""The control socket's rules as PID 1 (SPEC §8), through the real ``trinit ctl`` client.

test_ctl_real.py walks the commands once; these pin the semantics one by one: where the
socket is (or is not), what a stop of main or a ``shutdown`` exits with, that a user's
restart never counts toward ``max_restarts``, that ``start`` waits for ``after``, signals.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .helpers import TRINIT, clean_env, harness_fixture, wait_for

pytestmark = pytest.mark.pid1

h = harness_fixture()


def ctl(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRINIT, "ctl", "--socket", str(sock), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
    )


def states(sock: Path) -> dict[str, dict[str, Any]]:
    proc = ctl(sock, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return {p["name"]: p for p in json.loads(proc.stdout)}


def listening_sockets(pid: int) -> list[str]:
    """The unix sockets ``pid`` listens on (trio's own wakeup socketpair is not listening)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    with open(f"/proc/{pid}/net/unix") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    # Num RefCount Protocol Flags Type St Inode [Path]; __SO_ACCEPTCON (0x10000) in Flags: listening
    return [row[7] if len(row) > 7 else "" for row in rows if row[6] in inodes and int(row[3], 16) & 0x10000]


def start(h: Any, tmp_path: Path, toml: str, *options: str) -> tuple[Any, Path]:
    sock = tmp_path / "ctl.sock"
    path = tmp_path / "trinit.toml"
    path.write_text(toml)
    run = h.start(["-c", str(path), *options], env={"TRINIT_CONTROL_SOCKET": str(sock)})
    wait_for(lambda: sock.exists() or not run.running(), message="the control socket")
    assert run.running(), run.stderr()
    return run, sock


SERVICES = """
[process.db]
command = ["sleep", "infinity"]
restart = "on-failure"
max_restarts = 0

[process.app]
command = ["sleep", "infinity"]
main = true
after = ["db"]
"""


def test_zero_config_serves_only_with_control_socket(h, tmp_path):
    sock = tmp_path / "zero.sock"
    run = h.start(["--control-socket", str(sock), "--", "sleep", "infinity"])
    wait_for(lambda: sock.exists() or not run.running(), message="the control socket")
    assert states(sock)["main"]["kind"] == "main"
    assert ctl(sock, "shutdown").returncode == 0
    assert run.wait() == 143  # sleep's status after SIGTERM, as with `docker stop`
    assert not sock.exists()

    quiet = h.start(["--", "sleep", "infinity"], env={"TRINIT_CONTROL_SOCKET": ""})
    quiet.wait_handling()
    assert listening_sockets(quiet.pid) == []
    quiet.send(15)
    quiet.wait()


def test_control_socket_false_turns_it_off(h, tmp_path):
    path = tmp_path / "trinit.toml"
    path.write_text("[trinit]\ncontrol_socket = false\n" + SERVICES)
    run = h.start(["-v", "-c", str(path)], env={"TRINIT_CONTROL_SOCKET": ""})
    wait_for(lambda: run.stderr().count("started: ") == 2, message="both started")
    assert "control socket" not in run.stderr()
    assert listening_sockets(run.pid) == []
    run.send(15)
    assert run.wait() == 143


def test_a_read_only_folder_is_a_warning_and_trinit_runs_on(h, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], check=True)
    try:
        path = tmp_path / "trinit.toml"
        path.write_text(SERVICES)
        run = h.start(["-c", str(path)], env={"TRINIT_CONTROL_SOCKET": str(folder / "ctl.sock")})
        wait_for(lambda: run.stderr().count("started: ") == 2, message="both started")
        assert f"warning: no control socket at {folder}/ctl.sock" in run.stderr()
        assert "Read-only file system" in run.stderr()
        run.send(15)
        assert run.wait() == 143
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("how", [("stop", "app"), ("shutdown",)])
def test_stop_main_and_shutdown_are_the_ordered_shutdown(h, tmp_path, how):
    run, sock = start(h, tmp_path, SERVICES)
    wait_for(lambda: ctl(sock, "wait", "app", "--timeout", "1").returncode == 0)
    assert ctl(sock, *how).returncode == 0
    assert run.wait() == 143  # main's status, exactly as after a SIGTERM
    log = run.stderr()
    assert "shutdown begun" in log and log.index("app (pid") < log.rindex("db (pid")
    assert "SIGKILL" not in log


def test_user_restarts_never_count_toward_max_restarts(h, tmp_path):
    run, sock = start(h, tmp_path, SERVICES)
    assert ctl(sock, "wait", "app", "--timeout", "20").returncode == 0
    for _ in range(3):
        assert ctl(sock, "restart", "db", "--wait").returncode == 0
    db = states(sock)["db"]
    assert db["state"] == "ready" and db["restarts"] == 3 and run.running()
    assert ctl(sock, "stop", "db", "--wait").returncode == 0  # a stop is no failure either
    assert states(sock)["db"]["state"] == "stopped" and run.running()
    assert "failed" not in run.stderr()
    run.send(15)
    assert run.wait() == 143


def test_start_waits_for_after_and_signal_reaches_one_process(h, tmp_path):
    marker = tmp_path / "got-usr1"
    toml = f"""
[process.db]
command = ["sleep", "infinity"]

[process.web]
command = ["sh", "-c", "trap 'echo usr1 > {marker}' USR1; while :; do sleep 0.1; done"]
after = ["db"]

[process.app]
command = ["sleep", "infinity"]
main = true
"""
    run, sock = start(h, tmp_path, toml)
    assert ctl(sock, "wait", "web", "app", "--timeout", "20").returncode == 0
    assert ctl(sock, "stop", "db", "web", "--wait").returncode == 0
    assert ctl(sock, "start", "web").returncode == 0
    assert states(sock)["web"]["state"] == "waiting"  # db is stopped: web waits for it
    assert ctl(sock, "start", "db").returncode == 0
    assert ctl(sock, "wait", "web", "--timeout", "20").returncode == 0

    assert ctl(sock, "signal", "web", "USR1").returncode == 0
    wait_for(marker.exists, message="web's USR1 trap")
    not_running = ctl(sock, "signal", "db", "NOPE")
    assert not_running.returncode == 2  # a usage error, caught by the client
    run.send(15)
    assert run.wait() == 143
