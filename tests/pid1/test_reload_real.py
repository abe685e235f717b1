"""Reload (SPEC §10) against trinit as PID 1: the real ``trinit ctl reload``, SIGHUP, real files.

Children are orch/kid.py (``EVENT <ns> NAME WHAT`` lines in one file) or ``sleep``; pids are
read from the kids' own records and from ``ctl status --json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .helpers import TRINIT, clean_env, descendants_of, wait_for
from .orch.common import Events, orch_fixture, toml_config, wait_log

pytestmark = pytest.mark.pid1

h = orch_fixture()

FOREVER = ("on=TERM:exit", "out=up", "forever")
UP = {"log": "^up$", "interval": 0.05}


@pytest.fixture
def ev(tmp_path: Path) -> Events:
    return Events(tmp_path / "events")


def ctl(sock: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRINIT, "ctl", "--socket", str(sock), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
    )


def status(sock: Path) -> dict[str, dict[str, Any]]:
    done = ctl(sock, "status", "--json")
    assert done.returncode == 0, done.stderr
    return {p["name"]: p for p in json.loads(done.stdout)}


def pids(sock: Path) -> dict[str, int | None]:
    return {name: p["pid"] for name, p in status(sock).items()}


def replace(path: Path, text: str) -> None:
    """As an editor saves: a new file renamed over the old one."""
    tmp = path.with_name(path.name + ".swp")
    tmp.write_text(text)
    os.rename(tmp, path)


class Setup:
    def __init__(self, h: Any, tmp_path: Path) -> None:
        self.h = h
        self.sock = tmp_path / "ctl.sock"
        self.path = tmp_path / "trinit.toml"

    def config(self, processes: dict[str, Any], **trinit: Any) -> str:
        return toml_config(processes, control_socket=str(self.sock), **trinit)

    def start(self, processes: dict[str, Any], **trinit: Any) -> Any:
        self.path.write_text(self.config(processes, **trinit))
        run = self.h.start_net(["-c", str(self.path)])
        wait_for(lambda: self.sock.exists() or not run.running())
        assert run.running(), run.stderr()
        return run

    def write(self, processes: dict[str, Any], **trinit: Any) -> None:
        replace(self.path, self.config(processes, **trinit))

    def up(self, *names: str) -> None:
        done = ctl(self.sock, "wait", *names, "--timeout", "20")
        assert done.returncode == 0, done.stderr


@pytest.fixture
def s(h: Any, tmp_path: Path) -> Setup:
    return Setup(h, tmp_path)


def stop(run: Any) -> None:
    run.send(signal.SIGTERM)
    assert run.wait(30) == 0, run.stderr()


def test_a_reload_adds_a_process_that_depends_on_a_running_one(s: Setup, ev: Events) -> None:
    base = {
        "db": {"command": ev.kid("db", *FOREVER), "ready": UP},
        "worker": {"command": ["sleep", "infinity"]},
    }
    run = s.start(base)
    s.up("db", "worker")
    before = pids(s.sock)
    s.write({**base, "web": {"command": ev.kid("web", *FOREVER), "after": {"db": "ready"}, "ready": UP}})
    dry = ctl(s.sock, "reload", "--dry-run")
    assert (dry.returncode, dry.stdout) == (0, "start    web  (new)\nunchanged: db, worker\n")
    assert "web" not in status(s.sock)
    done = ctl(s.sock, "reload")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "start    web  (new)\nunchanged: db, worker\n",
        "",
    )
    s.up("web")
    now = pids(s.sock)
    assert {k: now[k] for k in before} == before
    assert len(ev.of("db", "start")) == 1 and ev.t("web", "start") > ev.t("db", "start")
    assert wait_log(run, r"reloading .*trinit\.toml: start +web +\(new\); unchanged: db, worker")
    assert wait_log(run, r"web is new in the config: it starts once its after holds")
    assert wait_log(run, r"reload done")
    stop(run)


def test_removing_a_dependency_is_refused_until_its_dependents_go_too(s: Setup, ev: Events) -> None:
    full = {
        "db": {"command": ev.kid("db", *FOREVER), "ready": UP},
        "web": {"command": ev.kid("web", *FOREVER), "after": ["db"], "ready": UP},
        "api": {"command": ev.kid("api", *FOREVER), "after": ["web"], "ready": UP},
        "keep": {"command": ["sleep", "infinity"]},
    }
    run = s.start(full)
    s.up("db", "web", "api", "keep")
    before = pids(s.sock)
    s.write({k: v for k, v in full.items() if k != "db"})
    refused = ctl(s.sock, "reload")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr == f'trinit ctl: {s.path}: process "web": after: no process named "db"\n'
    assert pids(s.sock) == before
    assert wait_log(
        run, r"error: reload refused: the new config was not applied \(1 error\); nothing changed"
    )
    # Removed together with everything that depends on it: stopped dependents first.
    s.write({"keep": full["keep"]})
    done = ctl(s.sock, "reload")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == [
        "stop     api  (no longer in the config)",
        "stop     web  (no longer in the config)",
        "stop     db   (no longer in the config)",
    ]
    assert ev.t("api", "TERM") < ev.t("web", "TERM") < ev.t("db", "TERM")
    assert pids(s.sock) == {"keep": before["keep"]}
    stop(run)


def test_a_changed_process_restarts_with_its_followers(s: Setup, ev: Events) -> None:
    def config(db_env: str) -> dict[str, dict[str, Any]]:
        return {
            "db": {"command": ev.kid("db", *FOREVER), "ready": UP, "env": {"V": db_env}},
            "web": {
                "command": ev.kid("web", *FOREVER),
                "after": {"db": {"when": "ready", "restart": True}},
                "ready": UP,
            },
            "side": {"command": ev.kid("side", *FOREVER), "after": ["db"], "ready": UP},
        }

    run = s.start(config("1"))
    s.up("db", "web", "side")
    before = pids(s.sock)
    s.write(config("2"))
    done = ctl(s.sock, "reload")
    assert done.stdout == "restart  db   (changed: env)\nrestart  web  (restarts with db)\nunchanged: side\n"
    ev.wait("web", "start", count=2, run=run)
    s.up("db", "web")
    assert ev.t("web", "TERM") < ev.t("db", "TERM") < ev.t("db", "start", 1) < ev.t("web", "start", 1)
    now = pids(s.sock)
    assert now["side"] == before["side"] and now["db"] != before["db"] and now["web"] != before["web"]
    assert status(s.sock)["web"]["restarts"] == 1
    stop(run)


def test_main_and_fixed_keys_are_refused_whole(s: Setup, ev: Events) -> None:
    base: dict[str, dict[str, Any]] = {
        "app": {"command": ["sleep", "infinity"], "main": True},
        "db": {"command": ["sleep", "infinity"]},
    }
    run = s.start(base)
    s.up("app", "db")
    before = pids(s.sock)
    s.write(
        {"app": {**base["app"], "command": ["sleep", "1000"]}, "db": base["db"], "new": {"command": ["true"]}}
    )
    done = ctl(s.sock, "reload")
    assert done.returncode == 1
    assert done.stderr == (
        'trinit ctl: the main process "app" changed (command): it cannot restart without ending the run; '
        "restart trinit (the container) to apply it\n"
    )
    dry = ctl(s.sock, "reload", "--dry-run")
    assert (dry.returncode, dry.stderr) == (1, done.stderr)
    s.write(base, reload_signal="USR1")
    done = ctl(s.sock, "reload")
    assert done.returncode == 1 and "reload_signal cannot change while trinit runs" in done.stderr
    assert pids(s.sock) == before
    run.send(signal.SIGTERM)
    assert run.wait(30) == 128 + signal.SIGTERM  # sleep dies of it: the main process's status


def test_sighup_reloads_with_reload_signal_and_is_forwarded_without(s: Setup, ev: Events) -> None:
    app = {
        "command": ev.kid("app", "on=TERM:exit", "on=HUP:ignore", "out=up", "forever"),
        "main": True,
        "ready": UP,
    }
    run = s.start({"app": app}, reload_signal="HUP")
    s.up("app")
    s.write({"app": app, "web": {"command": ["sleep", "infinity"]}}, reload_signal="HUP")
    run.send(signal.SIGHUP)
    wait_for(lambda: "web" in status(s.sock))
    s.up("web")
    assert not ev.of("app", "HUP"), "the reload signal is trinit's own, never forwarded"
    # A half-written file (no rename) is a parse error, never half a config.
    text = s.config({"app": app, "web": {"command": ["sleep", "infinity"]}, "more": {"command": ["true"]}})
    s.path.write_text(text[: text.index('"true"') + 3], encoding="utf-8")
    run.send(signal.SIGHUP)
    assert wait_log(run, rf"error: {s.path}: line \d+.*invalid TOML")
    assert set(status(s.sock)) == {"app", "web"}
    stop(run)
    # Without reload_signal, SIGHUP is forwarded to the main process as before.
    run = s.start({"app": app})
    s.up("app")
    run.send(signal.SIGHUP)
    ev.wait("app", "HUP", run=run)
    assert "reloading" not in run.stderr() and "reload_failed" not in run.stderr()
    stop(run)


def test_reload_is_refused_during_a_reload_and_during_the_shutdown(s: Setup, ev: Events) -> None:
    slow = {
        "command": ev.kid("slow", "on=TERM:slow:1.5", "out=up", "forever"),
        "ready": UP,
        "stop_timeout": 10,
    }
    run = s.start({"slow": slow, "keep": {"command": ["sleep", "infinity"]}})
    s.up("slow", "keep")
    s.write({"keep": {"command": ["sleep", "infinity"]}})
    first = subprocess.Popen(
        [TRINIT, "ctl", "--socket", str(s.sock), "reload"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    ev.wait("slow", "TERM", run=run)
    second = ctl(s.sock, "reload")
    assert second.returncode == 1 and "a reload is under way" in second.stderr
    out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert out.startswith("stop     slow  (no longer in the config)")
    # During the shutdown: refused.
    s.write({"keep": {"command": ["sleep", "infinity"]}, "slow": slow})
    assert ctl(s.sock, "reload").returncode == 0
    s.up("slow")
    run.send(signal.SIGTERM)
    ev.wait("slow", "TERM", count=2, run=run)
    late = ctl(s.sock, "reload")
    assert late.returncode == 1 and "shutting down" in late.stderr
    assert run.wait(30) == 0, run.stderr()


def count(pid: int) -> tuple[int, int, int]:
    """Open fds, threads (tasks) and descendant processes of ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task")), len(descendants_of(pid))


def test_a_hundred_reloads_leak_no_fd_task_or_process(s: Setup) -> None:
    a = {"db": {"command": ["sleep", "infinity"]}, "web": {"command": ["sleep", "infinity"], "after": ["db"]}}
    b = {**a, "extra": {"command": ["sleep", "infinity"], "after": {"db": "started"}}}
    run = s.start(a, ready_file=str(s.path.with_name("ready")))
    s.up("db", "web")
    pid = run.pid
    s.write(b)
    assert ctl(s.sock, "reload").returncode == 0
    s.write(a)
    assert ctl(s.sock, "reload").returncode == 0  # warmed up: the loader's thread exists now
    s.up("db", "web")
    wait_for(lambda: len(descendants_of(pid)) == 2)
    before = count(pid)
    for i in range(100):
        s.write(b if i % 2 == 0 else a)
        done = ctl(s.sock, "reload")
        assert done.returncode == 0, done.stderr + run.stderr()
    s.up("db", "web")
    wait_for(
        lambda: count(pid) == before, message=lambda: f"{count(pid)} == {before} (fds, tasks, processes)"
    )
    assert "internal error" not in run.stderr()
    assert run.stderr().count("reload done") == 102
    stop(run)
