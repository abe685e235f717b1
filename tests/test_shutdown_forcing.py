"""Forcing the shutdown of SPEC §5 (a second SIGINT, ``force_stop``) and the final sweep of
what the processes left behind, on a fake OS and pytest-trio's ``autojump_clock``.
"""

from __future__ import annotations

import signal

import trio
from fakeutil import sent, stop_at, term_after
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.runtime.supervisor import Runtime
from trinit.testing import Behaviour, FakeLog, FakeOS, run_supervisor

TERM, KILL, INT, QUIT = signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGQUIT


# ------------------------------------------------------------------------------ forcing


async def test_force_stop_skips_the_remaining_grace(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("cache", ["cache"]),
            ProcessSpec("web", ["web"], after={"cache": "started"}, stop_timeout=10),
        ]
    )
    fake = FakeOS({"web": Behaviour.stubborn(), "cache": Behaviour.stubborn()})
    await run_supervisor(config, fake, at=[*stop_at(1), (2, lambda sup: sup.force_stop())])
    assert sent(fake, "web") == [(1, TERM), (2, KILL)]
    assert [s for s in sent(fake, "cache") if s[1] == KILL][:1] == [(2, KILL)]
    assert all(t == 2 for t, _ in sent(fake, "cache"))
    assert trio.current_time() == 2


async def test_sigint_during_shutdown_forces_and_skips_stop_jobs(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("web", ["web"], stop_timeout=10),
            ProcessSpec("db", ["db"], stop_timeout=10),
            ProcessSpec("flush", ["flush"], oneshot=True, phase="stop", after=["web"], timeout=5),
        ]
    )
    fake = FakeOS({"web": Behaviour.stubborn(), "db": Behaviour.stubborn()})
    log = FakeLog()
    code = await run_supervisor(
        config,
        fake,
        log=log,
        at=[(1, lambda sup: sup.on_signal(TERM, TERM)), (2, lambda sup: sup.on_signal(INT, INT))],
    )
    assert sent(fake, "web") == [(1, TERM), (2, KILL)]
    assert (2, KILL) in sent(fake, "db")
    assert not [s for s in sent(fake, "db") if s[0] != 2 and s[1] == KILL]
    assert fake.start_times("flush") == []
    assert log.first("skipped", "flush").time == 2
    assert log.first("forced").time == 2
    assert trio.current_time() == 2
    assert code == 0


# ------------------------------------------------------------------------------ the sweep


async def test_orphans_left_behind_get_sigterm_after_the_processes(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("svc", ["svc"])])
    fake = FakeOS({"svc": term_after(0.5)})
    orphan = []
    await run_supervisor(
        config,
        fake,
        at=[(0.5, lambda sup: orphan.append(fake.adopt(term_after(0.25), name="daemon"))), *stop_at(1)],
    )
    everyone = [(s.time, s.signal) for s in fake.signals if s.everyone]
    assert everyone == [(1.5, TERM)]
    assert orphan[0].exited_at == 1.75
    assert trio.current_time() == 1.75


async def test_stubborn_orphans_are_killed_at_the_budget(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("svc", ["svc"])], shutdown_timeout=3)
    fake = FakeOS()
    orphan = []
    log = FakeLog()
    await run_supervisor(
        config,
        fake,
        log=log,
        at=[(0.5, lambda sup: orphan.append(fake.adopt(Behaviour.stubborn()))), *stop_at(1)],
    )
    everyone = [(s.time, s.signal) for s in fake.signals if s.everyone]
    assert everyone == [(1, TERM), (4, KILL)]
    assert orphan[0].exited_at == 4
    assert log.first("shutdown_timeout").time == 4
    assert trio.current_time() == 4


async def test_sigint_right_after_sigterm_still_forces(autojump_clock: MockClock) -> None:
    """Both signals handled in one step (before the shutdown task ran): the SIGINT comes
    during the shutdown the SIGTERM began, so it skips the grace (SPEC §3)."""
    config = Config([ProcessSpec("web", ["web"], stop_timeout=10)])
    fake = FakeOS({"web": Behaviour.stubborn()})

    def both(sup: Runtime) -> None:
        sup.on_signal(TERM, TERM)
        sup.on_signal(INT, INT)

    await run_supervisor(config, fake, at=[(1, both)])
    assert [s for s in sent(fake, "web") if s[1] == KILL] == [(1, KILL)]
    assert trio.current_time() == 1


async def test_stop_job_retries_during_the_shutdown(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("web", ["web"]),
            ProcessSpec(
                "flush",
                ["flush"],
                oneshot=True,
                phase="stop",
                after=["web"],
                retries=1,
                restart_delay=0.5,
                timeout=5,
            ),
        ]
    )
    fake = FakeOS({"flush": [Behaviour.exits(1, after=1), Behaviour.exits(0, after=1)]})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(1))
    # SPEC §4: a oneshot's failed attempts are run again up to `retries` times; a stop job is a
    # oneshot, and its retry is not one that was pending when the shutdown began.
    assert fake.start_times("flush") == [1, 2.5], log.dump()
