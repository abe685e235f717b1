"""Restarts that follow dependencies (SPEC §10) with real processes under trinit as PID 1.

Children are orch/kid.py: they append ``EVENT <ns> NAME WHAT`` lines to one file, so the
order of stops and starts is read from their own timestamps.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .helpers import TRINIT, clean_env, wait_for
from .orch.common import Events, orch_fixture, toml_config

pytestmark = pytest.mark.pid1

h = orch_fixture()


@pytest.fixture
def ev(tmp_path: Path) -> Events:
    return Events(tmp_path / "events")


def ctl(sock: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRINIT, "ctl", "--socket", str(sock), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
    )


def pid_of(ev: Events, name: str, index: int = -1) -> int:
    return int(ev.of(name, "start")[index].what.split()[1].split("=")[1])


def follow(dep: str, when: str = "started") -> dict[str, object]:
    return {dep: {"when": when, "restart": True}}


#: Ready once its start is recorded: the order of the records is then the order trinit keeps.
UP = {"log": "^up$", "interval": 0.05}


def test_a_restart_stops_the_group_in_reverse_and_starts_it_in_order(h, ev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sock = tmp_path / "ctl.sock"
    forever = ("on=TERM:exit", "out=up", "forever")
    cfg = toml_config(
        {
            "db": {"command": ev.kid("db", *forever), "restart": "always", "ready": UP},
            "web": {"command": ev.kid("web", *forever), "after": follow("db", "ready"), "ready": UP},
            "api": {"command": ev.kid("api", *forever), "after": {**follow("web", "ready"), "db": "started"}},
            "side": {"command": ev.kid("side", *forever), "after": {"db": "started"}},
            "other": {"command": ev.kid("other", *forever), "after": {"api": "started"}},
        },
        control_socket=str(sock),
    )
    run = h.run_config(cfg)
    for name in ("db", "web", "api", "side", "other"):
        ev.wait(name, "start", run=run)
    untouched = {name: pid_of(ev, name) for name in ("side", "other")}

    done = ctl(sock, "restart", "db", "--wait")
    assert done.returncode == 0, done.stderr + run.stderr()
    ev.wait("api", "start", count=2, run=run)
    # Stops: dependents first, in reverse; then db; starts in order after db's new run.
    assert ev.t("api", "TERM") < ev.t("web", "TERM") < ev.t("db", "TERM")
    assert ev.t("db", "TERM") < ev.t("db", "start", 1) < ev.t("web", "start", 1) < ev.t("api", "start", 1)
    # Plain dependents (of db, and of a follower) kept their processes.
    assert {name: pid_of(ev, name) for name in untouched} == untouched
    assert len(ev.of("side", "start")) == 1 and len(ev.of("other", "start")) == 1
    assert not ev.of("side", "TERM") and not ev.of("other", "TERM")
    status = ctl(sock, "status")
    assert status.returncode == 0
    assert "failed" not in run.stderr()
    run.send(15)
    assert run.wait(30) == 0, run.stderr()


def test_a_crash_loop_restarts_followers_once_per_restart_at_most(h, ev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sock = tmp_path / "ctl.sock"
    runs = tmp_path / "db.runs"
    cfg = toml_config(
        {
            "db": {
                "command": ev.kid("db", "on=TERM:exit", "sleep=0.3", f"failtimes={runs}:3", "forever"),
                "restart": "on-failure",
                "restart_delay": 0.05,
                "max_restarts": 5,
            },
            "web": {"command": ev.kid("web", "on=TERM:exit", "forever"), "after": follow("db")},
            "api": {"command": ev.kid("api", "on=TERM:exit", "forever"), "after": follow("web")},
        },
        control_socket=str(sock),
    )
    run = h.run_config(cfg)
    ev.wait("db", "start", count=4, run=run)
    ev.wait("api", "start", count=2, run=run)
    wait_for(lambda: ctl(sock, "wait", "db", "web", "api", "--timeout", "1").returncode == 0)
    db_starts = len(ev.of("db", "start"))
    assert db_starts == 4
    # At most one stop and one start of each follower per restart of db (3 restarts).
    assert len(ev.of("web", "start")) <= db_starts and len(ev.of("api", "start")) <= db_starts
    assert len(ev.of("web", "TERM")) <= 3 and len(ev.of("api", "TERM")) <= 3
    # Each follower stopped before db came back.
    for i, _ in enumerate(ev.of("web", "TERM")):
        assert ev.t("api", "TERM", i) < ev.t("web", "TERM", i)
    assert "failed" not in run.stderr().replace("db (pid", "")
    run.send(15)
    assert run.wait(30) == 0, run.stderr()
