"""Health checks, sd_notify and fd readiness, and the watchdog (SPEC §9), for real.

trinit runs as PID 1 of fresh PID and network namespaces (fixed ports never clash) with
real programs: an HTTP server that turns to 500, a server that accepts and never answers,
Debian's ``systemd-notify`` (libsystemd's own client), a Python program speaking the
protocol with the socket module, a shell writing a newline to fd 3, and PostgreSQL, which
sends READY=1 itself when NOTIFY_SOCKET is set. trinit logs JSON, so the tests read its
event times.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from .helpers import PY, TRINIT, child, wait_for
from .orch.common import orch_fixture, toml_config, wait_trinit

pytestmark = pytest.mark.pid1

h = orch_fixture()


def events(run: Any, event: str | None = None, process: str | None = None) -> list[dict[str, Any]]:
    """trinit's JSON log lines (of ``event`` about ``process``), in order."""
    out = []
    for line in run.log_lines():
        if not line.startswith("{"):
            continue
        obj = json.loads(line)
        if "event" not in obj:
            continue  # a process's own line
        if (event is None or obj["event"] == event) and (process is None or obj.get("process") == process):
            out.append(obj)
    return out


def wait_event(
    run: Any, event: str, process: str | None = None, count: int = 1, timeout: float = 15
) -> list[dict[str, Any]]:
    def seen() -> list[dict[str, Any]] | None:
        if not run.running():
            pytest.fail(f"trinit exited ({run.proc.returncode}) before {count} x {event}:\n{run.stderr()}")
        got = events(run, event, process)
        return got if len(got) >= count else None

    return list(wait_for(seen, timeout, message=lambda: f"{count} x {event} {process}; log:\n{run.stderr()}"))


def ts(obj: dict[str, Any]) -> float:
    return datetime.fromisoformat(obj["ts"].replace("Z", "+00:00")).timestamp()


def config(tmp_path: Path, processes: dict[str, dict[str, Any]], **trinit: Any) -> str:
    """The TOML of ``processes``, logging JSON, with its control socket in ``tmp_path``."""
    return toml_config(processes, control_socket=str(tmp_path / "ctl.sock"), log_format="json", **trinit)


def ctl(run: Any, *args: str) -> subprocess.CompletedProcess[str]:
    sock = run.stderr_path.parent / "ctl.sock"
    return subprocess.run(
        [TRINIT, "ctl", "--socket", str(sock), *args], capture_output=True, text=True, timeout=15
    )


def probe(tmp_path: Path, what: str) -> int:
    return subprocess.run(
        [TRINIT, "probe", what, "--socket", str(tmp_path / "ctl.sock")], timeout=15
    ).returncode


def status(run: Any, name: str) -> dict[str, Any]:
    reply = ctl(run, "status", "--json", name)
    assert reply.returncode == 0, reply.stderr
    return dict(json.loads(reply.stdout)[0])


