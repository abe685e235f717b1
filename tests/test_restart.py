"""Restart policies, oneshot retries, timeouts and readiness failures (SPEC §4), on a fake OS.

Every test runs on pytest-trio's ``autojump_clock`` against :class:`trinit.testing.FakeOS`:
backoff sequences and grace periods take no real time and the times asserted are exact.
"""

from __future__ import annotations

import itertools
import signal
from pathlib import Path

import pytest
from fakeutil import stop_at
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.testing import Behaviour, Exit, FakeLog, FakeOS, run_supervisor

TERM, KILL = signal.SIGTERM, signal.SIGKILL


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


# ------------------------------------------------------------------------------ restart = ...


async def test_on_failure_backoff_doubles_up_to_the_cap(autojump_clock: MockClock) -> None:
    config = Config(
        [ProcessSpec("svc", ["svc"], restart="on-failure", restart_delay=0.5, restart_delay_max=4)],
        shutdown_timeout=5,
    )
    fake = FakeOS({"svc": Behaviour.exits(1)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log, at=stop_at(20))
    starts = fake.start_times("svc")
    assert starts == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5]
    assert gaps(starts) == [0.5, 1, 2, 4, 4, 4, 4]
    delays = [e.fields["delay"] for e in log.find("restarting", "svc")]
    assert delays[:6] == [0.5, 1, 2, 4, 4, 4]
    # The shutdown cancelled the pending restart; a shutdown asked for is not a failure.
    assert code == 0
    assert not log.find("failed", "svc")


async def test_restart_reset_after_a_long_run_resets_the_delay(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec(
                "svc",
                ["svc"],
                restart="on-failure",
                restart_delay=0.5,
                restart_delay_max=30,
                restart_reset_after=5,
            )
        ]
    )
    quick = Behaviour.exits(1)
    fake = FakeOS({"svc": [quick, quick, quick, Behaviour.exits(1, after=10), quick, quick]})
    await run_supervisor(config, fake, at=stop_at(15.5))
    # 0 / 0.5 / 1.5 (delays 0.5, 1, 2), then a 10 s run from 3.5: the delay starts over at 0.5.
    assert fake.start_times("svc") == [0, 0.5, 1.5, 3.5, 14.0, 15.0]


async def test_max_restarts_then_failed_and_on_failure_shutdown_gives_its_code(
    autojump_clock: MockClock,
) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("svc", ["svc"], restart="on-failure", restart_delay=0.5, max_restarts=3),
        ]
    )
    fake = FakeOS({"svc": Behaviour.exits(3, after=0.25)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log)
    # Four runs (the first and three restarts), each 0.25 s, with 0.5, 1, 2 s between.
    assert fake.start_times("svc") == [0, 0.75, 2.0, 4.25]
    assert [e.time for e in log.find("restarting", "svc")] == [0.25, 1.0, 2.25]
    failed = [e for e in log.find("failed", "svc") if "code" in e.fields]
    assert failed and failed[-1].time == 4.5 and failed[-1].fields["code"] == 3
    # The failure began the shutdown: main got SIGTERM at once and its code is not the final one.
    assert [(s.time, s.signal) for s in fake.signals_to("app")] == [(4.5, TERM)]
    assert code == 3


async def test_max_restarts_zero_means_no_restart(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("svc", ["svc"], restart="on-failure", max_restarts=0)])
    fake = FakeOS({"svc": Behaviour.exits(4, after=1)})
    assert await run_supervisor(config, fake) == 4
    assert fake.start_times("svc") == [0]


async def test_on_failure_does_not_restart_after_success(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("svc", ["svc"], restart="on-failure"),
        ]
    )
    fake = FakeOS({"svc": Behaviour.exits(0, after=1), "app": Behaviour.exits(0, after=10)})
    assert await run_supervisor(config, fake) == 0
    assert fake.start_times("svc") == [0]


async def test_on_failure_restarts_after_death_by_a_signal(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("svc", ["svc"], restart="on-failure", restart_delay=1)])
    fake = FakeOS({"svc": [Behaviour.killed(signal.SIGSEGV, after=2), Behaviour.forever()]})
    await run_supervisor(config, fake, at=stop_at(10))
    assert fake.start_times("svc") == [0, 3]


async def test_success_codes_count_as_success_for_on_failure(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("svc", ["svc"], restart="on-failure", success_codes=[0, 3])])
    fake = FakeOS({"svc": Behaviour.exits(3, after=1)})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 0
    assert fake.start_times("svc") == [0]
    assert not log.find("failed")


