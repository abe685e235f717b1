"""Scheduled jobs at run time (SPEC §11), on pytest-trio's ``autojump_clock`` with FakeOS and a
:class:`trinit.testing.FakeWallClock`: the wall clock starts at 2030-01-01T00:00Z and moves with
trio's clock, so a job due in two years runs at once, at its exact time.

Fire-time arithmetic alone (no runtime) is in test_schedule.py.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio
from fakeutil import stop_at, term_after
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.runtime.host import Trigger
from trinit.runtime.supervisor import Runtime
from trinit.testing import Behaviour, Exit, FakeLog, FakeOS, FakeWallClock, make_supervisor, run_supervisor

START = FakeWallClock().start  # 2030-01-01T00:00:00Z
DAY = 86400.0
RIGA = ZoneInfo("Europe/Riga")


def iso(t: float, zone: Any = UTC) -> str:
    """Trio time ``t`` as the fake wall clock shows it (no jumps)."""
    return datetime.fromtimestamp(START + t, zone).isoformat(timespec="seconds")


def since(text: str, zone: Any = UTC) -> float:
    """The trio time at which the fake wall clock reads ``text``."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp() - START


def job(name: str = "job", **keys: Any) -> ProcessSpec:
    return ProcessSpec(name, [name], oneshot=True, **keys)


async def run(
    config: Config,
    fake: FakeOS,
    until: float,
    *,
    log: FakeLog | None = None,
    environ: dict[str, str] | None = None,
    clock: FakeWallClock | None = None,
    at: list[tuple[float, Callable[[Runtime], object]]] | None = None,
) -> int:
    return await run_supervisor(
        config,
        fake,
        log=log,
        environ=environ,
        wall_clock=clock,
        at=[*(at or []), *stop_at(until)],
    )


# ------------------------------------------------------------------------------ cron arithmetic


async def test_cron_runs_at_month_ends(autojump_clock: MockClock) -> None:
    config = Config([job(schedule="0 0 31 * *")])
    fake = FakeOS({"job": Behaviour.exits(0, after=1)}, config=config)
    assert await run(config, fake, until=since("2030-08-01T00:00:00")) == 0
    assert [iso(t) for t in fake.start_times("job")] == [
        "2030-01-31T00:00:00+00:00",
        "2030-03-31T00:00:00+00:00",
        "2030-05-31T00:00:00+00:00",
        "2030-07-31T00:00:00+00:00",
    ]


async def test_cron_runs_on_leap_days(autojump_clock: MockClock) -> None:
    config = Config([job(schedule="0 12 29 2 *")])
    fake = FakeOS(config=config, default=Behaviour.exits(0))
    await run(config, fake, until=since("2037-01-01T00:00:00"))
    assert [iso(t) for t in fake.start_times("job")] == [
        "2032-02-29T12:00:00+00:00",
        "2036-02-29T12:00:00+00:00",
    ]


async def test_cron_step_of_seven(autojump_clock: MockClock) -> None:
    config = Config([job(schedule="*/7 * * * *")])
    fake = FakeOS(config=config, default=Behaviour.exits(0))
    await run(config, fake, until=since("2030-01-01T01:10:00"))
    assert [iso(t)[11:16] for t in fake.start_times("job")] == [
        "00:07", "00:14", "00:21", "00:28", "00:35", "00:42", "00:49", "00:56", "01:00", "01:07",
    ]  # fmt: skip


async def test_cron_in_a_zone_with_dst_spring_forward(autojump_clock: MockClock) -> None:
    """TZ=Europe/Riga: 2030-03-31 skips 03:00-04:00 and 2030-10-27 repeats 03:00-04:00 (Debian cron:
    a fixed-time job in the skipped hour runs right after the jump, and once in the repeated one)."""
    config = Config([job(schedule="30 3 * * *")])
    fake = FakeOS(config=config, default=Behaviour.exits(0))
    clock = FakeWallClock(start=datetime(2030, 3, 29, 12, tzinfo=RIGA).timestamp())
    env = {"PATH": "/bin", "TZ": "Europe/Riga"}
    log = FakeLog()
    await run(config, fake, until=3.5 * DAY, environ=env, clock=clock, log=log)
    starts = [datetime.fromtimestamp(clock.start + t, RIGA).isoformat() for t in fake.start_times("job")]
    assert starts == ["2030-03-30T03:30:00+02:00", "2030-03-31T04:00:00+03:00", "2030-04-01T03:30:00+03:00"]
    first = next(e for e in log.events if e.event == "scheduled")
    assert first.fields["next_run"] == "2030-03-30T03:30:00+02:00"
    assert first.message == "next run at 2030-03-30T03:30:00+02:00 (in 15 h 30 min)"


