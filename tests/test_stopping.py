"""The one stop: which signal, and the escalation to SIGKILL (issue 9, point 3)."""

from __future__ import annotations

import signal

import trio
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.runtime.stopping import stop_signal_for, terminate
from trinit.testing import Behaviour, FakeLog, FakeOS, make_supervisor

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
