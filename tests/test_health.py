"""Health checks, sd_notify and fd readiness, and the watchdog (SPEC §9), on a fake OS.

Every test runs on pytest-trio's ``autojump_clock`` against :class:`trinit.testing.FakeOS`:
exec health checks are fake processes whose script says pass (exit 0) or fail (exit 1), so
the attempt that makes a process unhealthy, and every restart after it, come at exact times.
sd_notify datagrams are handed to the process's notifier with the sender pid the kernel
would attach; the real socket is tested in tests/pid1/test_health_real.py.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from fakeutil import stop_at, term_after
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.runtime.commands import answer, process_object
from trinit.runtime.notifier import Notifier
from trinit.runtime.policy import Kind, decide
from trinit.runtime.supervisor import Runtime
from trinit.testing import Behaviour, FakeLog, FakeOS, make_supervisor, run_supervisor

OK, BAD = Behaviour.exits(0), Behaviour.exits(1)
At = list[tuple[float, Callable[[Runtime], object]]]


def checks(*results: bool) -> list[Behaviour]:
    """The scripts of successive exec health checks (the last one repeats)."""
    return [OK if ok else BAD for ok in results]


def check_times(fake: FakeOS) -> list[float]:
    return [s.time for s in fake.spawns_of("check")]


def pid_of(fake: FakeOS, name: str, run: int = -1) -> int:
    return fake.processes_named(name)[run].pid


def notifier_of(sup: Runtime, name: str) -> Notifier:
    notifier = sup.spawner.notifier(name)
    assert notifier is not None
    return notifier


def send(name: str, message: bytes, fake: FakeOS, *, pid: int | None = None) -> Callable[[Runtime], object]:
    """An ``at`` action: a datagram on ``name``'s NOTIFY_SOCKET, from its current pid (or ``pid``)."""

    def deliver(sup: Runtime) -> None:
        sender = pid if pid is not None else pid_of(fake, name)
        notifier_of(sup, name).handle(sender, message)

    return deliver


def snapshot(into: dict[float, Any], what: Callable[[Runtime], Any]) -> Callable[[Runtime], object]:
    def take(sup: Runtime) -> None:
        into[trio.current_time()] = what(sup)

    return take


# ------------------------------------------------------------------------------ health checks


async def test_restart_after_exactly_failures_failed_checks_then_healthy_again(
    autojump_clock: MockClock,
) -> None:
    health = {"exec": ["check"], "interval": 1, "failures": 3}
    config = Config([ProcessSpec("svc", ["svc"], health=health, restart_delay=0.5)])
    # Checks at 1, 2 pass; 3, 4, 5 fail: unhealthy at 5, stopped, started again at 5.5.
    fake = FakeOS({"svc": Behaviour.forever(), "check": checks(True, True, False, False, False, True)})
    log = FakeLog()
    seen: dict[float, Any] = {}

    def health_of(sup: Runtime) -> Any:
        return process_object(sup, sup.runners["svc"])["health"]

    at: At = [(t, snapshot(seen, health_of)) for t in (0.5, 1.5, 4.5, 5.2, 6.7)]
    await run_supervisor(config, fake, log=log, at=[*at, *stop_at(7.2)])
    assert fake.start_times("svc") == [0, 5.5]
    assert check_times(fake)[:5] == [1, 2, 3, 4, 5]
    (event,) = log.find("unhealthy", "svc")
    assert event.time == 5 and event.fields["action"] == "restart"
    assert "3 health checks in a row failed (exec check); restarting it" in event.message
    assert [e.fields["restarts"] for e in log.find("restarting", "svc")] == [1]
    assert check_times(fake)[5] == 6.5  # the next run is checked one interval after it is ready
    assert log.find("healthy", "svc")[0].time == 6.5
    assert seen == {0.5: None, 1.5: "healthy", 4.5: "healthy", 5.2: None, 6.7: "healthy"}


