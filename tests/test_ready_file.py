"""``ready_file`` over a run (SPEC §4), on a fake OS: created when everything is up, removed
while a process restarts, and removed for good once the main process exits, a long-running
process exits with no restart to come, or the shutdown begins.
"""

from __future__ import annotations

from pathlib import Path

from fakeutil import stop_at
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.testing import Behaviour, FakeLog, FakeOS, run_supervisor

READY = "/run/trinit/ready"


def history(fake: FakeOS) -> list[str]:
    """ "+" for each creation of the ready file, "-" for each removal of one that existed."""
    out: list[str] = []
    exists = False
    for call, _ in fake.calls:
        if call == "write_ready_file":
            out.append("+")
            exists = True
        elif call == "remove_ready_file" and exists:
            out.append("-")
            exists = False
    return out


def created(log: FakeLog) -> list[float | None]:
    return [e.time for e in log.find("all_ready")]


async def test_not_created_again_after_the_main_process_exits(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True)], ready_file=READY)
    fake = FakeOS({"app": Behaviour.exits(0, after=2)})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 0
    assert created(log) == [0]
    assert history(fake) == ["+", "-"]
    assert fake.ready_files == {}


async def test_never_created_when_main_exits_before_its_probe_passed(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    never = str(tmp_path / "never")
    config = Config(
        [ProcessSpec("app", ["app"], main=True, ready={"file": never, "interval": 0.5})], ready_file=READY
    )
    fake = FakeOS({"app": Behaviour.exits(0, after=2)})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 0
    assert created(log) == []
    assert history(fake) == []


async def test_never_created_when_a_service_that_never_became_ready_exits_0(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    never = str(tmp_path / "never")
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("svc", ["svc"], ready={"file": never, "interval": 0.5}),
        ],
        ready_file=READY,
    )
    fake = FakeOS({"svc": Behaviour.exits(0, after=1)})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(5))
    assert log.first("exited", "svc").time == 1
    assert created(log) == []
    assert history(fake) == []


async def test_removed_for_good_when_a_service_exits_with_no_restart_to_come(
    autojump_clock: MockClock,
) -> None:
    config = Config(
        [ProcessSpec("app", ["app"], main=True), ProcessSpec("svc", ["svc"], on_failure="ignore")],
        ready_file=READY,
    )
    fake = FakeOS({"svc": Behaviour.exits(0, after=1)})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(5))
    assert created(log) == [0]
    assert history(fake) == ["+", "-"]
    assert READY not in fake.ready_files


async def test_removed_while_a_service_restarts_and_created_again(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("svc", ["svc"], restart="always", restart_delay=1),
        ],
        ready_file=READY,
    )
    fake = FakeOS({"svc": [Behaviour.exits(1, after=1), Behaviour.forever()]})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(5))
    assert created(log) == [0, 2]
    assert history(fake) == ["+", "-", "+", "-"]
    assert fake.ready_files == {}


async def test_a_oneshot_failed_under_ignore_counts_as_up_a_failing_one_does_not(
    autojump_clock: MockClock,
) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("opt", ["opt"], oneshot=True, on_failure="ignore"),
            ProcessSpec("job", ["job"], oneshot=True),
        ],
        ready_file=READY,
    )
    fake = FakeOS({"opt": Behaviour.exits(3, after=1), "job": Behaviour.exits(0, after=2)})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(5))
    assert created(log) == [2]


async def test_never_created_once_the_shutdown_began(autojump_clock: MockClock) -> None:
    # The last oneshot completes during the shutdown (a stop job's turn is still to come):
    # everything would be "up", but the run is ending.
    config = Config(
        [ProcessSpec("app", ["app"], main=True), ProcessSpec("job", ["job"], oneshot=True)],
        ready_file=READY,
    )
    fake = FakeOS({"job": Behaviour.stubborn(runs=3)})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(1))
    assert log.first("exited", "job").time == 3
    assert created(log) == []
    assert history(fake) == []
