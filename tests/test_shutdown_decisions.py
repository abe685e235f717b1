"""What a shutdown means for exit codes and the log (issue 10 defect 18; SPEC §2 "an exit that
trinit itself caused is never a failure"), on a fake OS.
"""

from __future__ import annotations

import signal
from pathlib import Path

from fakeutil import sent, stop_at, term_after
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.testing import Behaviour, FakeLog, FakeOS, run_supervisor

TERM, KILL, INT = signal.SIGTERM, signal.SIGKILL, signal.SIGINT


async def test_sigterm_before_the_main_process_started_exits_0(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    config = Config(
        [
            ProcessSpec("db", ["db"], ready={"file": str(tmp_path / "never"), "timeout": 60}),
            ProcessSpec("app", ["app"], main=True, after={"db": "ready"}),
        ]
    )
    fake = FakeOS()
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log, at=[(1, lambda sup: sup.on_signal(TERM, TERM))])
    assert fake.spawns_of("app") == []
    assert not log.find("failed")
    assert code == 0


async def test_failed_stop_job_says_the_shutdown_goes_on(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("flush", ["flush"], oneshot=True, phase="stop", after=["app"], timeout=5),
        ]
    )
    fake = FakeOS({"app": Behaviour.exits(0, after=2), "flush": Behaviour.exits(3, after=1)})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 0  # main's status stands (SPEC §2)
    message = log.first("failed", "flush").message
    assert "the shutdown begins" not in message
    assert "already under way" in message


async def test_no_restart_is_announced_during_the_shutdown(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("svc", ["svc"], restart="always", restart_delay=0.01),
            ProcessSpec("job", ["job"], oneshot=True, retries=3, restart_delay=0.01),
            ProcessSpec("web", ["web"], after={"svc": "started", "job": "started"}),
        ]
    )
    # svc and job end by themselves while web still holds the shutdown up.
    fake = FakeOS(
        {"svc": Behaviour.exits(1, after=2), "job": Behaviour.exits(1, after=2.5), "web": term_after(3)}
    )
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(1))
    assert log.first("exited", "svc").time == 2
    assert log.first("exited", "job").time == 2.5
    assert log.find("restarting") == []
    assert log.find("retrying") == []
    assert fake.start_times("svc") == [0]
    assert fake.start_times("job") == [0]


async def test_processes_killed_by_a_forced_shutdown_are_not_failures(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("cache", ["cache"]),
            ProcessSpec("web", ["web"], after={"cache": "started"}, stop_timeout=10),
            ProcessSpec("flush", ["flush"], oneshot=True, phase="stop", timeout=20),
        ]
    )
    fake = FakeOS({"web": Behaviour.stubborn(), "flush": Behaviour.stubborn()})
    log = FakeLog()
    code = await run_supervisor(
        config,
        fake,
        log=log,
        at=[(1, lambda sup: sup.on_signal(TERM, TERM)), (2, lambda sup: sup.on_signal(INT, INT))],
    )
    assert (2, KILL) in sent(fake, "cache")  # waiting for its turn: killed all the same
    assert (2, KILL) in sent(fake, "flush")  # a running stop job
    assert log.find("failed") == [], log.dump()
    assert not [e for e in log.find("exited") if e.level != "info"], log.dump()
    assert code == 0