async def test_health_restart_whatever_restart_says_and_counts_toward_max_restarts(
    autojump_clock: MockClock,
) -> None:
    health = {"exec": ["check"], "interval": 1, "failures": 1}
    config = Config(
        [
            ProcessSpec("main", ["main"], main=True),
            ProcessSpec("svc", ["svc"], health=health, restart="no", max_restarts=2, restart_delay=1),
        ]
    )
    fake = FakeOS({"check": BAD})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log)
    # Unhealthy at 1, back at 2 (delay 1), unhealthy at 3, back at 5 (delay 2), unhealthy at 6: gave up.
    assert fake.start_times("svc") == [0, 2, 5]
    assert "giving up (max_restarts = 2)" in log.find("failed", "svc")[0].message
    assert code == 1  # on_failure = "shutdown": it failed without an exit of its own


async def test_start_period_failures_do_not_count(autojump_clock: MockClock) -> None:
    health = {"exec": ["check"], "interval": 1, "failures": 2, "start_period": 3.5}
    config = Config([ProcessSpec("svc", ["svc"], health=health)])
    fake = FakeOS({"check": BAD})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(7))
    # 1, 2, 3 fail within the start period; 4 and 5 count: unhealthy at 5.
    assert [e.time for e in log.find("unhealthy", "svc")] == [5]


async def test_a_pass_ends_the_start_period(autojump_clock: MockClock) -> None:
    health = {"exec": ["check"], "interval": 1, "failures": 2, "start_period": 10}
    config = Config([ProcessSpec("svc", ["svc"], health=health)])
    fake = FakeOS({"check": checks(False, True, False, False)})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(6))
    assert [e.time for e in log.find("unhealthy", "svc")] == [4]


async def test_unready_removes_the_ready_file_and_brings_it_back_without_a_restart(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    flag = tmp_path / "healthy"
    flag.touch()
    health = {"file": str(flag), "interval": 1, "failures": 2, "action": "unready"}
    config = Config([ProcessSpec("svc", ["svc"], health=health)], ready_file="/run/ready")
    fake = FakeOS()
    log = FakeLog()
    sup = make_supervisor(config, fake, log=log)
    seen: dict[float, Any] = {}

    async def look_at(when: float) -> None:
        await trio.sleep_until(when)
        ready = await answer(sup, {"cmd": "probe", "what": "ready"})
        live = await answer(sup, {"cmd": "probe", "what": "live"})
        seen[when] = ("/run/ready" in fake.ready_files, sup.runners["svc"].state.value)
        seen[-when] = (ready["ready"], live["live"], live["reason"])

    async def at(when: float, do: Callable[[], object]) -> None:
        await trio.sleep_until(when)
        do()

    async with trio.open_nursery() as nursery:
        for when in (0.5, 3.5, 4.5, 6.6, 7.5):
            nursery.start_soon(look_at, when)
        nursery.start_soon(at, 2.5, flag.unlink)
        nursery.start_soon(at, 6.5, flag.touch)
        nursery.start_soon(at, 8, lambda: sup.request_shutdown("test"))
        await sup.run()
    assert seen[0.5] == (True, "ready")
    assert seen[3.5] == (True, "ready")  # one failure (at 3) is not enough
    assert seen[4.5] == (False, "ready")  # the second (at 4): unhealthy, still ready for its dependents
    assert seen[6.6] == (False, "ready")
    assert seen[7.5] == (True, "ready")  # the check at 7 passed
    assert seen[-4.5] == (False, False, "svc is unhealthy")  # probe ready and probe live answer 1
    assert seen[-7.5] == (True, True, None)
    assert fake.start_times("svc") == [0]
    assert [e.time for e in log.find("unhealthy", "svc")] == [4]
    assert [e.time for e in log.find("healthy", "svc")] == [7]


@pytest.mark.parametrize("on_failure", ["shutdown", "ignore"])
async def test_fail_means_on_failure_applies(autojump_clock: MockClock, on_failure: str) -> None:
    health = {"exec": ["check"], "interval": 1, "failures": 1, "action": "fail"}
    config = Config(
        [
            ProcessSpec("main", ["main"], main=True),
            ProcessSpec("svc", ["svc"], health=health, restart="always", on_failure=on_failure),
        ]
    )
    fake = FakeOS({"check": checks(True, False), "main": term_after(0)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log, at=stop_at(5))
    assert fake.start_times("svc") == [0]  # failed: never restarted, whatever restart says
    assert log.find("unhealthy", "svc")[0].message.endswith("; it has failed")
    assert log.find("failed", "svc")[-1].time == 2
    if on_failure == "shutdown":
        assert code == 1 and log.find("shutdown_begun")[0].time == 2
    else:
        assert code == 0 and log.find("shutdown_begun")[0].time == 5


async def test_main_fails_by_default_and_trinit_exits_1(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, health={"exec": ["check"], "interval": 2})])
    fake = FakeOS({"check": BAD})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 1
    assert log.find("unhealthy", "app")[0].time == 6  # 2, 4, 6: three failures (the default)


