"""The per-process state machine: one table of moves, everything else refused (issue 9)."""

from __future__ import annotations

import itertools

import pytest
import trio
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.runtime.state import FINAL, TRANSITIONS, IllegalTransition, State, check_transition
from trinit.testing import Behaviour, FakeOS, make_supervisor

# SPEC §7 lists these; "stopped" (a user stopped it, SPEC §8) is added by trinit: docs/library.md.
SPEC_STATES = [
    "waiting",
    "starting",
    "running",
    "ready",
    "stopping",
    "exited",
    "failed",
    "skipped",
    "stopped",
]


def test_every_public_name_is_one_of_spec_section_7() -> None:
    assert sorted({s.public for s in State}) == sorted(SPEC_STATES)


def test_the_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize(
    ("old", "new"),
    [(o, n) for o, n in itertools.product(State, State) if n in TRANSITIONS[o]],
)
def test_allowed_moves_pass(old: State, new: State) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (State.WAITING, State.READY),
        (State.WAITING, State.EXITED),
        (State.STARTING, State.READY),
        (State.STARTING, State.STOPPING),
        (State.RUNNING, State.WAITING),
        (State.READY, State.RUNNING),
        (State.BACKOFF, State.READY),
        (State.EXITED, State.RUNNING),
        (State.FAILED, State.EXITED),
        (State.SKIPPED, State.STARTING),
        (State.COMPLETED, State.FAILED),
    ],
)
def test_illegal_moves_are_refused(old: State, new: State) -> None:
    with pytest.raises(IllegalTransition, match=f"from {old.value} to {new.value}"):
        check_transition(old, new)


def test_a_final_state_only_leads_back_to_waiting() -> None:
    for state in FINAL:
        assert state.final
        assert TRANSITIONS[state] == {State.WAITING}
    assert not any(s.final for s in set(State) - FINAL)


async def test_a_runner_refuses_an_illegal_move(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True)])
    sup = make_supervisor(config, FakeOS({"app": Behaviour.forever()}))
    runner = sup.runner("app")
    with pytest.raises(IllegalTransition):
        runner._move(State.READY)
    assert runner.state is State.WAITING


async def test_flags_are_derived_from_the_state(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True, after={"job": "completed"}),
            ProcessSpec("job", ["job"], oneshot=True),
        ]
    )
    fake = FakeOS({"app": Behaviour.forever(), "job": Behaviour.exits(0, after=1)})
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        job, app = sup.runner("job"), sup.runner("app")
        assert not job.final and not job.completed
        await sup.wait_ready("app")
        assert job.state is State.COMPLETED and job.completed and job.final and not job.failed
        assert job.state.public == "exited"
        assert app.ready and app.ever_started and not app.final
        sup.request_shutdown("test")
        await sup.wait()
        assert app.state is State.EXITED and app.final and not app.ready and sup.status()["app"].pid is None