async def test_cron_in_a_zone_with_dst_fall_back(autojump_clock: MockClock) -> None:
    config = Config([job(schedule="30 3 * * *")])
    env = {"PATH": "/bin", "TZ": "Europe/Riga"}
    fake = FakeOS(config=config, default=Behaviour.exits(0))
    clock = FakeWallClock(start=datetime(2030, 10, 26, 12, tzinfo=RIGA).timestamp())
    await run(config, fake, until=2 * DAY, environ=env, clock=clock)
    starts = [datetime.fromtimestamp(clock.start + t, RIGA).isoformat() for t in fake.start_times("job")]
    assert starts == ["2030-10-27T03:30:00+03:00", "2030-10-28T03:30:00+02:00"]


# ------------------------------------------------------------------------------ every, jitter


async def test_every_is_a_grid_from_the_start(autojump_clock: MockClock) -> None:
    config = Config([job(every=10)])
    fake = FakeOS({"job": Behaviour.exits(0, after=3)}, config=config)
    await run(config, fake, until=45)
    assert fake.start_times("job") == [10, 20, 30, 40]


async def test_every_jitter_delays_each_run_within_bounds_without_moving_the_grid(
    autojump_clock: MockClock,
) -> None:
    config = Config([job(every=10, jitter=4)])
    fake = FakeOS({"job": Behaviour.exits(0, after=0.5)}, config=config)
    sup = make_supervisor(config, fake)
    sup.scheduler.rng.seed(7)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(1005)
        sup.request_shutdown("test")
    starts = fake.start_times("job")
    assert len(starts) == 100
    delays = [t - 10 * (i + 1) for i, t in enumerate(starts)]
    assert all(0 <= d <= 4 for d in delays), delays
    assert max(delays) > 3.5 and min(delays) < 0.5  # drawn afresh each time, over the whole range
    assert len(set(delays)) == 100


async def test_after_gates_the_first_run_and_the_grid_starts_then(autojump_clock: MockClock) -> None:
    config = Config([job("migrate"), job(every=10, after=["migrate"])])
    fake = FakeOS({"migrate": Behaviour.exits(0, after=25)}, config=config, default=Behaviour.exits(0))
    await run(config, fake, until=50)
    assert fake.start_times("job") == [35, 45]  # the fire times of 10 and 20 are not made up


async def test_run_on_start_runs_as_soon_as_after_holds(autojump_clock: MockClock) -> None:
    config = Config([job("migrate"), job(every=10, run_on_start=True, after=["migrate"])])
    fake = FakeOS({"migrate": Behaviour.exits(0, after=5)}, config=config, default=Behaviour.exits(0))
    await run(config, fake, until=30)
    assert fake.start_times("job") == [5, 15, 25]


async def test_a_job_whose_after_fails_is_skipped_and_never_runs(autojump_clock: MockClock) -> None:
    config = Config([job("migrate", on_failure="ignore"), job(every=10, after=["migrate"])])
    fake = FakeOS({"migrate": Behaviour.exits(1, after=5)}, config=config)
    log = FakeLog()
    sup = make_supervisor(config, fake, log=log)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(30)
        assert sup.status()["job"].state == "skipped"
        assert sup.scheduler.job("job").trigger() is Trigger.REFUSED
        sup.request_shutdown("test")
    assert fake.start_times("job") == []


# ------------------------------------------------------------------------------ overlap


async def test_overlap_skip(autojump_clock: MockClock) -> None:
    config = Config([job(every=10)])
    fake = FakeOS({"job": Behaviour.exits(0, after=25)}, config=config)
    log = FakeLog()
    await run(config, fake, until=75, log=log)
    assert fake.start_times("job") == [10, 40, 70]
    skipped = [e.time for e in log.events if e.event == "skipped" and e.process == "job"]
    assert skipped == [20, 30, 50, 60]


