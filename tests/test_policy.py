"""The restart/retry decision as a table: spec, outcome, consecutive, run time -> decision."""

from __future__ import annotations

from typing import Any

import pytest

from trinit import ProcessSpec
from trinit.runtime.policy import Decision, Kind, backoff, decide

R, T, D, F = Kind.RESTART, Kind.RETRY, Kind.DONE, Kind.FAIL


def svc(**kw: Any) -> ProcessSpec:
    return ProcessSpec("svc", ["svc"], **kw)


def job(**kw: Any) -> ProcessSpec:
    return ProcessSpec("job", ["job"], oneshot=True, **kw)


@pytest.mark.parametrize(
    ("spec", "ok", "consecutive", "run_time", "expected"),
    [
        # restart = "no": the run's outcome is the end.
        (svc(), True, 0, 1.0, Decision(D)),
        (svc(), False, 0, 1.0, Decision(F)),
        # on-failure: restart only a failure, with the delay doubling per consecutive restart.
        (svc(restart="on-failure"), True, 0, 1.0, Decision(D)),
        (svc(restart="on-failure", restart_delay=0.5), False, 0, 1.0, Decision(R, 0.5, 1)),
        (svc(restart="on-failure", restart_delay=0.5), False, 1, 1.0, Decision(R, 1.0, 2)),
        (svc(restart="on-failure", restart_delay=0.5), False, 3, 1.0, Decision(R, 4.0, 4)),
        # ... capped at restart_delay_max.
        (
            svc(restart="on-failure", restart_delay=0.5, restart_delay_max=3),
            False,
            3,
            1.0,
            Decision(R, 3.0, 4),
        ),
        (
            svc(restart="on-failure", restart_delay=1, restart_delay_max=30),
            False,
            500,
            1.0,
            Decision(R, 30.0, 501),
        ),
        # ... and reset by a run of restart_reset_after seconds.
        (
            svc(restart="on-failure", restart_delay=0.5, restart_reset_after=5),
            False,
            3,
            5.0,
            Decision(R, 0.5, 1),
        ),
        (
            svc(restart="on-failure", restart_delay=0.5, restart_reset_after=5),
            False,
            3,
            4.9,
            Decision(R, 4.0, 4),
        ),
        # always: a success restarts too.
        (svc(restart="always", restart_delay=0.5), True, 0, 1.0, Decision(R, 0.5, 1)),
        # max_restarts: the limit on consecutive restarts, then failed (even after a success).
        (svc(restart="on-failure", max_restarts=3), False, 2, 1.0, Decision(R, 2.0, 3)),
        (svc(restart="on-failure", max_restarts=3), False, 3, 1.0, Decision(F, 0.0, 3, gave_up=True)),
        (svc(restart="always", max_restarts=2), True, 2, 1.0, Decision(F, 0.0, 2, gave_up=True)),
        (svc(restart="on-failure", max_restarts=0), False, 0, 1.0, Decision(F, 0.0, 0, gave_up=True)),
        # ... a long run resets the count under the limit as well.
        (
            svc(restart="on-failure", max_restarts=3, restart_reset_after=5),
            False,
            3,
            9.0,
            Decision(R, 0.5, 1),
        ),
        # oneshots: retries, then failed; a success is done.
        (job(), True, 0, 1.0, Decision(D)),
        (job(), False, 0, 1.0, Decision(F)),
        (job(retries=2, restart_delay=0.5), False, 0, 1.0, Decision(T, 0.5, 1)),
        (job(retries=2, restart_delay=0.5), False, 1, 1.0, Decision(T, 1.0, 2)),
        (job(retries=2, restart_delay=0.5), False, 2, 1.0, Decision(F, 0.0, 2)),
        (job(retries=2, restart_delay=0.5), True, 1, 1.0, Decision(D, 0.0, 1)),
        # ... whose count no long run resets (restart_reset_after is a service's).
        (job(retries=1), False, 1, 1e6, Decision(F, 0.0, 1)),
    ],
)
def test_decide(spec: ProcessSpec, ok: bool, consecutive: int, run_time: float, expected: Decision) -> None:
    assert decide(spec, ok, consecutive, run_time) == expected


def test_backoff_doubles_from_restart_delay_up_to_its_cap() -> None:
    spec = svc(restart_delay=0.25, restart_delay_max=5)
    assert [backoff(spec, n) for n in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
