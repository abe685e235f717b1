"""The shutdown of SPEC §5 on a fake OS: order, stop jobs, the budget (forcing and the sweep
are in ``test_shutdown_forcing.py``).

All on pytest-trio's ``autojump_clock`` against :class:`trinit.testing.FakeOS`, so the
times asserted (when each signal went out, when the run ended) are exact.
"""

from __future__ import annotations

import signal
from pathlib import Path

import trio
from fakeutil import sent, stop_at, term_after
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.runtime.state import State
from trinit.testing import Behaviour, FakeLog, FakeOS, make_supervisor, run_supervisor

TERM, KILL, INT, QUIT = signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGQUIT


# ------------------------------------------------------------------------------ order


async def test_reverse_dependency_order_waits_for_the_kill(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("cache", ["cache"]),
            ProcessSpec("web", ["web"], after={"cache": "started"}, stop_timeout=2),
        ]
    )
    fake = FakeOS({"web": Behaviour.stubborn()})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log, at=stop_at(1))
    assert sent(fake, "web") == [(1, TERM), (3, KILL)]
    assert sent(fake, "cache") == [(3, TERM)]
    killed = log.first("killed", "web")
    assert killed.time == 3 and killed.fields["grace"] == 2
    assert log.first("shutdown_done").time == 3
    assert trio.current_time() == 3
    assert code == 0


async def test_a_chain_stops_one_after_the_other(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("db", ["db"]),
            ProcessSpec("api", ["api"], after=["db"]),
            ProcessSpec("web", ["web"], after=["api"]),
        ]
    )
    fake = FakeOS({"web": term_after(0.5), "api": term_after(1), "db": term_after(0.25)})
    await run_supervisor(config, fake, at=stop_at(1))
    assert sent(fake, "web") == [(1, TERM)]
    assert sent(fake, "api") == [(1.5, TERM)]
    assert sent(fake, "db") == [(2.5, TERM)]
    assert trio.current_time() == 2.75


async def test_independent_processes_stop_together(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("x", ["x"]), ProcessSpec("y", ["y"]), ProcessSpec("z", ["z"], after=["y"])])
    fake = FakeOS({"x": term_after(0.5), "y": term_after(1.5), "z": term_after(0.25)})
    await run_supervisor(config, fake, at=stop_at(1))
    assert sent(fake, "x") == [(1, TERM)]
    assert sent(fake, "z") == [(1, TERM)]
    assert sent(fake, "y") == [(1.25, TERM)]
    # Done as soon as nothing is left, not after any grace.
    assert trio.current_time() == 2.75


async def test_exit_within_grace_gets_no_sigkill(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, stop_timeout=5)])
    fake = FakeOS({"app": term_after(1)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log, at=stop_at(1))
    assert sent(fake, "app") == [(1, TERM)]
    assert not log.find("killed")
    assert trio.current_time() == 2
    assert code == 0


async def test_stop_signal_and_signal_group(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("q", ["q"], stop_signal="QUIT"),
            ProcessSpec("g", ["g"], signal_group=True),
        ]
    )
    fake = FakeOS()
    await run_supervisor(config, fake, at=stop_at(1))
    assert sent(fake, "q") == [(1, QUIT)]
    (group,) = fake.signals_to("g")
    assert (group.time, group.signal, group.group) == (1, TERM, True)
    assert group.pid == fake.processes_named("g")[0].pid


async def test_main_gets_the_signal_that_began_the_shutdown(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True), ProcessSpec("side", ["side"])])
    fake = FakeOS()
    code = await run_supervisor(config, fake, at=[(1, lambda sup: sup.on_signal(INT, INT))])
    assert sent(fake, "app") == [(1, INT)]
    assert sent(fake, "side") == [(1, TERM)]
    assert code == 128 + INT