async def test_always_restarts_after_success(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("svc", ["svc"], restart="always", restart_delay=0.5)])
    fake = FakeOS({"svc": Behaviour.exits(0, after=1)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log, at=stop_at(6))
    starts = fake.start_times("svc")
    assert starts[:2] == [0, 1.5]
    assert len(starts) >= 3
    assert code == 0
    assert not log.find("failed")


async def test_always_with_max_restarts_fails_after_the_limit(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec(
                "svc", ["svc"], restart="always", restart_delay=0.5, restart_delay_max=0.5, max_restarts=2
            )
        ]
    )
    fake = FakeOS({"svc": Behaviour.exits(0, after=1)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log)
    assert fake.start_times("svc") == [0, 1.5, 3.0]
    assert log.find("failed", "svc")
    assert code == 1


async def test_restart_no_failure_shuts_down_with_its_code(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("svc", ["svc"], restart="no"),
        ]
    )
    fake = FakeOS({"svc": Behaviour.exits(7, after=2)})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 7
    assert fake.start_times("svc") == [0]
    assert [(s.time, s.signal) for s in fake.signals_to("app")] == [(2, TERM)]
    assert not log.find("restarting")


async def test_restart_no_success_is_not_a_failure(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("svc", ["svc"])])
    fake = FakeOS({"svc": Behaviour.exits(0, after=2)})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 0
    assert log.first("shutdown_begun").time == 2


async def test_failure_under_ignore_carries_on(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("svc", ["svc"], on_failure="ignore"),
        ]
    )
    fake = FakeOS({"svc": Behaviour.exits(5, after=1), "app": Behaviour.exits(0, after=3)})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 0
    assert log.first("failed", "svc").time == 1
    assert log.first("shutdown_begun").time == 3


async def test_shutdown_cancels_a_pending_restart(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("svc", ["svc"], restart="on-failure", restart_delay=5)])
    fake = FakeOS({"svc": Behaviour.exits(1, after=1)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log, at=stop_at(2))
    assert fake.start_times("svc") == [0]
    assert log.first("shutdown_done").time == 2
    assert code == 0


# ------------------------------------------------------------------------------ oneshots


async def test_oneshot_retries_then_fails(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("job", ["job"], oneshot=True, retries=2, restart_delay=0.5),
        ]
    )
    fake = FakeOS({"job": Behaviour.exits(1, after=0.1)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log)
    starts = fake.start_times("job")
    assert len(starts) == 3
    assert starts[:2] == [0, pytest.approx(0.6)]
    assert all(gap >= 0.6 - 1e-9 for gap in gaps(starts))
    assert len(log.find("retrying", "job")) == 2
    failed = log.first("shutdown_begun")
    assert failed.time == pytest.approx(starts[-1] + 0.1)
    assert code == 1


async def test_oneshot_success_on_second_attempt_completes_and_dependents_start(
    autojump_clock: MockClock,
) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True, after={"job": "completed"}),
            ProcessSpec("job", ["job"], oneshot=True, retries=2, restart_delay=0.5),
        ]
    )
    fake = FakeOS({"job": [Behaviour.exits(1, after=0.1), Behaviour.exits(0, after=0.1)]})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log, at=stop_at(5))
    assert fake.start_times("job") == [0, pytest.approx(0.6)]
    assert fake.start_times("app") == [pytest.approx(0.7)]
    assert not log.find("failed")
    assert code == 128 + TERM  # main killed by the shutdown's SIGTERM: its own status


async def test_oneshot_spawn_failure_is_retried(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True, after=["job"]),
            ProcessSpec("job", ["job"], oneshot=True, retries=1, restart_delay=1),
        ]
    )
    fake = FakeOS({"job": [Behaviour.not_found(), Behaviour.exits(0)], "app": Behaviour.exits(0, after=1)})
    assert await run_supervisor(config, fake) == 0
    assert [s.time for s in fake.spawns_of("job")] == [0, 1]
    assert fake.start_times("app") == [1]


async def test_oneshot_timeout_stops_it_and_kills_after_stop_timeout(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("job", ["job"], oneshot=True, timeout=2, stop_timeout=1.5),
        ]
    )
    fake = FakeOS({"job": Behaviour.stubborn()})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log)
    assert [(s.time, s.signal) for s in fake.signals_to("job")] == [(2, TERM), (3.5, KILL)]
    assert log.first("killed", "job").time == 3.5
    # It failed without an exit of its own: the shutdown it starts exits 1.
    assert log.first("shutdown_begun").time == 3.5
    assert code == 1