async def test_no_checks_and_no_second_stop_while_it_stops(autojump_clock: MockClock) -> None:
    health = {"exec": ["check"], "interval": 1, "failures": 1}
    config = Config([ProcessSpec("svc", ["svc"], health=health, stop_timeout=10)])
    fake = FakeOS({"svc": term_after(3), "check": OK})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(2.5))
    assert check_times(fake) == [1, 2]  # none while it drains from 2.5 to 5.5
    assert [s.signal for s in fake.signals_to("svc")] == [signal.SIGTERM]
    assert not log.find("unhealthy")


def test_decide_with_a_health_action() -> None:
    spec = ProcessSpec("svc", ["svc"], restart="no", max_restarts=1)
    assert decide(spec, False, 0, 1.0, unhealthy="restart").kind is Kind.RESTART
    assert decide(spec, False, 1, 1.0, unhealthy="restart").gave_up
    assert decide(spec, False, 1, 100.0, unhealthy="restart").kind is Kind.RESTART  # reset_after
    assert (
        decide(spec.__class__("s", ["s"], restart="always"), False, 0, 1.0, unhealthy="fail").kind
        is Kind.FAIL
    )


# ------------------------------------------------------------------------------ sd_notify


async def test_notify_ready_status_and_foreign_senders(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("db", ["db"], ready={"notify": True, "timeout": 30}),
            ProcessSpec("app", ["app"], after=["db"]),
        ]
    )
    fake = FakeOS()
    log = FakeLog()
    seen: dict[float, Any] = {}

    def obj(sup: Runtime) -> Any:
        return process_object(sup, sup.runners["db"])

    at: At = [
        (1, send("db", b"READY=1", fake, pid=99999)),  # not db's: ignored
        (2, send("db", b"STATUS=loading\nX_OTHER=1", fake)),
        (2.5, snapshot(seen, obj)),
        (3, send("db", b"STATUS=serving\nREADY=1\n", fake)),
        (3.5, snapshot(seen, obj)),
    ]
    await run_supervisor(config, fake, log=log, at=[*at, *stop_at(4)])
    env = fake.spawns_of("db")[0].env
    assert env["NOTIFY_SOCKET"].startswith("@")
    assert "WATCHDOG_USEC" not in env
    assert "NOTIFY_SOCKET" not in fake.spawns_of("app")[0].env
    assert log.find("ready", "db")[0].time == 3
    assert fake.start_times("app") == [3]
    assert seen[2.5]["status_text"] == "loading" and seen[2.5]["state"] == "running"
    assert seen[3.5]["status_text"] == "serving" and seen[3.5]["state"] == "ready"
    assert any("pid 99999" in e.message for e in log.find("notify", "db"))


async def test_notify_timeout_and_extend_timeout_usec(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("slow", ["slow"], ready={"notify": True, "timeout": 5}, on_failure="ignore"),
            ProcessSpec("late", ["late"], ready={"notify": True, "timeout": 5}, on_failure="ignore"),
        ]
    )
    fake = FakeOS()
    log = FakeLog()
    at: At = [
        (4, send("late", b"EXTEND_TIMEOUT_USEC=4000000\nMAINPID=12\nSTOPPING=1", fake)),
        (7.5, send("late", b"READY=1", fake)),
    ]
    await run_supervisor(config, fake, log=log, at=[*at, *stop_at(10)])
    assert "did not become ready within 5 s" in log.find("failed", "slow")[0].message
    assert log.find("failed", "slow")[0].time == 5
    assert log.find("ready", "late")[0].time == 7.5  # the deadline moved to 4 + 4 = 8
    messages = " | ".join(e.message for e in log.find("notify", "late"))
    assert (
        "asks for 4 s more" in messages
        and "main pid is 12" in messages
        and "stopping (STOPPING=1)" in messages
    )