async def test_main_with_its_own_stop_signal(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, stop_signal="QUIT")])
    fake = FakeOS()
    code = await run_supervisor(config, fake, at=[(1, lambda sup: sup.on_signal(TERM, TERM))])
    assert sent(fake, "app") == [(1, QUIT)]
    assert code == 128 + QUIT


async def test_repeated_sigterm_is_passed_to_processes_in_their_grace(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("svc", ["svc"], stop_timeout=5)])
    # Ignores the first SIGTERM, so it is still in its grace at 2.
    fake = FakeOS({"svc": [Behaviour.forever(ignore=[TERM])]})
    log = FakeLog()
    await run_supervisor(
        config,
        fake,
        log=log,
        at=[(1, lambda sup: sup.on_signal(TERM, TERM)), (2, lambda sup: sup.on_signal(TERM, TERM))],
    )
    assert sent(fake, "svc") == [(1, TERM), (2, TERM), (6, KILL)]


# ------------------------------------------------------------------------------ stop jobs


def stop_job_config() -> Config:
    return Config(
        [
            ProcessSpec("cache", ["cache"]),
            ProcessSpec("web", ["web"], after={"cache": "started"}),
            ProcessSpec("db", ["db"]),
            ProcessSpec("flush", ["flush"], oneshot=True, phase="stop", after=["web"], timeout=5),
        ]
    )


async def test_stop_job_runs_after_its_processes_and_before_the_others(autojump_clock: MockClock) -> None:
    config = stop_job_config()
    fake = FakeOS({"web": term_after(0.5), "flush": Behaviour.exits(0, after=2)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log, at=stop_at(1))
    assert fake.start_times("flush") == [1.5]
    assert sent(fake, "web") == [(1, TERM)]
    assert sent(fake, "cache") == [(3.5, TERM)]
    assert sent(fake, "db") == [(3.5, TERM)]
    assert trio.current_time() == 3.5
    assert code == 0


async def test_stop_job_skipped_when_its_process_never_started(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    config = Config(
        [
            ProcessSpec("cache", ["cache"], ready={"file": str(tmp_path / "never"), "timeout": 100}),
            ProcessSpec("web", ["web"], after={"cache": "ready"}),
            ProcessSpec("flush", ["flush"], oneshot=True, phase="stop", after=["web"], timeout=5),
        ]
    )
    fake = FakeOS()
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(1))
    assert fake.start_times("web") == []
    assert fake.start_times("flush") == []
    assert log.first("skipped", "flush").time == 1
    assert sent(fake, "cache") == [(1, TERM)]


async def test_stop_job_timeout_bounds_it(autojump_clock: MockClock) -> None:
    config = stop_job_config()
    fake = FakeOS({"flush": Behaviour.stubborn()})
    await run_supervisor(config, fake, at=stop_at(1))
    # flush starts at 1 (web exits on TERM at once); its timeout stops it at 6; its grace would
    # end at 11, but the budget (9 s from 1) runs out first.
    assert fake.start_times("flush") == [1]
    assert sent(fake, "flush") == [(6, TERM), (10, KILL)]


async def test_stop_job_after_main_exit(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("flush", ["flush"], oneshot=True, phase="stop", after=["app"], timeout=5),
            ProcessSpec("db", ["db"]),
        ]
    )
    fake = FakeOS({"app": Behaviour.exits(0, after=2), "flush": Behaviour.exits(0, after=1)})
    code = await run_supervisor(config, fake)
    assert fake.start_times("flush") == [2]
    assert sent(fake, "db") == [(3, TERM)]
    assert code == 0


