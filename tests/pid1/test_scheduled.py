"""Scheduled jobs (SPEC §11) for real, with trinit as PID 1 of a fresh PID namespace.

* ``every = "1s"`` runs a real job at least 3 times in 3.5 s, and trinit (with no other process)
  stays up until SIGTERM, then exits 0.
* 100 idle scheduled jobs (cron and every, none due for an hour) cost no wakeup at all.
* A job that hangs past its ``timeout`` is stopped and the schedule goes on; a SIGTERM to trinit
  during a run stops that run within its grace, and trinit exits 0.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from .helpers import wait_for
from .orch.common import orch_fixture, toml_config, wait_log, wait_trinit
from .test_scale import context_switches

pytestmark = pytest.mark.pid1

h = orch_fixture()


def runs(path: Path) -> list[float]:
    return [float(x) for x in path.read_text().split()] if path.exists() else []


def test_every_second_runs_at_least_three_times_in_three_and_a_half_seconds(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marks = tmp_path / "runs"
    config = toml_config(
        {"tick": {"command": f"date +%s.%N >> {marks}", "shell": True, "oneshot": True, "every": "1s"}}
    )
    run = h.run_config(config, net=False)
    wait_trinit(run)
    wait_log(run, r"tick next run at ")
    began = time.monotonic()
    time.sleep(3.5 - (time.monotonic() - began))
    assert len(runs(marks)) >= 3, run.stderr()
    assert run.running()  # scheduled jobs alone keep trinit up
    gaps = [b - a for a, b in zip(runs(marks), runs(marks)[1:], strict=False)]
    assert all(0.8 < g < 1.5 for g in gaps), gaps
    run.send(signal.SIGTERM)
    assert run.wait() == 0, run.stderr()


def test_a_hundred_idle_scheduled_jobs_cost_no_wakeup(h) -> None:  # type: ignore[no-untyped-def]
    jobs = {f"cron{i}": {"command": ["true"], "oneshot": True, "schedule": "@yearly"} for i in range(50)}
    jobs |= {f"every{i}": {"command": ["true"], "oneshot": True, "every": "1h"} for i in range(50)}
    run = h.run_config(toml_config(jobs), net=False)
    pid = wait_trinit(run)
    wait_for(lambda: run.stderr().count(" next run at ") == 100, message="100 scheduled lines")
    time.sleep(1.0)  # let the start settle (the log writer drains, ...)
    before = context_switches(pid)
    time.sleep(2.0)
    after = context_switches(pid)
    woke = {tid: after.get(tid, 0) - before.get(tid, 0) for tid in before.keys() | after.keys()}
    assert before.keys() == after.keys(), (before, after)
    assert sum(woke.values()) == 0, woke
    run.send(signal.SIGTERM)
    assert run.wait() == 0, run.stderr()


def test_a_hanging_run_times_out_and_a_shutdown_stops_a_run(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = toml_config(
        {
            "hang": {"command": ["sleep", "60"], "oneshot": True, "every": "1s", "timeout": "0.5s"},
            "long": {"command": ["sleep", "60"], "oneshot": True, "every": "1s", "stop_timeout": 5},
        },
        shutdown_timeout=10,
    )
    run = h.run_config(config, net=False)
    wait_trinit(run)
    wait_log(run, r"hang \(pid \d+\) ran longer than its timeout of 0.5 s; stopping it")
    wait_for(lambda: len(re.findall(r"hang \(pid \d+\) started", run.stderr())) >= 2, message="hang again")
    wait_log(run, r"long .*started: sleep 60")
    sent = time.monotonic()
    run.send(signal.SIGTERM)
    assert run.wait() == 0, run.stderr()
    assert time.monotonic() - sent < 3
    log = run.stderr()
    assert "SIGKILL" not in log, log
    assert "carrying on (on_failure = ignore)" in log