async def test_overlap_queue_runs_one_after_the_last(autojump_clock: MockClock) -> None:
    config = Config([job(every=10, overlap="queue")])
    fake = FakeOS({"job": Behaviour.exits(0, after=25)}, config=config)
    log = FakeLog()
    await run(config, fake, until=88, log=log)
    # 20 queues a run, 30 merges into it; it runs when the one of 10 ends, at 35.
    assert fake.start_times("job") == [10, 35, 60, 85]
    assert [e.time for e in log.events if e.event == "queued"] == [20, 40, 70]


# ------------------------------------------------------------------------------ a run


async def test_a_run_that_hangs_past_its_timeout_is_stopped_and_the_schedule_goes_on(
    autojump_clock: MockClock,
) -> None:
    config = Config([job(every=60, timeout=5, stop_timeout=2)])
    fake = FakeOS({"job": Behaviour.stubborn()}, config=config)
    log = FakeLog()
    code = await run(config, fake, until=130, log=log)
    assert code == 0  # on_failure = "ignore" by default: trinit carries on
    assert fake.start_times("job") == [60, 120]
    assert [(s.time, s.signal) for s in fake.signals_to("job")][:2] == [
        (65, signal.SIGTERM),
        (67, signal.SIGKILL),
    ]
    failed = [e for e in log.events if e.event == "failed" and e.process == "job"]
    assert [e.time for e in failed][:2] == [65, 67]
    assert "carrying on (on_failure = ignore)" in failed[1].message