def hits(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


# ------------------------------------------------------------------------------ health checks


def test_a_server_turning_to_500_is_restarted_after_exactly_failures_attempts(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "hits"
    toml = config(
        tmp_path,
        {
            "web": {
                "command": child("http_health", 8080, 2, log),
                "ready": {"tcp": "127.0.0.1:8080", "timeout": 10},
                "health": {"http": "http://127.0.0.1:8080/healthz", "interval": "0.2s", "failures": 3},
                "restart_delay": 0.2,
                "max_restarts": 1,
                "on_failure": "ignore",
            },
            "app": {"command": ["sleep", "60"], "main": True},
        },
    )
    run = h.run_config(toml)
    wait_trinit(run)
    wait_event(run, "failed", "web")  # the second run turned unhealthy too: max_restarts = 1 ran out
    answers = hits(log)
    pids = list(dict.fromkeys(pid for pid, _, _ in answers))
    assert len(pids) == 2, answers
    for pid in pids:  # each run: 2 answers 200, then exactly 3 answers 500, then it was stopped
        assert [code for p, _, code in answers if p == pid] == ["200", "200", "500", "500", "500"], answers
    unhealthy = events(run, "unhealthy", "web")
    assert [e["action"] for e in unhealthy] == ["restart", "restart"]
    assert "3 health checks in a row failed (http http://127.0.0.1:8080/healthz)" in unhealthy[0]["message"]
    assert len(events(run, "restarting", "web")) == 1
    (healthy,) = events(run, "healthy", "web")  # the restarted run came back healthy
    assert ts(unhealthy[0]) < ts(healthy) < ts(unhealthy[1])
    assert "giving up (max_restarts = 1)" in events(run, "failed", "web")[0]["message"]
    run.send(signal.SIGTERM)
    assert run.wait() == 143 or run.returncode == 0, run.stderr()


def test_unready_removes_the_ready_file_and_brings_it_back_without_a_restart(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flag, ready = tmp_path / "flag", tmp_path / "run" / "ready"
    flag.touch()
    toml = config(
        tmp_path,
        {
            "svc": {
                "command": ["sleep", "60"],
                "health": {"file": str(flag), "interval": "0.1s", "failures": 2, "action": "unready"},
            },
        },
        ready_file=str(ready),
    )
    run = h.run_config(toml, net=False)
    wait_trinit(run)
    wait_for(ready.exists, message="the ready file")
    pid = status(run, "svc")["pid"]
    wait_for(lambda: status(run, "svc")["health"] == "healthy", message="healthy")
    flag.unlink()
    wait_for(lambda: not ready.exists(), message="the ready file to go")
    obj = status(run, "svc")
    assert obj["health"] == "unhealthy" and obj["state"] == "ready" and obj["pid"] == pid
    assert probe(tmp_path, "ready") == 1 and probe(tmp_path, "live") == 1
    flag.touch()
    wait_for(ready.exists, message="the ready file to come back")
    obj = status(run, "svc")
    assert obj["health"] == "healthy" and obj["pid"] == pid and obj["restarts"] == 0
    assert probe(tmp_path, "live") == 0
    assert len(events(run, "unhealthy", "svc")) == 1 and len(events(run, "healthy", "svc")) == 1
    run.send(signal.SIGTERM)
    assert run.wait() == 0, run.stderr()


def test_fail_applies_on_failure(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flag = tmp_path / "flag"
    flag.touch()
    toml = config(
        tmp_path,
        {
            "svc": {
                "command": ["sleep", "60"],
                "restart": "always",
                "health": {
                    "exec": ["test", "-e", str(flag)],
                    "interval": "0.1s",
                    "failures": 1,
                    "action": "fail",
                },
            },
            "app": {"command": ["sleep", "60"], "main": True},
        },
    )
    run = h.run_config(toml, net=False)
    wait_trinit(run)
    wait_event(run, "started", "app")
    time.sleep(0.5)
    flag.unlink()
    assert run.wait() == 1, run.stderr()  # on_failure = "shutdown": svc's failure is trinit's exit code
    assert events(run, "unhealthy", "svc")[0]["message"].endswith("; it has failed")
    assert not events(run, "restarting", "svc")  # failed, whatever restart says


def test_a_hung_probe_blocks_nothing_beyond_attempt_timeout(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "hits"
    toml = config(
        tmp_path,
        {
            "hung": {
                "command": child("http_health", 8081, -1, log),
                "ready": {"tcp": "127.0.0.1:8081"},
                "health": {
                    "http": "http://127.0.0.1:8081/",
                    "interval": "0.5s",
                    "attempt_timeout": "0.3s",
                    "failures": 2,
                    "action": "unready",
                },
            },
            "app": {"command": ["sleep", "60"], "main": True, "stop_signal": "KILL"},
        },
    )
    run = h.run_config(toml)
    wait_trinit(run)
    (ready,) = wait_event(run, "ready", "hung")
    began = time.monotonic()
    answered = ctl(run, "status")  # trinit answers while a probe hangs
    assert answered.returncode == 0 and time.monotonic() - began < 2, answered.stderr
    (unhealthy,) = wait_event(run, "unhealthy", "hung")
    # Attempts at +0.5 s (cut at +0.8 s) and +1.0 s (cut at +1.3 s): unhealthy at ready + 1.3 s.
    assert 1.25 <= ts(unhealthy) - ts(ready) < 1.8, (ready, unhealthy)
    time.sleep(0.2)
    sent = time.monotonic()
    run.send(signal.SIGTERM)  # a shutdown during a hung attempt is not held up by it
    run.wait()
    assert time.monotonic() - sent < 3.0, run.stderr()


# ------------------------------------------------------------------------------ sd_notify and fd


def test_notify_from_a_real_client_and_fd_from_a_shell_gate_their_dependents(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marks = tmp_path / "marks"
    toml = config(
        tmp_path,
        {
            "note": {
                # systemd-notify (libsystemd) is a child of the shell: a descendant is heard.
                "command": f"sleep 0.5; date +%s.%N > {marks}.note; systemd-notify --ready --status='warm'; exec sleep 60",
                "shell": True,
                "ready": {"notify": True, "timeout": 10},
            },
            "fd3": {
                "command": f"sleep 0.5; date +%s.%N > {marks}.fd; echo >&3; exec sleep 60",
                "shell": True,
                "ready": {"fd": 3, "timeout": 10},
            },
            "app": {
                "command": f"date +%s.%N > {marks}.app; exec sleep 60",
                "shell": True,
                "main": True,
                "after": ["note", "fd3"],
            },
        },
    )
    run = h.run_config(toml, net=False)
    wait_trinit(run)
    wait_for(
        lambda: Path(f"{marks}.app").exists() and Path(f"{marks}.app").read_text().strip(),
        message="app to start",
    )
    note, fd, app = (float(Path(f"{marks}.{n}").read_text()) for n in ("note", "fd", "app"))
    assert app > note and app > fd
    obj = status(run, "note")
    assert obj["state"] == "ready" and obj["status_text"] == "warm"
    run.send(signal.SIGTERM)
    run.wait()


def test_another_process_cannot_speak_for_it_and_the_watchdog_restarts_a_silent_one(
    h, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "svc"
    folder.mkdir()
    toml = config(
        tmp_path,
        {
            "svc": {
                "command": child("notifier", folder, "serve"),
                "ready": {"notify": True, "timeout": 30},
                "watchdog": "1s",
                "restart_delay": 0.1,
            },
            "spoof": {"command": child("notifier", folder, "spoof")},
        },
    )
    run = h.run_config(toml, "-vv", net=False)
    wait_trinit(run)
    wait_for(lambda: (folder / "spoofed").exists(), message="the spoofer to send")
    time.sleep(0.5)
    obj = status(run, "svc")
    assert obj["state"] == "running" and obj["status_text"] is None, obj  # READY=1 from spoof: ignored
    spoofer = int((folder / "spoofed").read_text())
    assert any(f"from pid {spoofer}" in e["message"] for e in events(run, "notify", "svc")), run.stderr()
    env = json.loads((folder / "env").read_text())
    assert env["NOTIFY_SOCKET"].startswith("@") and env["WATCHDOG_USEC"] == "1000000"
    assert env["WATCHDOG_PID"] == (folder / "pid").read_text() == str(obj["pid"])
    (folder / "ping").touch()
    (folder / "go").touch()
    wait_event(run, "ready", "svc")
    time.sleep(2.5)  # fed every 0.1 s: healthy, not restarted
    assert not events(run, "unhealthy", "svc") and status(run, "svc")["status_text"] == "serving"
    (folder / "ping").unlink()
    stopped = time.time()
    (unhealthy,) = wait_event(run, "unhealthy", "svc")
    # The last ping came at most 0.1 s before the file went: unhealthy within D (1 s) of it, + 0.3 s.
    assert 0.8 <= ts(unhealthy) - stopped <= 1.3, unhealthy
    assert "sent no WATCHDOG=1 for 1 s" in unhealthy["message"]
    wait_event(run, "started", "svc", count=2)
    run.send(signal.SIGTERM)
    run.wait()


@pytest.fixture
def pgdata() -> Any:
    """An empty PostgreSQL cluster owned by the postgres user (initdb as that user)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found or shutil.which("psql") is None:
        if os.environ.get("TRINIT_REQUIRE_NAMESPACES"):
            pytest.fail("PostgreSQL is not installed: .ci/health-setup installs it")
        pytest.skip("PostgreSQL is not installed (.ci/health-setup installs it)")
    initdb = found[-1]
    folder = Path(
        subprocess.run(
            ["mktemp", "-d", "/tmp/trinit-pg.XXXXXX"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    try:
        os.chmod(folder, 0o755)
        shutil.chown(folder, "postgres", "postgres")
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(initdb), "-D", str(folder / "data"), "-A", "trust"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_postgresql_ready_by_its_own_sd_notify_gates_its_dependent(h, tmp_path: Path, pgdata: Path) -> None:  # type: ignore[no-untyped-def]
    toml = config(
        tmp_path,
        {
            "db": {
                "command": [
                    str(sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))[-1]),
                    "-D",
                    str(pgdata / "data"),
                    "-k",
                    str(pgdata),
                    "-c",
                    "listen_addresses=",
                ],
                "user": "postgres",
                "cwd": str(pgdata),
                "ready": {"notify": True, "timeout": 60},
                "stop_signal": "INT",
            },
            # Runs once db said READY=1: its first connection must work (no retries).
            "query": {
                "command": ["psql", "-h", str(pgdata), "-U", "postgres", "-tAc", "select 40 + 2"],
                "user": "postgres",
                "cwd": str(pgdata),
                "oneshot": True,
                "after": ["db"],
                "output": "prefix",
            },
        },
    )
    run = h.run_config(toml, net=False)
    wait_trinit(run)
    wait_event(run, "exited", "query", timeout=60)
    # Its output is pumped to trinit's stdout on its own: it may land after the exit's log line.
    wait_for(lambda: '"process":"query","stream":"stdout","line":"42"' in run.stdout(), message=run.stderr)
    (ready,) = events(run, "ready", "db")
    (started,) = events(run, "started", "query")
    assert ts(started) >= ts(ready)
    assert events(run, "exited", "query")[0]["code"] == 0
    run.send(signal.SIGTERM)
    assert run.wait(30) == 0, run.stderr()
    assert any("says it is stopping" in e["message"] for e in events(run, "notify", "db")), run.stderr()


def test_waiting_for_a_notification_costs_no_wakeup(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from .test_scale import context_switches

    toml = config(
        tmp_path,
        {
            f"quiet{i}": {
                "command": [PY, "-c", "import time; time.sleep(60)"],
                "ready": {"notify": True, "timeout": "1h"},
            }
            for i in range(10)
        },
    )
    run = h.run_config(toml, net=False)
    pid = wait_trinit(run)
    wait_event(run, "started", count=10)
    time.sleep(1.0)
    before = context_switches(pid)
    time.sleep(2.0)
    after = context_switches(pid)
    assert sum(after.get(t, 0) - before.get(t, 0) for t in before.keys() | after.keys()) == 0, (before, after)
    run.send(signal.SIGTERM)
    run.wait()


SDNOTIFY_APP = """
import sys, time
import sdnotify
n = sdnotify.SystemdNotifier(debug=True)
time.sleep(0.3)
n.notify("STATUS=loading")
time.sleep(0.3)
open(sys.argv[1], "w").write(repr(time.time()))
n.notify("READY=1\\nSTATUS=serving")
while True:
    time.sleep(0.2)
    n.notify("WATCHDOG=1")
"""


def test_the_sdnotify_package_makes_a_python_app_ready_and_feeds_its_watchdog(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The client Python apps use (pip's ``sdnotify``), as they use it: READY=1, STATUS=, WATCHDOG=1."""
    ready_at = tmp_path / "ready_at"
    app_at = tmp_path / "app_at"
    toml = config(
        tmp_path,
        {
            "api": {
                "command": [PY, "-c", SDNOTIFY_APP, str(ready_at)],
                "ready": {"notify": True, "timeout": 10},
                "watchdog": "1s",
            },
            "app": {
                "command": f"date +%s.%N > {app_at}; exec sleep 60",
                "shell": True,
                "main": True,
                "after": ["api"],
            },
        },
    )
    run = h.run_config(toml, net=False)
    wait_trinit(run)
    wait_for(lambda: app_at.exists() and app_at.read_text().strip(), message="app to start after api READY=1")
    assert float(app_at.read_text()) > float(ready_at.read_text())
    time.sleep(2.5)  # two and a half watchdog periods: WATCHDOG=1 every 0.2 s keeps it healthy
    obj = status(run, "api")
    assert (obj["state"], obj["status_text"], obj["restarts"]) == ("ready", "serving", 0), obj
    assert obj["health"] == "healthy"
    run.send(signal.SIGTERM)
    run.wait()
