"""The rules of ``stop()``/``restart()``/``wait_ready()``/``status()`` on :mod:`trinit.testing`'s
fake on trio's autojump clock, and the library's config errors (SPEC §7)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from library_kids import (
    KILL,
    TERM,
)
from trio.testing import MockClock

import trinit
from trinit import Config, ProcessSpec
from trinit.testing import Behaviour, Exit, FakeOS, make_supervisor


def _fake_config() -> Config:
    return Config(
        processes=[
            ProcessSpec(name="db", command="db"),
            ProcessSpec(name="cache", command="cache", after=["db"], restart="always"),
            ProcessSpec(name="app", command="app", after=["cache"]),
        ],
        shutdown_timeout=30,
    )


def _graceful(delay: float) -> Behaviour:
    return Behaviour.forever(on_signal={TERM: Exit(code=0, delay=delay)})


async def test_fake_stop_one_process_while_others_run(autojump_clock: MockClock) -> None:
    config = _fake_config()
    fake = FakeOS({"db": _graceful(1), "cache": _graceful(2), "app": _graceful(3)}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.wait_ready("app")
        t0 = trio.current_time()
        await sup.stop("cache")
        assert trio.current_time() - t0 == pytest.approx(2)  # returns once it has exited
        assert [(s.time - t0, s.signal) for s in fake.signals_to("cache")] == [(0, TERM)]
        assert fake.signals_to("app") == [] and fake.signals_to("db") == []
        await trio.sleep(100)  # restart = "always" does not bring a stopped process back
        assert len(fake.spawns_of("cache")) == 1
        st = sup.status()
        assert st["cache"].state == "stopped" and st["cache"].pid is None
        assert st["cache"].last_exit == trinit.ExitStatus(code=0)
        assert st["app"].state == "ready" and st["db"].state == "ready"
        t1 = trio.current_time()
        sup.request_shutdown("test")
        assert await sup.wait() == 0
    # the rest stop in reverse order; cache is not stopped twice
    assert [(s.name, s.time - t1) for s in fake.signals if s.signal == TERM][1:] == [("app", 0), ("db", 3)]


async def test_fake_stop_of_a_process_that_has_not_started(autojump_clock: MockClock) -> None:
    """stop() of a process still waiting for its dependencies: it never starts, and its status
    no longer says "waiting" (it is final: wait_ready raises)."""
    config = Config(
        processes=[
            ProcessSpec(name="db", command="db", ready={"exec": ["probe"], "interval": 1}),
            ProcessSpec(name="app", command="app", after=["db"]),
        ]
    )
    fake = FakeOS(
        {"db": Behaviour.forever(), "probe": [Behaviour.exits(1)] * 3 + [Behaviour.exits(0)]}, config=config
    )
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(0.5)
        assert sup.status()["app"].state == "waiting"
        await sup.stop("app")
        await sup.wait_ready("db")
        await trio.sleep(10)
        assert fake.spawns_of("app") == []
        with pytest.raises(trinit.TrinitError):
            await sup.wait_ready("app")
        assert sup.status()["app"].state in ("stopped",), sup.status()["app"]
        sup.request_shutdown("test")


async def test_fake_stop_during_a_restart_delay(autojump_clock: MockClock) -> None:
    config = Config(
        processes=[
            ProcessSpec(name="flaky", command="flaky", restart="on-failure", restart_delay=5),
            ProcessSpec(name="other", command="other"),
        ]
    )
    fake = FakeOS({"flaky": Behaviour.exits(1, after=1), "other": Behaviour.forever()}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(2)  # flaky exited at 1 and waits until 6 to restart
        assert sup.status()["flaky"].restarts == 1 and sup.status()["flaky"].pid is None
        await sup.stop("flaky")
        await trio.sleep(30)
        assert len(fake.spawns_of("flaky")) == 1
        st = sup.status()["flaky"]
        assert st.state == "stopped" and st.last_exit == trinit.ExitStatus(code=1)
        assert sup.status()["other"].state == "ready"
        sup.request_shutdown("test")
        assert await sup.wait() == 0


async def test_fake_stop_kills_after_stop_timeout(autojump_clock: MockClock) -> None:
    config = Config(processes=[ProcessSpec(name="stub", command="stub", stop_timeout=4)])
    fake = FakeOS({"stub": Behaviour.stubborn()}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.wait_ready("stub")
        t0 = trio.current_time()
        await sup.stop("stub")
        assert [(s.time - t0, s.signal) for s in fake.signals_to("stub")] == [(0, TERM), (4, KILL)]
        assert sup.status()["stub"].last_exit == trinit.ExitStatus(signal=KILL)
        # A stopped process may be started again: it does not end the run as a finished one would.
        await trio.sleep(60)
        assert not sup.finished.is_set()
        sup.request_shutdown("test")
        assert await sup.wait() == 0


async def test_fake_restart(autojump_clock: MockClock) -> None:
    config = _fake_config()
    fake = FakeOS({"db": _graceful(0), "cache": _graceful(1), "app": _graceful(0)}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await sup.wait_ready("app")
        old = sup.status()["cache"].pid
        t0 = trio.current_time()
        await sup.restart("cache")
        await sup.wait_ready("cache")
        st = sup.status()["cache"]
        assert st.pid != old and st.restarts == 1 and st.state == "ready"
        # stopped with its stop signal, started again at once (no restart delay on request)
        assert fake.start_times("cache")[-1] - t0 == pytest.approx(1)
        assert len(fake.spawns_of("app")) == 1 and fake.signals_to("app") == []
        sup.request_shutdown("test")
        await sup.wait()


async def test_fake_status_states(autojump_clock: MockClock) -> None:
    config = Config(
        processes=[
            ProcessSpec(name="web", command="web", ready={"exec": ["probe"], "interval": 1}),
            ProcessSpec(name="worker", command="worker", after={"web": "ready"}, stop_timeout=5),
            ProcessSpec(name="bad", command="bad", ready={"exec": ["badprobe"]}, on_failure="ignore"),
            ProcessSpec(name="never", command="never", after={"bad": "ready"}, on_failure="ignore"),
        ],
        shutdown_timeout=30,
    )
    fake = FakeOS(
        {
            "web": Behaviour.forever(),
            "probe": [
                Behaviour.exits(1, after=0.5),
                Behaviour.exits(1, after=0.5),
                Behaviour.exits(0, after=0.5),
            ],
            "worker": Behaviour.stubborn(),
            "bad": Behaviour.exits(2, after=1),
            "badprobe": Behaviour.exits(1, after=0.1),
        },
        config=config,
    )
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(0.1)
        st = sup.status()
        assert st["web"].state == "running"  # started, probe not passed yet
        assert st["worker"].state == "waiting"
        assert st["bad"].state == "running"
        await sup.wait_ready("web")
        await sup.wait_ready("worker")
        await trio.sleep(5)
        st = sup.status()
        assert st["web"].state == "ready" and st["worker"].state == "ready"
        assert st["bad"].state == "failed" and st["bad"].last_exit == trinit.ExitStatus(code=2)
        assert st["never"].state == "skipped" and st["never"].pid is None
        seen: list[str] = []
        nursery.start_soon(sup.stop, "worker")
        await trio.sleep(1)
        seen.append(sup.status()["worker"].state)
        await trio.sleep(10)
        seen.append(sup.status()["worker"].state)
        assert seen == ["stopping", "stopped"]
        sup.request_shutdown("test")


async def test_fake_wait_returns_the_main_exit_code_after_the_shutdown(autojump_clock: MockClock) -> None:
    config = Config(
        processes=[
            ProcessSpec(name="side", command="side"),
            ProcessSpec(name="app", command="app", main=True, after=["side"]),
        ]
    )
    fake = FakeOS({"side": _graceful(2), "app": Behaviour.exits(3, after=10)}, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        assert await sup.wait() == 3
        assert trio.current_time() == pytest.approx(12)  # the main's exit, then side's 2 s stop
        assert sup.status()["side"].state == "exited"


# ================================================================================ validation


def test_process_spec_reports_every_problem() -> None:
    with pytest.raises(trinit.ConfigError) as info:
        ProcessSpec(name="x", command="sleep 1", stop_timeout="soon", restart="sometimes")
    errors = info.value.errors
    assert len(errors) == 2, errors
    assert any("stop_timeout" in e and "soon" in e for e in errors), errors
    assert any("restart" in e and "sometimes" in e for e in errors), errors
    assert all('"x"' in e for e in errors), errors
    assert isinstance(info.value, trinit.TrinitError)
    assert str(info.value) == "\n".join(errors)


def test_config_reports_every_problem() -> None:
    with pytest.raises(trinit.ConfigError) as info:
        Config(
            processes=[
                ProcessSpec(name="a", command="a", after=["nope"]),
                ProcessSpec(name="b", command="b", main=True),
                ProcessSpec(name="c", command="c", main=True),
            ],
            shutdown_timeout="never",
        )
    text = "\n".join(info.value.errors)
    assert len(info.value.errors) >= 3, text
    assert "nope" in text and "shutdown_timeout" in text and "main" in text


def test_load_config_raises_the_same(tmp_path: Path) -> None:
    path = tmp_path / "trinit.toml"
    path.write_text('[process.x]\ncommand = "sleep 1"\nstop_timeout = "soon"\nrestart = "sometimes"\n')
    with pytest.raises(trinit.ConfigError) as info:
        trinit.load_config(path)
    errors = info.value.errors
    assert len(errors) == 2, errors
    assert all(str(path) in e and '"x"' in e for e in errors), errors
    assert any("stop_timeout" in e for e in errors) and any("restart" in e for e in errors)

    path.write_text('[process.x]\ncommand = "sleep 1"\nstop_timeout = "2s"\n')
    config = trinit.load_config(path)
    assert isinstance(config, Config) and config.process("x").stop_timeout == 2.0


# ================================================================================ examples/loadgen
