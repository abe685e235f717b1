"""Scale and idleness, with trinit as PID 1 of a fresh PID namespace.

* 1000 processes ``sleep 1000`` all start and one SIGTERM stops them all, exit 0, within the
  shutdown budget (and without the budget running out or anything getting SIGKILL).
* Once everything runs, trinit does nothing at all: zero context switches over 2 s, summed over
  every thread of trinit (/proc/PID/task/*/status).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from .helpers import children_of, read_status, wait_for
from .orch.common import orch_fixture, toml_config, wait_trinit

pytestmark = pytest.mark.pid1

h = orch_fixture()
BUDGET = 30


def sleepers(count: int) -> str:
    return toml_config(
        {f"p{i}": {"command": ["sleep", "1000"]} for i in range(count)}, shutdown_timeout=BUDGET
    )


def running_children(pid: int) -> int:
    return sum(1 for c in children_of(pid) if read_status(c).get("State", "Z")[:1] not in ("Z", "X"))


def test_a_thousand_processes_start_and_stop(h) -> None:  # type: ignore[no-untyped-def]
    run = h.run_config(sleepers(1000), net=False)
    pid = wait_trinit(run)
    wait_for(
        lambda: running_children(pid) == 1000,
        timeout=40,
        message=lambda: f"1000 children; {running_children(pid)} so far",
    )
    assert run.running()
    sent = time.monotonic()
    run.send(signal.SIGTERM)
    assert run.wait(BUDGET + 10) == 0, run.stderr()[-3000:]
    took = time.monotonic() - sent
    assert took < BUDGET, took
    log = run.stderr()
    assert log.count(" started: ") == 1000
    assert "SIGKILL" not in log and "ran out" not in log, log[-3000:]


def context_switches(pid: int) -> dict[str, int]:
    """Voluntary + involuntary context switches of every thread of ``pid``, by thread id."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                lines = dict(line.split(":", 1) for line in f if ":" in line)
        except FileNotFoundError:
            continue
        out[tid] = int(lines["voluntary_ctxt_switches"]) + int(lines["nonvoluntary_ctxt_switches"])
    return out


def test_idle_trinit_does_not_wake_up(h) -> None:  # type: ignore[no-untyped-def]
    run = h.run_config(sleepers(50), net=False)
    pid = wait_trinit(run)
    wait_for(lambda: running_children(pid) == 50, timeout=20, message="50 children")
    wait_for(lambda: run.stderr().count(" started: ") == 50, message="50 started lines")
    assert list(h.tmp.glob("ctl-*.sock")), "the control socket is open while trinit idles"
    time.sleep(1.0)  # let the start settle (the log writer drains, ...)
    before = context_switches(pid)
    time.sleep(2.0)
    after = context_switches(pid)
    woke = {tid: after.get(tid, 0) - before.get(tid, 0) for tid in before.keys() | after.keys()}
    assert before.keys() == after.keys(), (before, after)
    assert sum(woke.values()) == 0, woke
    run.send(signal.SIGTERM)
    assert run.wait(BUDGET + 10) == 0, run.stderr()[-3000:]
