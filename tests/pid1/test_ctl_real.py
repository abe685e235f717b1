"""``trinit ctl`` and ``trinit probe`` end to end: the real client against a real trinit as PID 1.

Only what SPEC §8 and docs/control.md promise is asserted.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from .helpers import TRINIT, clean_env, harness_fixture, wait_for

pytestmark = pytest.mark.pid1

h = harness_fixture()

CONFIG = """
[trinit]
control_socket = "{sock}"

[process.cache]
command = ["sleep", "infinity"]

[process.app]
command = ["sleep", "infinity"]
main = true
after = {{ cache = "ready" }}

[process.job]
command = ["true"]
oneshot = true
after = ["app"]
"""


def client(*args: str, sock: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRINIT, *args[:1], "--socket", str(sock), *args[1:]]
        if args[0] == "ctl"
        else [TRINIT, *args, "--socket", str(sock)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
    )


def status(sock: Path) -> dict[str, dict[str, Any]]:
    proc = client("ctl", "status", "--json", sock=sock)
    assert proc.returncode == 0, proc.stderr
    return {p["name"]: p for p in json.loads(proc.stdout)}


@pytest.fixture
def config(tmp_path: Path) -> tuple[Path, Path]:
    sock = tmp_path / "run" / "control.sock"
    path = tmp_path / "trinit.toml"
    path.write_text(CONFIG.format(sock=sock))
    check = subprocess.run(
        [TRINIT, "check", "-c", str(path)], capture_output=True, text=True, env=clean_env()
    )
    assert check.returncode == 0, check.stderr
    return path, sock


def test_status_steering_probes_and_events_against_a_real_trinit(h, config, pid1):
    path, sock = config
    run = h.start(["-c", str(path)])
    wait_for(lambda: client("probe", "ready", sock=sock).returncode == 0 or not run.running())
    assert run.running(), run.stderr()
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600

    procs = status(sock)
    assert list(procs) == ["cache", "app", "job"]  # config order
    assert [procs[n]["kind"] for n in procs] == ["service", "main", "oneshot"]
    assert procs["cache"]["state"] in ("running", "ready") and isinstance(procs["cache"]["pid"], int)
    assert procs["job"]["state"] == "exited" and procs["job"]["last_exit"] == {"code": 0}
    table = client("ctl", "status", sock=sock)
    assert table.returncode == 0 and table.stdout.split("\n")[0].split()[:3] == ["NAME", "KIND", "STATE"]
    assert client("probe", "live", sock=sock).returncode == 0

    old_pid = procs["cache"]["pid"]
    assert client("ctl", "restart", "cache", "--wait", sock=sock).returncode == 0
    assert status(sock)["cache"]["pid"] not in (None, old_pid)

    stopped = client("ctl", "stop", "cache", "--wait", sock=sock)
    assert stopped.returncode == 0, stopped.stderr
    assert status(sock)["cache"]["state"] == "stopped"
    assert client("probe", "ready", sock=sock).returncode == 1  # a process stopped through ctl is not up
    assert client("ctl", "start", "cache", "--wait", sock=sock).returncode == 0
    assert client("probe", "ready", sock=sock).returncode == 0

    unknown = client("ctl", "start", "cach", sock=sock)
    assert unknown.returncode == 1 and unknown.stderr.startswith("trinit ctl: ") and "cache" in unknown.stderr
    assert client("ctl", "wait", "job", "--for", "completed", "--timeout", "5", sock=sock).returncode == 0

    follower = subprocess.Popen(
        [TRINIT, "ctl", "--socket", str(sock), "events", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(follower.stdout or ()), daemon=True)
    reader.start()
    try:
        # it follows once a restart shows up in its stream (it may connect after the first one)
        for _ in range(50):
            assert client("ctl", "restart", "cache", "--wait", sock=sock).returncode == 0
            if any('"cache"' in line for line in list(lines)):
                break
            time.sleep(0.1)
        assert any('"cache"' in line for line in list(lines)), follower.stderr
        assert client("ctl", "shutdown", sock=sock).returncode == 0
        assert follower.wait(30) == 0
        reader.join(10)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.stderr is not None and follower.stderr.read() == ""
    events = [json.loads(line)["event"] for line in lines]
    assert "state" in events and "shutdown_done" in events
    run.wait()
    assert not sock.exists()  # removed at exit
    assert client("ctl", "status", sock=sock).returncode == 3
    assert client("probe", "live", sock=sock).returncode == 1
