"""The library (SPEC §7): ``open_supervisor`` inside a trio program, its handle, and the
shutdown that leaving the block runs (SPEC §5).

These tests run real processes (a small child script, :mod:`library_kids`) and check what
the children themselves recorded: which signals reached them, in which order, and that none
of them outlives the block. The process-wide options and ``trinit.run`` are in
``test_library_process_wide.py``; the rules on the fake in ``test_library_fake.py``.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import trio
from library_kids import (
    HUP,
    KILL,
    PY,
    REVERSE_ORDER,
    Children,
    alive,
    assert_gone,
    chain,
    kids_fixture,
    live_pids,
    until,
)

import trinit
from trinit import Config, ProcessSpec

kids = kids_fixture()


async def test_the_supervisor_handle_end_to_end(kids: Children) -> None:
    config = Config(
        processes=[
            kids.spec("cache", restart="on-failure"),
            ProcessSpec(name="setup", command=[PY, "-c", "pass"], oneshot=True),
            kids.spec("app", main=True, after={"cache": "ready", "setup": "completed"}),
        ],
        shutdown_timeout=20,
    )
    async with trinit.open_supervisor(config) as sup:
        await sup.wait_ready("app")
        st = sup.status()
        assert set(st) == {"cache", "setup", "app"}
        app = st["app"]
        assert isinstance(app, trinit.ProcessStatus)
        assert app.name == "app" and app.state == "ready" and app.restarts == 0 and app.last_exit is None
        assert app.pid is not None and kids.got("app", "start", app.pid)
        assert st["setup"].state == "exited" and st["setup"].pid is None
        assert st["setup"].last_exit == trinit.ExitStatus(code=0)

        # send_signal reaches the process itself.
        sup.send_signal("app", HUP)
        await until(lambda: kids.got("app", "HUP", app.pid), what="app to record SIGHUP")
        assert sup.status()["app"].state == "ready"

        # A process that is not running: ProcessLookupError; an unknown name: KeyError.
        with pytest.raises(ProcessLookupError):
            sup.send_signal("setup", HUP)
        with pytest.raises(KeyError):
            sup.send_signal("nope", HUP)

        # restart: the old instance stops with its stop signal, a new one starts, counted.
        old = sup.status()["cache"].pid
        assert old is not None
        await sup.restart("cache")
        await until(lambda: sup.status()["cache"].pid not in (None, old), what="a new cache pid")
        await sup.wait_ready("cache")
        cache = sup.status()["cache"]
        assert cache.pid != old and cache.restarts == 1 and cache.state == "ready"
        assert cache.last_exit == trinit.ExitStatus(code=0)  # the child exits 0 on SIGTERM
        assert kids.got("cache", "TERM", old) and kids.got("cache", "start", cache.pid)
        assert not alive(old)
        # its dependents are left running
        assert sup.status()["app"].pid == app.pid

        # stop: graceful, and it stays stopped.
        pid = cache.pid
        assert pid is not None
        await sup.stop("cache")
        assert kids.got("cache", "TERM", pid) and kids.got("cache", "exit", pid)
        assert not alive(pid)
        stopped = sup.status()["cache"]
        assert stopped.state == "stopped" and stopped.pid is None and stopped.restarts == 1
        await trio.sleep(0.5)  # restart = "on-failure" must not bring it back either
        assert sup.status()["cache"].state == "stopped"
        assert len([r for r in kids.records() if r[:2] == ("cache", "start")]) == 2
        with pytest.raises(ProcessLookupError):
            sup.send_signal("cache", HUP)

        # wait(): the main process exits (SIGUSR1 -> code 3); the shutdown finishes; its code.
        sup.send_signal("app", signal.SIGUSR1)
        with trio.fail_after(20):
            code = await sup.wait()
        assert code == 3
        final = sup.status()
        assert final["app"].state == "exited" and final["app"].last_exit == trinit.ExitStatus(code=3)
        assert all(s.pid is None for s in final.values())
        assert_gone([app.pid])


async def test_restart_then_wait_ready_sees_the_new_instance(kids: Children) -> None:
    """After ``await restart()``, ``wait_ready`` waits for the *new* instance's readiness."""
    config = Config(processes=[kids.spec("cache")], shutdown_timeout=20)
    async with trinit.open_supervisor(config) as sup:
        await sup.wait_ready("cache")
        for n in range(1, 6):
            old = sup.status()["cache"].pid
            await sup.restart("cache")
            await sup.wait_ready("cache")
            st = sup.status()["cache"]
            assert st.state == "ready" and st.restarts == n
            assert st.pid is not None and st.pid != old
            assert kids.got("cache", "start", st.pid)