async def test_a_restart_hears_only_the_new_pid(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("svc", ["svc"], ready={"notify": True}, restart="always", restart_delay=1)])
    fake = FakeOS({"svc": [Behaviour.exits(1, after=2), Behaviour.forever()]})
    log = FakeLog()
    first: list[int] = []
    at: At = [
        (0.5, lambda sup: first.append(pid_of(fake, "svc"))),
        (3.5, lambda sup: notifier_of(sup, "svc").handle(first[0], b"READY=1")),
        (4, send("svc", b"READY=1", fake)),
    ]
    await run_supervisor(config, fake, log=log, at=[*at, *stop_at(5)])
    assert fake.start_times("svc") == [0, 3]
    assert [e.time for e in log.find("ready", "svc")] == [4]


# ------------------------------------------------------------------------------ ready = { fd = N }


async def test_ready_fd_gets_a_pipe_at_its_number_and_a_newline_means_ready(
    autojump_clock: MockClock,
) -> None:
    config = Config([ProcessSpec("svc", ["svc"], ready={"fd": 5, "timeout": 10})])
    fake = FakeOS()
    log = FakeLog()

    def write(data: bytes) -> Callable[[Runtime], object]:
        return lambda sup: os.write(fake.processes_named("svc")[0].fds[5], data)

    await run_supervisor(
        config, fake, log=log, at=[(1, write(b"almost")), (2, write(b" ready\n")), *stop_at(3)]
    )
    assert log.find("ready", "svc")[0].time == 2
    assert fake.spawns_of("svc")[0].env.get("NOTIFY_SOCKET") is None
    assert fake.open_fds == set()  # no fd leaked: trinit closed both its ends, the fake its copy at its exit


# ------------------------------------------------------------------------------ the watchdog


async def test_watchdog_env_and_a_missed_ping_restarts(autojump_clock: MockClock) -> None:
    spec = ProcessSpec("svc", ["svc"], ready={"notify": True}, watchdog="2s", restart_delay=0.5)
    fake = FakeOS()
    log = FakeLog()
    at: At = [
        (1, send("svc", b"READY=1", fake)),
        (2, send("svc", b"WATCHDOG=1", fake)),
        (3.5, send("svc", b"WATCHDOG=1", fake)),  # then silence: missed at 5.5
    ]
    await run_supervisor(Config([spec]), fake, log=log, at=[*at, *stop_at(7)])
    spawn = fake.spawns_of("svc")[0]
    assert spawn.env["WATCHDOG_USEC"] == "2000000"
    assert spawn.env["WATCHDOG_PID"] == str(spawn.pid)
    (event,) = log.find("unhealthy", "svc")
    assert event.time == 5.5 and "sent no WATCHDOG=1 for 2 s" in event.message
    assert fake.start_times("svc") == [0, 6]


async def test_watchdog_trigger_and_unready_recovery(autojump_clock: MockClock) -> None:
    spec = ProcessSpec("svc", ["svc"], ready={"notify": True}, watchdog=10, health={"action": "unready"})
    fake = FakeOS()
    log = FakeLog()
    at: At = [
        (1, send("svc", b"READY=1", fake)),
        (2, send("svc", b"WATCHDOG=trigger", fake)),
        (3, send("svc", b"WATCHDOG=1", fake)),
    ]
    await run_supervisor(Config([spec], ready_file="/r"), fake, log=log, at=[*at, *stop_at(20)])
    assert [e.time for e in log.find("unhealthy", "svc")] == [2, 13]  # trigger; then 10 s of silence
    assert [e.time for e in log.find("healthy", "svc")] == [3]
    assert fake.start_times("svc") == [0]