async def test_retries_apply_to_each_run_and_failure_is_recorded(autojump_clock: MockClock) -> None:
    config = Config([job(every=100, retries=1, restart_delay=1)])
    fake = FakeOS({"job": [Behaviour.exits(3), Behaviour.exits(3), Behaviour.exits(0)]}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(150)
        status = sup.status()["job"]
        assert (status.state, status.last_exit and status.last_exit.code) == ("failed", 3)
        await trio.sleep(100)
        status = sup.status()["job"]
        assert (status.state, status.last_exit and status.last_exit.code) == ("exited", 0)
        sup.request_shutdown("test")
    assert fake.start_times("job") == [100, 101, 200]


async def test_on_failure_shutdown_ends_trinit_with_its_code(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"]), job(every=10, on_failure="shutdown")])
    fake = FakeOS({"job": Behaviour.exits(4)}, config=config)
    assert await run_supervisor(config, fake) == 4
    assert fake.start_times("job") == [10]


async def test_a_shutdown_during_a_run_stops_it_like_a_service(autojump_clock: MockClock) -> None:
    config = Config([job(every=10, stop_signal="INT", stop_timeout=3)])
    fake = FakeOS({"job": Behaviour.forever(on_signal={signal.SIGINT: Exit(code=0, delay=1)})}, config=config)
    log = FakeLog()
    assert await run(config, fake, until=15, log=log) == 0
    assert [(s.time, s.signal) for s in fake.signals_to("job")] == [(15, signal.SIGINT)]
    assert log.events[-1].event == "shutdown_done" and log.events[-1].time == 16


async def test_no_run_starts_during_the_shutdown(autojump_clock: MockClock) -> None:
    """The shutdown begins at 14 and lasts until 19 (app's grace): neither the fire time of 16 nor
    a run due at 12 but jittered to 17 starts."""
    config = Config([ProcessSpec("app", ["app"]), job(every=8), job("late", every=12, jitter=5)])
    fake = FakeOS({"app": term_after(5), "job": Behaviour.exits(0, after=1)}, config=config)
    sup = make_supervisor(config, fake)
    sup.scheduler.rng.uniform = lambda low, high: high  # type: ignore[method-assign,assignment]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(14)
        sup.request_shutdown("test")
        assert sup.scheduler.job("job").next_run is None
        assert sup.scheduler.job("job").trigger() is Trigger.REFUSED
    assert trio.current_time() == 19
    assert fake.start_times("job") == [8]
    assert fake.start_times("late") == []


# ------------------------------------------------------------------------------ trinit's own life


async def test_only_scheduled_jobs_run_until_stopped_and_make_the_ready_file(
    autojump_clock: MockClock,
) -> None:
    config = Config([job(every=DAY)], ready_file="/run/ready")
    fake = FakeOS(config=config, default=Behaviour.exits(0))
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(1)
        assert "/run/ready" in fake.ready_files
        await trio.sleep(3 * DAY)
        assert not sup.finished.is_set()
        sup.request_shutdown("test")
    assert len(fake.start_times("job")) == 3


async def test_scheduled_jobs_do_not_count_toward_the_ready_file(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"]), job(every=100, run_on_start=True)], ready_file="/run/ready")
    fake = FakeOS({"job": [Behaviour.exits(0, after=50), Behaviour.exits(1, after=5)]}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(1)
        assert "/run/ready" in fake.ready_files  # app is up; the job's first run still goes on
        await trio.sleep(110)
        assert sup.status()["job"].state == "failed"
        assert "/run/ready" in fake.ready_files
        sup.request_shutdown("test")


async def test_next_run_and_events(autojump_clock: MockClock) -> None:
    config = Config([job(schedule="@daily"), job("tick", every=90)])
    fake = FakeOS(config=config, default=Behaviour.exits(0))
    log = FakeLog()
    sup = make_supervisor(config, fake, log=log)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(100)
        daily, tick = sup.scheduler.job("job"), sup.scheduler.job("tick")
        assert daily.next_run == START + DAY
        assert daily.next_run_text() == "2030-01-02T00:00:00+00:00"
        assert tick.next_run == pytest.approx(START + 180)
        assert sup.scheduler.next_run("tick") == tick.next_run
        sup.request_shutdown("test")
    scheduled = [
        (e.time, e.fields["next_run"]) for e in log.events if e.event == "scheduled" and e.process == "tick"
    ]
    assert scheduled == [(0, iso(90)), (90, iso(180))]


# ------------------------------------------------------------------------------ ctl start / stop


async def test_trigger_runs_now_and_respects_overlap(autojump_clock: MockClock) -> None:
    config = Config([job(schedule="@daily"), job("q", schedule="@daily", overlap="queue")])
    fake = FakeOS({"job": Behaviour.exits(0, after=10), "q": Behaviour.exits(0, after=10)}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(1)
        skip, queue = sup.scheduler.job("job"), sup.scheduler.job("q")
        assert skip.trigger() is Trigger.STARTED
        assert queue.trigger() is Trigger.STARTED
        await trio.sleep(1)
        assert skip.trigger() is Trigger.SKIPPED
        assert queue.trigger() is Trigger.QUEUED
        assert queue.trigger() is Trigger.QUEUED  # one queued run at most
        assert await queue.run_now(wait=True) is Trigger.QUEUED
        assert trio.current_time() == 21  # the run of 1, then the queued one
        assert await skip.run_now(wait=True) is Trigger.STARTED
        assert trio.current_time() == 31
        sup.request_shutdown("test")
    assert fake.start_times("job") == [1, 21]
    assert fake.start_times("q") == [1, 11]


async def test_trigger_before_after_holds_runs_once_it_does(autojump_clock: MockClock) -> None:
    config = Config([job("migrate"), job(schedule="@daily", after=["migrate"])])
    fake = FakeOS({"migrate": Behaviour.exits(0, after=5)}, config=config, default=Behaviour.exits(0))
    await run(config, fake, until=10, at=[(1, lambda sup: sup.scheduler.job("job").trigger())])
    assert fake.start_times("job") == [5]


async def test_a_stopped_job_stays_stopped_until_started(autojump_clock: MockClock) -> None:
    config = Config([job(every=10)])
    fake = FakeOS({"job": term_after(0)}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(12)
        await sup.stop("job")  # stops the run of 10
        assert sup.scheduler.job("job").next_run is None
        await trio.sleep(30)
        assert fake.start_times("job") == [10]
        await sup.restart("job")  # the library's restart of a job between runs: run it now
        await trio.sleep(1)
        assert fake.start_times("job") == [10, 42]
        await sup.stop("job")
        sup.scheduler.job("job").trigger()  # what ctl start does
        await trio.sleep(10)
        sup.request_shutdown("test")
    assert fake.start_times("job") == [10, 42, 43]  # the run of 43 goes on: 50 is skipped


async def test_a_job_stopped_before_its_first_run_starts_again_when_triggered(
    autojump_clock: MockClock,
) -> None:
    config = Config([job("migrate"), job(every=10, after=["migrate"])])
    fake = FakeOS({"migrate": Behaviour.exits(0, after=5)}, config=config, default=Behaviour.exits(0))
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(1)
        await sup.stop("job")  # still waiting for migrate
        await trio.sleep(1)
        assert sup.status()["job"].state == "stopped"
        assert sup.scheduler.job("job").trigger() is Trigger.WAITING
        await trio.sleep(19)
        sup.request_shutdown("test")
    assert fake.start_times("job") == [5, 15]  # once migrate completed, then its grid from there


# ------------------------------------------------------------------------------ the wall clock


async def test_a_clock_step_forward_past_a_fire_time_runs_it_once_at_once(autojump_clock: MockClock) -> None:
    config = Config([job(schedule="0 * * * *")])
    fake = FakeOS(config=config, default=Behaviour.exits(0))
    clock = FakeWallClock()
    log = FakeLog()
    sup = make_supervisor(config, fake, wall_clock=clock, log=log)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(1800)  # 00:30
        clock.jump(3 * 3600)  # 03:30: three fire times skipped, one run
        await trio.sleep(1)
        assert fake.start_times("job") == [1800]
        assert sup.scheduler.job("job").next_run == since("2030-01-01T04:00:00") + START
        await trio.sleep(1800)  # 04:00 on the wall clock was at 3600
        sup.request_shutdown("test")
    assert fake.start_times("job") == [1800, 3600]
    assert [e.event for e in log.events].count("clock_jump") == 2  # the step, and the job's run


async def test_a_clock_step_back_does_not_run_a_fire_time_twice(autojump_clock: MockClock) -> None:
    config = Config([job(schedule="0 1 * * *")])
    fake = FakeOS(config=config, default=Behaviour.exits(0))
    clock = FakeWallClock()
    sup = make_supervisor(config, fake, wall_clock=clock)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(3600 + 600)  # ran at 01:00; now 01:10
        clock.jump(-1800)  # 00:40: 01:00 comes again on the wall clock
        await trio.sleep(DAY + 1300)
        sup.request_shutdown("test")
    # The second run is the next day's 01:00: wall 2030-01-02T01:00 is trio time DAY + 3600 + 1800.
    assert fake.start_times("job") == [3600, DAY + 5400]


async def test_a_clock_step_back_before_a_fire_time_delays_it(autojump_clock: MockClock) -> None:
    config = Config([job(schedule="0 1 * * *")])
    fake = FakeOS(config=config, default=Behaviour.exits(0))
    clock = FakeWallClock()
    sup = make_supervisor(config, fake, wall_clock=clock)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(600)  # 00:10
        clock.jump(-1200)  # 23:50 of the day before
        await trio.sleep(2 * 3600)
        sup.request_shutdown("test")
    assert fake.start_times("job") == [600 + 4200]  # 01:00 on the wall clock: 70 minutes later


async def test_every_ignores_wall_clock_steps(autojump_clock: MockClock) -> None:
    config = Config([job(every=60)])
    fake = FakeOS(config=config, default=Behaviour.exits(0))
    clock = FakeWallClock()
    sup = make_supervisor(config, fake, wall_clock=clock)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(30)
        clock.jump(-3600)
        await trio.sleep(100)
        sup.request_shutdown("test")
    assert fake.start_times("job") == [60, 120]


async def test_a_slewed_wall_clock_is_waited_for(autojump_clock: MockClock) -> None:
    """A wall clock that falls behind trio's without a step (NTP slewing it) gets a second,
    shorter wait: the run comes at the fire time on the wall clock, not early."""
    config = Config([job(schedule="0 1 * * *")])
    fake = FakeOS(config=config, default=Behaviour.exits(0))
    clock = FakeWallClock()
    sup = make_supervisor(config, fake, wall_clock=clock)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(100)
        clock.offset -= 2.5  # no jump is reported
        await trio.sleep(3600)
        sup.request_shutdown("test")
    assert fake.start_times("job") == [3602.5]


def test_the_scheduler_uses_a_random_source_of_its_own() -> None:
    config = Config([job(every=1, jitter=1)])
    sup = make_supervisor(config, FakeOS(config=config))
    assert isinstance(sup.scheduler.rng, random.Random) and sup.scheduler.rng is not random._inst  # type: ignore[attr-defined]