async def test_stop_and_restart_of_a_stopped_process(kids: Children) -> None:
    config = Config(processes=[kids.spec("a"), kids.spec("b")], shutdown_timeout=20)
    async with trinit.open_supervisor(config) as sup:
        await sup.wait_ready("a")
        await sup.wait_ready("b")
        b = sup.status()["b"].pid
        await sup.stop("a")
        await sup.stop("a")  # a second stop is a no-op
        assert sup.status()["a"].state == "stopped"
        assert sup.status()["b"].pid == b and sup.status()["b"].state == "ready"
        assert kids.events("TERM") == [("a", "TERM")]
        # restart() of a stopped process starts it again.
        await sup.restart("a")
        await sup.wait_ready("a")
        assert sup.status()["a"].pid is not None


async def test_start_and_the_event_stream(kids: Children) -> None:
    """start() brings a stopped process back; events() sees every state change, in order."""
    config = Config(processes=[kids.spec("a"), kids.spec("b", after=["a"])], shutdown_timeout=20)
    async with trinit.open_supervisor(config) as sup:
        await sup.wait_ready("b")
        with pytest.raises(trinit.TrinitError, match="already ready"):
            await sup.start("b")
        with sup.events() as events:
            await sup.stop("b")
            await sup.stop("a")
            await sup.start("b")  # waits for a, which is stopped: not a failure, it waits on
            assert sup.status()["b"].state == "waiting"
            await sup.start("a", wait=True)
            await sup.wait_ready("b")
            states = []
            async for event in events:
                assert {"ts", "level", "event", "process", "pid", "message"} <= set(event)
                if event["event"] == "state":
                    states.append((event["process"], event["state"]))
                if states[-1:] == [("b", "ready")]:
                    break
        assert states == [
            ("b", "stopping"),
            ("b", "stopped"),
            ("a", "stopping"),
            ("a", "stopped"),
            ("b", "waiting"),
            ("a", "waiting"),
            ("a", "starting"),
            ("a", "running"),
            ("a", "ready"),
            ("b", "starting"),
            ("b", "running"),
            ("b", "ready"),
        ]


async def test_wait_ready_raises_when_the_process_cannot_become_ready(kids: Children) -> None:
    config = Config(
        processes=[
            ProcessSpec(
                name="bad",
                command=[PY, "-c", "import time; time.sleep(0.3); raise SystemExit(4)"],
                ready={"file": "/nonexistent/never"},
                on_failure="ignore",
            ),
            kids.spec("dep", after={"bad": "ready"}, on_failure="ignore"),
            kids.spec("ok"),
        ],
        shutdown_timeout=20,
    )
    async with trinit.open_supervisor(config) as sup:
        with trio.fail_after(10):
            await sup.wait_ready("ok")
            await until(lambda: sup.status()["bad"].state == "failed", what="bad to fail")
            with pytest.raises(trinit.TrinitError, match="bad"):
                await sup.wait_ready("bad")
            await until(lambda: sup.status()["dep"].state == "skipped", what="dep to be skipped")
            with pytest.raises(trinit.TrinitError, match="dep"):
                await sup.wait_ready("dep")
        assert sup.status()["bad"].last_exit == trinit.ExitStatus(code=4)
        assert sup.status()["ok"].state == "ready"


async def test_start_failure_is_a_status_not_an_exception(tmp_path: Path) -> None:
    config = Config(
        processes=[ProcessSpec(name="ghost", command=[str(tmp_path / "missing")], on_failure="ignore")],
        shutdown_timeout=5,
    )
    async with trinit.open_supervisor(config) as sup:
        with trio.fail_after(10):
            await until(lambda: sup.status()["ghost"].state == "failed", what="ghost to fail")
        last = sup.status()["ghost"].last_exit
        assert last is not None and last.exit_code == 127
        with trio.fail_after(10):
            assert await sup.wait() == 0  # no main, everything final, failure ignored


# ================================================================================ leaving the block


async def _run_chain_and_leave(kids: Children, how: str) -> list[int]:
    pids: list[int] = []
    config = chain(kids)

    async def body() -> None:
        async with trinit.open_supervisor(config) as sup:
            await sup.wait_ready("app")
            pids.extend(live_pids(sup))
            assert len(pids) == 3
            assert kids.events("TERM") == []
            if how == "exception":
                raise LookupError("boom")
            if how == "cancel":
                await trio.sleep_forever()

    if how == "normal":
        await body()
    elif how == "exception":
        try:
            await body()
        except BaseException as exc:  # the error itself: see test_an_error_in_the_block_propagates_as_is
            assert _leaves(exc) == [LookupError], exc
        else:
            raise AssertionError("the exception was swallowed")
    else:
        with trio.move_on_after(3) as scope:
            await body()
        assert scope.cancelled_caught
    return pids