async def test_failing_stop_job_does_not_change_the_exit_code(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("flush", ["flush"], oneshot=True, phase="stop", after=["app"], timeout=5),
        ]
    )
    fake = FakeOS({"app": Behaviour.exits(0, after=2), "flush": Behaviour.exits(3, after=1)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log)
    assert fake.start_times("flush") == [2]
    assert log.find("failed", "flush")
    # SPEC §2: the exit code is fixed by the first failure that *starts* a shutdown; this one
    # happened during it, so main's status stands.
    assert code == 0


# ------------------------------------------------------------------------------ the budget


async def test_shutdown_timeout_kills_everything_and_names_who_held_it_up(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("cache", ["cache"]),
            ProcessSpec("web", ["web"], after={"cache": "started"}, stop_timeout=10),
        ],
        shutdown_timeout=3,
    )
    fake = FakeOS({"web": Behaviour.stubborn()})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log, at=stop_at(1))
    assert sent(fake, "web") == [(1, TERM), (4, KILL)]
    assert sent(fake, "cache") == [(4, KILL)]
    ran_out = log.first("shutdown_timeout")
    assert ran_out.time == 4
    holding = ran_out.fields["holding"]
    assert isinstance(holding, list) and any("web" in who for who in holding)
    assert "web" in ran_out.message
    assert trio.current_time() == 4
    assert code == 0


async def test_exhausted_budget_skips_stop_jobs_not_begun_with_a_log_line(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("web", ["web"], stop_timeout=10),
            ProcessSpec("flush", ["flush"], oneshot=True, phase="stop", after=["web"], timeout=5),
        ],
        shutdown_timeout=3,
    )
    fake = FakeOS({"web": Behaviour.stubborn()})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(1))
    assert fake.start_times("flush") == []
    # SPEC §5.3: "an exhausted budget skips stop jobs not yet begun, with a log line".
    assert [e.time for e in log.find(process="flush") if e.event == "skipped"] == [4], log.dump()


async def test_budget_running_out_during_a_stop_job(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("web", ["web"]),
            ProcessSpec("db", ["db"]),
            ProcessSpec("flush", ["flush"], oneshot=True, phase="stop", after=["web"]),
        ],
        shutdown_timeout=4,
    )
    fake = FakeOS({"flush": Behaviour.stubborn()})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(1))
    assert fake.start_times("flush") == [1]
    assert sent(fake, "flush") == [(5, KILL)]
    assert sent(fake, "db") == [(5, KILL)]
    assert "flush" in log.first("shutdown_timeout").message
    assert trio.current_time() == 5


async def test_stop_job_without_after_runs_first_while_everything_is_up(autojump_clock: MockClock) -> None:
    """SPEC §5.3 (issue 10 defect 6): an empty ``after`` runs at once; every process waits for it."""
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("db", ["db"]),
            ProcessSpec("backup", ["backup"], oneshot=True, phase="stop", timeout=5),
        ]
    )
    fake = FakeOS({"backup": Behaviour.exits(0, after=2)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log, at=stop_at(1))
    assert fake.start_times("backup") == [1]
    assert sent(fake, "app") == [(3, TERM)]
    assert sent(fake, "db") == [(3, TERM)]
    assert not log.find("skipped", "backup")
    assert code == 143


async def test_a_process_that_exits_after_the_pick_is_stopped_alone(autojump_clock: MockClock) -> None:
    """The shutdown picks the processes it stops together, and their task starts later: one that
    exited in between (its restart pending) is stopped as it would be alone, not asserted running."""
    config = Config(
        [ProcessSpec("a", ["a"]), ProcessSpec("b", ["b"], restart="always", restart_delay=10)],
        shutdown_timeout=5,
    )
    fake = FakeOS({"*": Behaviour.forever()})
    sup = make_supervisor(config, fake, log=FakeLog())
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(1)
        picked = [sup.runners["a"], sup.runners["b"]]
        fake.kill(fake.processes_named("b")[0].pid, signal.SIGKILL)  # b exits after the pick
        await trio.sleep(0.5)
        assert sup.runners["b"].state not in (State.RUNNING, State.READY)  # its restart is pending
        await sup._shutdown._stop_together(picked, TERM, 5)
        assert sent(fake, "a") == [(1.5, TERM)]
        assert sup.runners["b"].state in (State.STOPPED, State.EXITED)
        sup.request_shutdown("test")
    assert len(fake.spawns_of("b")) == 1  # not restarted
