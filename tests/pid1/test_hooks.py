"""Lifecycle hooks for real (SPEC §9): trinit as PID 1 of a fresh PID namespace, real children.

* a ``pre_stop`` that drains a real HTTP server before SIGTERM: the request in flight completes,
  new connections are refused meanwhile, and the stop signal comes only after the drain and
  ``stop_delay``;
* hooks run with the process's user, group, env and cwd, and get the ``TRINIT_*`` variables;
* a failed ``pre_start`` of main is a failed start: exit 1, main never runs;
* a ``pre_stop`` that hangs is ended by the shutdown budget, and the process still gets SIGKILL;
* ``trinit ctl restart`` and ``trinit ctl stop`` run ``pre_stop`` and ``stop_delay`` first too.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .helpers import CHILDREN, PY, TRINIT, clean_env, pids_with, wait_for
from .orch.common import Events, now_ns, orch_fixture, toml_config, wait_log

pytestmark = pytest.mark.pid1

h = orch_fixture()

POST = "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], method='POST'), timeout=30)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refused(port: int) -> bool:
    """No new connection gets in: refused, or reset (one caught in the backlog as the listener closed)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    return False


def test_pre_stop_drains_a_real_http_server_before_sigterm(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    ev = Events(tmp_path / "events")
    cfg = toml_config(
        {
            "web": {
                "command": [PY, str(CHILDREN / "drain_server.py"), ev.path, str(port)],
                "main": True,
                "ready": {"http": f"http://127.0.0.1:{port}/"},
                "pre_stop": [PY, "-c", POST, f"http://127.0.0.1:{port}/drain"],
                "stop_delay": 0.3,
            }
        },
        shutdown_timeout=20,
    )
    run = h.run_config(cfg, net=False)
    wait_log(run, r"web \(pid \d+\) is ready")
    answer: dict[str, Any] = {}

    def slow_request() -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/slow?s=1.5", timeout=30) as response:
            answer.update(status=response.status, body=response.read(), at=now_ns())

    client = threading.Thread(target=slow_request)
    client.start()
    ev.wait("web", "begun /slow", run=run)
    run.send(signal.SIGTERM)
    ev.wait("web", "drain-begun", run=run)
    wait_for(lambda: refused(port), message="new connections to be refused during the drain")
    refused_at = now_ns()
    client.join(30)
    assert answer.get("status") == 200 and answer.get("body") == b"slow", answer  # in flight: completed
    assert run.wait(20) == 0, run.stderr()
    done, drained, term = ev.t("web", "done /slow"), ev.t("web", "drained"), ev.t("web", "TERM")
    assert refused_at < done  # refused while the slow request was still in flight
    assert done < drained < term
    assert term - drained >= 0.3e9  # stop_delay after the drain, then the stop signal
    log = run.stderr()
    assert log.index("pre_stop hook succeeded") < log.index("stopping with SIGTERM"), log
    assert "waiting 0.3 s (stop_delay) before its stop signal" in log


# $$ is a literal $ in a config (trinit expands ${VAR} in commands and hooks when it loads them).
REPORT = (
    'echo "hook=$$TRINIT_HOOK process=$$TRINIT_PROCESS uid=$(id -u) gid=$(id -g) cwd=$(pwd) '
    "mode=$$MODE code=$${TRINIT_EXIT_CODE-none} signal=$${TRINIT_EXIT_SIGNAL-none} "
    'restarts=$${TRINIT_RESTARTS-none} pid=$${TRINIT_PID-none} stdin=$(readlink /proc/self/fd/0)"'
)


def reports(stdout: str) -> list[dict[str, str]]:
    out = []
    for line in stdout.splitlines():
        name, _, text = line.partition(" | ")
        if text.startswith("hook="):
            out.append({"name": name, **dict(item.split("=", 1) for item in text.split())})
    return out


def test_hooks_run_as_the_process_with_its_env_cwd_and_the_trinit_variables(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hooks = {
        "pre_start": [["/bin/sh", "-c", REPORT], ["/bin/sh", "-c", REPORT]],
        "pre_stop": ["/bin/sh", "-c", REPORT],
        "post_stop": ["/bin/sh", "-c", REPORT],
    }
    common = {"output": "prefix", "cwd": "/", "env": {"MODE": "hooked"}}
    cfg = toml_config(
        {
            "svc": {"command": ["sleep", "100"], "user": 54321, "group": 54322, **common, **hooks},
            "app": {
                "command": ["/bin/sh", "-c", "sleep 0.3; exit 3"],
                "main": True,
                "after": ["svc"],
                **common,
                "post_stop": ["/bin/sh", "-c", REPORT],
            },
        }
    )
    run = h.run_config(cfg, net=False)
    assert run.wait(30) == 3, run.stderr()  # main's own code: the hooks change nothing
    got = reports(run.stdout())
    svc_pid = re.search(r"svc \(pid (\d+)\) started", run.stderr())
    assert svc_pid is not None, run.stderr()
    assert [(r["name"], r["hook"]) for r in got] == [
        ("svc", "pre_start"),
        ("svc", "pre_start"),
        ("app", "post_stop"),
        ("svc", "pre_stop"),
        ("svc", "post_stop"),
    ], run.stdout()
    for r in got:
        assert (r["cwd"], r["mode"], r["stdin"], r["process"]) == ("/", "hooked", "/dev/null", r["name"]), r
        if r["name"] == "svc":
            assert (r["uid"], r["gid"]) == ("54321", "54322"), r  # the process's user and group
        else:
            assert (r["uid"], r["gid"]) == ("0", "0"), r
    by = {(r["name"], r["hook"]): r for r in got}
    assert by["app", "post_stop"]["code"] == "3" and by["app", "post_stop"]["restarts"] == "0"
    assert by["svc", "pre_stop"]["pid"] == svc_pid[1]  # TRINIT_PID: the process being stopped
    assert (by["svc", "post_stop"]["signal"], by["svc", "post_stop"]["code"]) == ("TERM", "none")
    log = run.stderr()
    assert log.index("svc pre_start hook succeeded") < log.index("svc (pid"), log  # before the start


def test_a_failed_pre_start_of_main_is_a_failed_start(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "main-ran"
    cfg = toml_config(
        {
            "app": {
                "command": ["touch", marker],
                "main": True,
                "pre_start": [
                    ["true"],
                    ["/bin/sh", "-c", "echo 'cannot render' >&2; exit 4"],
                    ["touch", marker],
                ],
            }
        }
    )
    run = h.run_config(cfg, net=False)
    assert run.wait(20) == 1, run.stderr()  # SPEC §2: a failed pre_start is a failure to start, code 1
    assert not marker.exists()
    log = run.stderr()
    assert "cannot render" in log  # the hook's output is the process's (inherited here)
    assert "error: app could not start: its pre_start hook exited with code 4 (/bin/sh -c" in log, log


def test_the_budget_ends_a_hanging_pre_stop_and_sigkills_the_process(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = f"hook-marker-{time.monotonic_ns()}"
    cfg = toml_config(
        {
            "app": {
                "command": ["sleep", "100"],
                "main": True,
                "pre_stop": ["/bin/sh", "-c", f"sleep 100; : {marker}"],  # sh waits: its argv names it
                "hook_timeout": 60,
            }
        },
        shutdown_timeout=1,
    )
    run = h.run_config(cfg, net=False)
    wait_log(run, r"app \(pid \d+\) started")
    begun = time.monotonic()
    run.send(signal.SIGTERM)
    wait_for(lambda: pids_with(marker), message="the pre_stop hook to run")
    code = run.wait(20)
    took = time.monotonic() - begun
    assert code == 128 + signal.SIGKILL, run.stderr()  # the budget ran out: SIGKILL, no SIGTERM first
    assert took < 4, (took, run.stderr())  # budget 1 s, then at most the reaping
    assert not pids_with(marker)
    log = run.stderr()
    assert "pre_stop hook was stopped before it ended" in log, log
    assert "shutdown_timeout of 1 s ran out" in log
    assert "stopping with SIGTERM" not in log


def test_ctl_restart_and_ctl_stop_run_pre_stop_before_the_stop_signal(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ev = Events(tmp_path / "events")
    sock = tmp_path / "ctl.sock"
    cfg = toml_config(
        {
            "svc": {
                "command": ev.kid("svc", "on=TERM:exit", "forever"),
                "pre_stop": ev.kid("drain", "sleep=0.2", "mark=drained"),
                "stop_delay": 0.2,
            },
            "app": {"command": ["sleep", "100"], "main": True},
        },
        control_socket=str(sock),
    )
    run = h.run_config(cfg, net=False)
    ev.wait("svc", "start", run=run)
    wait_for(sock.exists, message="the control socket")

    def ctl(*args: str) -> None:
        proc = subprocess.run(
            [TRINIT, "ctl", "--socket", str(sock), *args],
            capture_output=True,
            text=True,
            timeout=30,
            env=clean_env(),
        )
        assert proc.returncode == 0, proc.stderr

    ctl("restart", "svc", "--wait")
    ev.wait("svc", "start", count=2, run=run)
    assert ev.t("drain", "drained") + 0.2e9 <= ev.t("svc", "TERM") < ev.t("svc", "start", 1)
    ctl("stop", "svc", "--wait")
    assert ev.t("drain", "drained", 1) + 0.2e9 <= ev.t("svc", "TERM", 1)
    run.send(signal.SIGTERM)
    assert run.wait(20) == 143, run.stderr()  # main (sleep) ends by the SIGTERM passed on to it
    assert len(ev.of("drain", "drained")) == 2  # a stopped process is not stopped again