def _leaves(exc: BaseException) -> list[type[BaseException]]:
    if isinstance(exc, BaseExceptionGroup):
        return [t for e in exc.exceptions for t in _leaves(e)]
    return [type(exc)]


@pytest.mark.parametrize("how", ["normal", "exception", "cancel"])
async def test_leaving_the_block_shuts_down_in_reverse_dependency_order(kids: Children, how: str) -> None:
    with trio.fail_after(30):
        pids = await _run_chain_and_leave(kids, how)
    assert kids.events(["TERM", "exit"]) == REVERSE_ORDER
    assert_gone(pids)


async def test_an_error_in_the_block_propagates_as_is(kids: Children) -> None:
    """``except LookupError`` around the block must catch a LookupError raised in it (not an
    ExceptionGroup made by the supervisor's internal nursery)."""
    config = Config(processes=[kids.spec("app")], shutdown_timeout=20)
    with pytest.raises(LookupError, match="boom"):
        async with trinit.open_supervisor(config) as sup:
            await sup.wait_ready("app")
            raise LookupError("boom")
    assert kids.events("TERM") == [("app", "TERM")]


async def test_cancellation_cannot_cut_the_shutdown_short(kids: Children) -> None:
    """A cancel scope that expires while the shutdown runs: the processes still get their grace."""
    config = chain(kids, term_delay=0.4)
    pids: list[int] = []
    with trio.move_on_after(2) as scope:
        async with trinit.open_supervisor(config) as sup:
            await sup.wait_ready("app")
            pids = live_pids(sup)
            scope.deadline = trio.current_time() + 0.1  # expires during the shutdown
    # No SIGKILL: every child recorded its own exit after its grace, in order.
    assert kids.events(["TERM", "exit"]) == REVERSE_ORDER
    assert_gone(pids)


async def test_a_stubborn_process_is_killed_after_its_stop_timeout(kids: Children) -> None:
    config = Config(
        processes=[kids.spec("stub", opts={"ignore_term": 1}, stop_timeout=0.5)], shutdown_timeout=20
    )
    async with trinit.open_supervisor(config) as sup:
        await sup.wait_ready("stub")
        pid = sup.status()["stub"].pid
        assert pid is not None
        started = trio.current_time()
    took = trio.current_time() - started
    assert kids.events(["TERM", "exit"]) == [("stub", "TERM")]
    assert sup.status()["stub"].last_exit == trinit.ExitStatus(signal=KILL)
    assert 0.4 < took < 5
    assert_gone([pid])


async def test_shutdown_timeout_bounds_leaving_the_block(kids: Children) -> None:
    config = Config(
        processes=[kids.spec("stub", opts={"ignore_term": 1}, stop_timeout=60)], shutdown_timeout=1
    )
    async with trinit.open_supervisor(config) as sup:
        await sup.wait_ready("stub")
        pid = sup.status()["stub"].pid
        assert pid is not None
        started = trio.current_time()
    assert trio.current_time() - started < 5
    assert_gone([pid])


# ================================================================================ library mode is local


async def test_reload_applies_a_config_with_the_same_rules(kids: Children) -> None:
    db = kids.spec("db")
    web = kids.spec("web", after={"db": {"when": "ready", "restart": True}})
    side = kids.spec("side", after=["db"])
    async with trinit.open_supervisor(Config([db, web, side], shutdown_timeout=20)) as sup:
        await sup.wait_ready("web")
        await sup.wait_ready("side")
        before = {name: st.pid for name, st in sup.status().items()}
        new_db = kids.spec("db", env={"V": "2"})
        new = Config([new_db, web, side, kids.spec("extra")], shutdown_timeout=20)
        plan = await sup.reload(new, dry_run=True)
        assert plan == [
            "restart  db     (changed: env)",
            "restart  web    (restarts with db)",
            "start    extra  (new)",
            "unchanged: side",
        ]
        assert {name: st.pid for name, st in sup.status().items()} == before
        assert await sup.reload(new) == plan
        await sup.wait_ready("web")
        await sup.wait_ready("extra")
        after = {name: st.pid for name, st in sup.status().items()}
        assert (
            after["side"] == before["side"] and after["db"] != before["db"] and after["web"] != before["web"]
        )
        old_db, old_web = before["db"], before["web"]
        assert old_db is not None and old_web is not None
        assert not alive(old_db) and not alive(old_web)
        with pytest.raises(trinit.ConfigError) as info:
            await sup.reload(Config([new_db, web], shutdown_timeout=20, reload_signal="HUP"))
        assert info.value.errors == [
            "reload_signal cannot change while trinit runs (none -> SIGHUP); "
            "restart trinit (the container) to apply it"
        ]