async def test_oneshot_timeout_that_exits_on_term_is_still_a_failure(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("job", ["job"], oneshot=True, timeout=2)])
    fake = FakeOS({"job": Behaviour.forever(on_signal={TERM: Exit(code=0, delay=0.5)})})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log)
    assert [(s.time, s.signal) for s in fake.signals_to("job")] == [(2, TERM)]
    assert not log.find("killed")
    assert code == 1


async def test_oneshot_timeout_with_retries_runs_again(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True, after=["job"]),
            ProcessSpec("job", ["job"], oneshot=True, timeout=2, retries=1, restart_delay=1),
        ]
    )
    fake = FakeOS(
        {"job": [Behaviour.forever(), Behaviour.exits(0, after=1)], "app": Behaviour.exits(0, after=1)}
    )
    assert await run_supervisor(config, fake) == 0
    assert fake.start_times("job") == [0, 3]
    assert fake.start_times("app") == [4]


async def test_main_timeout_exits_1(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, timeout=3, stop_timeout=1)])
    fake = FakeOS({"app": Behaviour.forever(on_signal={TERM: Exit(code=0)})})
    assert await run_supervisor(config, fake) == 1
    assert [(s.time, s.signal) for s in fake.signals_to("app")] == [(3, TERM)]


# ------------------------------------------------------------------------------ readiness failure


async def test_readiness_timeout_restarts_first_then_fails(autojump_clock: MockClock, tmp_path: Path) -> None:
    missing = str(tmp_path / "never")
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec(
                "svc",
                ["svc"],
                ready={"file": missing, "timeout": 1, "interval": 0.25},
                restart="on-failure",
                restart_delay=0.5,
                max_restarts=1,
            ),
        ]
    )
    fake = FakeOS()
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log)
    # Run 1 from 0: not ready at 1, stopped; restart after 0.5; run 2 from 1.5, stopped at 2.5.
    assert fake.start_times("svc") == [0, 1.5]
    assert [(s.time, s.signal) for s in fake.signals_to("svc")] == [(1, TERM), (2.5, TERM)]
    assert log.first("restarting", "svc").time == 1
    assert log.first("shutdown_begun").time == 2.5
    assert code == 1  # failed without exiting of its own


async def test_readiness_timeout_without_restart_applies_on_failure(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("svc", ["svc"], ready={"file": str(tmp_path / "never"), "timeout": 2}),
        ]
    )
    fake = FakeOS()
    assert await run_supervisor(config, fake) == 1
    assert fake.start_times("svc") == [0]
    assert [(s.time, s.signal) for s in fake.signals_to("app")] == [(2, TERM)]


async def test_readiness_timeout_under_ignore_carries_on(autojump_clock: MockClock, tmp_path: Path) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec(
                "svc", ["svc"], ready={"file": str(tmp_path / "never"), "timeout": 2}, on_failure="ignore"
            ),
        ]
    )
    fake = FakeOS({"app": Behaviour.exits(0, after=5)})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 0
    assert [(s.time, s.signal) for s in fake.signals_to("svc")] == [(2, TERM)]
    assert log.first("shutdown_begun").time == 5


async def test_main_readiness_timeout_exits_1(autojump_clock: MockClock, tmp_path: Path) -> None:
    config = Config(
        [ProcessSpec("app", ["app"], main=True, ready={"file": str(tmp_path / "x"), "timeout": 2})]
    )
    fake = FakeOS()
    assert await run_supervisor(config, fake) == 1
    assert [(s.time, s.signal) for s in fake.signals_to("app")] == [(2, TERM)]


async def test_exec_probe_runs_through_the_os_layer(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True, after={"db": "ready"}),
            ProcessSpec("db", ["db"], ready={"exec": ["db-ping"], "interval": 1, "timeout": 10}),
        ]
    )
    no, yes = Behaviour.exits(1), Behaviour.exits(0)
    fake = FakeOS({"db-ping": [no, no, yes], "app": Behaviour.exits(0, after=1)})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 0
    assert fake.start_times("db-ping") == [0, 1, 2]
    assert log.first("ready", "db").time == 2
    assert fake.start_times("app") == [2]
