"""The one stop: which signal, and the escalation to SIGKILL (issue 9, point 3)."""

from __future__ import annotations

import signal

import trio
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.runtime.stopping import stop_signal_for, terminate, terminate_all
from trinit.testing import Behaviour, Exit, FakeLog, FakeOS, make_supervisor

TERM, KILL, QUIT, USR1 = signal.SIGTERM, signal.SIGKILL, signal.SIGQUIT, signal.SIGUSR1


def test_stop_signal_for() -> None:
    plain = ProcessSpec("side", ["side"])
    main = ProcessSpec("app", ["app"], main=True)
    own = ProcessSpec("app", ["app"], main=True, stop_signal="SIGUSR1")
    assert stop_signal_for(plain) == TERM
    assert stop_signal_for(plain, QUIT) == TERM  # only the main process gets the shutdown's signal
    assert stop_signal_for(main) == TERM
    assert stop_signal_for(main, QUIT) == QUIT
    assert stop_signal_for(own, QUIT) == USR1


async def test_terminate_escalates_and_a_forced_one_kills_at_once(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("a", ["a"]), ProcessSpec("b", ["b"])])
    fake = FakeOS({"a": Behaviour.stubborn(), "b": Behaviour.stubborn()})
    log = FakeLog()
    sup = make_supervisor(config, fake, log=log)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.wait_ready("a")
        await sup.wait_ready("b")
        a, b = sup.runner("a").handle, sup.runner("b").handle
        assert a is not None and b is not None
        force = trio.Event()
        await terminate(a, TERM, 2.0, force, log)
        assert [(s.time, s.signal) for s in fake.signals_to("a")] == [(0, TERM), (2, KILL)]
        assert "ignored SIGTERM for 2 s" in log.first("killed", "a").message
        force.set()
        await terminate(b, TERM, 2.0, force, log)
        assert [(s.time, s.signal) for s in fake.signals_to("b")] == [(2, KILL)]
        assert "forced" in log.first("killed", "b").message
        sup.request_shutdown("test")


async def test_terminate_all_stops_many_with_one_deadline_and_force_cuts_it_short(
    autojump_clock: MockClock,
) -> None:
    """Issue 16: each gets its signal and its line; only the stubborn one is killed, after the grace;
    a force under way ends the grace at once (a shared cancel scope, no task per process)."""
    names = ["a", "b", "c", "d"]
    config = Config([ProcessSpec(n, [n], restart="no", on_failure="ignore") for n in names])
    fake = FakeOS({
        "a": Behaviour.forever(), "b": Behaviour.stubborn(),
        "c": Behaviour.stubborn(), "d": Behaviour.forever(on_signal={TERM: Exit(delay=1.0)}),
    })  # fmt: skip
    log = FakeLog()
    sup = make_supervisor(config, fake, log=log)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for n in names:
            await sup.wait_ready(n)
        handles = [sup.runner(n).handle for n in names]
        assert all(h is not None for h in handles)
        force = trio.Event()
        await terminate_all([h for h in handles[:2] if h is not None], TERM, 3.0, force, log)
        assert [(s.time, s.signal) for s in fake.signals_to("a")] == [(0, TERM)]
        assert [(s.time, s.signal) for s in fake.signals_to("b")] == [(0, TERM), (3, KILL)]
        assert {e.process for e in log.find("stopping")} == {"a", "b"}
        assert [e.process for e in log.find("killed")] == ["b"]

        async def force_soon() -> None:
            await trio.sleep(0.5)
            force.set()

        nursery.start_soon(force_soon)
        started = trio.current_time()
        await terminate_all([h for h in handles[2:] if h is not None], TERM, 10.0, force, log)
        assert trio.current_time() - started < 1.0  # d needed 1 s; force came at 0.5 s
        assert [s.signal for s in fake.signals_to("c")] == [TERM, KILL]
        assert [s.signal for s in fake.signals_to("d")] == [TERM, KILL]
        assert "forced" in log.first("killed", "c").message
        sup.request_shutdown("test")


async def test_the_shutdown_stops_plain_processes_together_and_keeps_the_order_of_the_rest(
    autojump_clock: MockClock,
) -> None:
    """Processes with no order to keep stop together; one that others wait for still stops after them."""
    config = Config([
        ProcessSpec("db", ["db"]),
        ProcessSpec("app", ["app"], after={"db": "started"}),
        *(ProcessSpec(f"p{i}", [f"p{i}"]) for i in range(20)),
    ])  # fmt: skip
    fake = FakeOS({"app": Behaviour.forever(on_signal={TERM: Exit(delay=2.0)})})
    log = FakeLog()
    sup = make_supervisor(config, fake, log=log)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for name in ["app", *(f"p{i}" for i in range(20))]:
            await sup.wait_ready(name)
        sup.request_shutdown("test")
    assert all(fake.signals_to(f"p{i}")[0].time == 0 for i in range(20))
    assert [(s.time, s.signal) for s in fake.signals_to("app")] == [(0, TERM)]
    assert [(s.time, s.signal) for s in fake.signals_to("db")] == [(2, TERM)]  # after app is gone
    assert all(sup.runner(f"p{i}").state.public == "exited" for i in range(20))
