"""Reload at run time (SPEC §10) on the fake OS: what stops, starts, restarts and is left alone.

Each test runs a supervisor on pytest-trio's ``autojump_clock`` and reloads it as the library
does (``reload(config)``) or as ``ctl reload`` does (the config file read again).
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from trinit import Config, ConfigError, ProcessSpec, TrinitError, load_config
from trinit.runtime.options import RuntimeOptions
from trinit.runtime.reload import ReloadRefused
from trinit.runtime.supervisor import Runtime
from trinit.testing import Behaviour, Exit, FakeLog, FakeOS, make_supervisor

TERM, HUP = signal.SIGTERM, signal.SIGHUP
FOLLOW = {"when": "ready", "restart": True}


def spec(name: str, **keys: Any) -> ProcessSpec:
    keys.setdefault("command", [name])
    return ProcessSpec(name, **keys)


def forever() -> Behaviour:
    return Behaviour.forever(on_signal={TERM: Exit(code=0, delay=0.1)})


async def until(done: Any) -> None:
    """Until ``done()``: a reload from a file reads it in a thread, in real time."""
    for _ in range(5000):
        if done():
            return
        time.sleep(0.001)
        await trio.sleep(0.01)
    raise AssertionError("timed out")


@asynccontextmanager
async def running(
    config: Config, behaviours: dict[str, Behaviour] | None = None, **kw: Any
) -> AsyncIterator[tuple[Runtime, FakeOS, FakeLog]]:
    fake = FakeOS(behaviours, default=forever())
    log = FakeLog()
    sup = make_supervisor(config, fake, log=log, **kw)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(1)
        yield sup, fake, log
        sup.request_shutdown("test")
        await sup.wait()


def pids(sup: Runtime) -> dict[str, int | None]:
    return {name: status.pid for name, status in sup.status().items()}


BASE = [
    spec("db"),
    spec("web", after={"db": FOLLOW}),
    spec("api", after={"web": FOLLOW}),
    spec("side", after=["db"]),
    spec("worker"),
]


async def test_a_reload_that_changes_nothing_touches_nothing(autojump_clock: MockClock) -> None:
    async with running(Config(BASE)) as (sup, fake, log):
        before = pids(sup)
        lines = await sup.reloader.reload(Config(BASE))
        assert lines == ["nothing to do: the config has not changed", "unchanged: db, web, api, side, worker"]
        await trio.sleep(1)
        assert pids(sup) == before and not fake.signals
        assert log.find("reload_done")


async def test_added_processes_start_once_their_after_holds(autojump_clock: MockClock) -> None:
    async with running(Config(BASE)) as (sup, fake, log):
        before = pids(sup)
        new = Config([*BASE, spec("cache", after={"db": "ready"}), spec("late", after=["cache"])])
        lines = await sup.reloader.reload(new)
        assert lines[:2] == ["start    cache  (new)", "start    late   (new)"]
        await trio.sleep(1)
        now = pids(sup)
        assert {k: now[k] for k in before} == before  # nothing else touched
        assert now["cache"] is not None and now["late"] is not None
        assert fake.start_times("late")[0] >= fake.start_times("cache")[0]
        assert list(sup.status()) == ["db", "web", "api", "side", "worker", "cache", "late"]
        assert [e.process for e in log.find("reload") if e.process] == ["cache", "late"]


async def test_removed_processes_stop_dependents_first_and_are_gone(autojump_clock: MockClock) -> None:
    async with running(Config(BASE)) as (sup, fake, _log):
        before = pids(sup)
        lines = await sup.reloader.reload(Config([spec("db"), spec("worker")]))
        assert lines[:3] == [
            "stop     side  (no longer in the config)",
            "stop     api   (no longer in the config)",
            "stop     web   (no longer in the config)",
        ]
        assert list(sup.status()) == ["db", "worker"]
        assert pids(sup) == {"db": before["db"], "worker": before["worker"]}
        terms = {n: fake.signals_to(n)[0].time for n in ("side", "api", "web")}
        assert terms["side"] <= terms["api"] < terms["web"]
        assert not fake.signals_to("db") and not fake.signals_to("worker")


async def test_a_changed_process_restarts_with_its_followers_only(autojump_clock: MockClock) -> None:
    async with running(Config(BASE)) as (sup, fake, log):
        before = pids(sup)
        new = [spec("db", command=["db", "--v2"]), *BASE[1:]]
        lines = await sup.reloader.reload(Config(new))
        assert lines == [
            "restart  db   (changed: command)",
            "restart  web  (restarts with db)",
            "restart  api  (restarts with db)",
            "unchanged: side, worker",
        ]
        await trio.sleep(1)
        after = pids(sup)
        assert after["side"] == before["side"] and after["worker"] == before["worker"]
        assert all(after[n] != before[n] and after[n] is not None for n in ("db", "web", "api"))
        assert fake.spawns_of("db")[-1].argv == ("db", "--v2")
        # Stopped dependents first, started in order.
        t = {n: fake.signals_to(n)[0].time for n in ("db", "web", "api")}
        assert t["api"] < t["web"] < t["db"]
        assert fake.start_times("db")[1] <= fake.start_times("web")[1] <= fake.start_times("api")[1]
        assert sup.status()["db"].restarts == 1 and sup.status()["web"].restarts == 1
        assert not log.find("failed")


async def test_an_invalid_or_refused_config_changes_nothing(autojump_clock: MockClock) -> None:
    config = Config([spec("app", main=True), *BASE], control_socket=None)
    async with running(config) as (sup, fake, log):
        before = pids(sup)
        with pytest.raises(ConfigError) as info:
            await sup.reloader.reload(Config([spec("app", main=True, command=["app", "2"]), spec("db")]))
        assert info.value.errors == [
            'the main process "app" changed (command): it cannot restart without ending the run; '
            "restart trinit (the container) to apply it"
        ]
        assert isinstance(info.value, ReloadRefused) and info.value.code == "config_error"
        with pytest.raises(ConfigError, match="reload_signal cannot change"):
            await sup.reloader.reload(Config(config.processes, reload_signal="HUP"))
        # A dry run says it all the same, and changes nothing either.
        with pytest.raises(ConfigError):
            await sup.reloader.reload(Config([spec("db")]), dry_run=True)
        assert await sup.reloader.reload(Config([*config.processes[:-1]]), dry_run=True) == [
            "stop     worker  (no longer in the config)",
            "unchanged: app, db, web, api, side",
        ]
        await trio.sleep(1)
        assert pids(sup) == before and not fake.signals
        assert sup.config is config
        errors = [e.message for e in log.find("reload_failed")]
        assert errors[0].startswith("reload refused: the new config was not applied (1 error)")
        assert any("the main process" in m for m in errors)


async def test_one_reload_at_a_time_and_none_in_the_shutdown(autojump_clock: MockClock) -> None:
    async with running(Config(BASE)) as (sup, _fake, _log):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sup.reloader.reload, Config(BASE[:-1]))
            await trio.sleep(0.01)  # worker takes 0.1 s to stop
            with pytest.raises(TrinitError, match="a reload is under way"):
                await sup.reloader.reload(Config(BASE))
        sup.request_shutdown("test")
        with pytest.raises(TrinitError, match="shutting down"):
            await sup.reloader.reload(Config(BASE))


async def test_a_file_reload_sees_includes_and_errors_of_every_file(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    main = tmp_path / "trinit.toml"
    main.write_text('[trinit]\ninclude = ["conf.d/*.toml"]\n\n[process.db]\ncommand = ["db"]\n')
    (tmp_path / "conf.d").mkdir()
    config = load_config(main)
    async with running(config) as (sup, _fake, _log):
        sup.reloader.source = lambda: load_config(main)
        (tmp_path / "conf.d/web.toml").write_text('[process.web]\ncommand = ["web"]\nafter = ["db"]\n')
        assert await sup.reloader.reload() == ["start    web  (new)", "unchanged: db"]
        # Removing db while web still waits for it: the new config is invalid on its own.
        main.write_text('[trinit]\ninclude = ["conf.d/*.toml"]\n')
        with pytest.raises(ConfigError) as info:
            await sup.reloader.reload()
        assert info.value.errors == [
            f'{tmp_path}/conf.d/web.toml: process "web": after: no process named "db"'
        ]
        assert list(sup.status()) == ["db", "web"]


async def test_a_stopped_process_stays_stopped_with_its_new_spec(autojump_clock: MockClock) -> None:
    async with running(Config(BASE)) as (sup, fake, _log):
        await sup.stop("worker")
        await sup.reloader.reload(Config([*BASE[:-1], spec("worker", command=["worker", "-x"])]))
        await trio.sleep(1)
        assert sup.status()["worker"].state == "stopped"
        await sup.start("worker", wait=True)
        assert fake.spawns_of("worker")[-1].argv == ("worker", "-x")


async def test_runtime_settings_take_effect(autojump_clock: MockClock) -> None:
    config = Config(BASE, ready_file="/run/a", shutdown_timeout=9)
    async with running(config) as (sup, fake, _log):
        assert "/run/a" in fake.ready_files
        await sup.reloader.reload(Config(BASE, ready_file="/run/b", shutdown_timeout=20, log_format="json"))
        assert list(fake.ready_files) == ["/run/b"]
        assert sup.config.shutdown_timeout == 20 and sup.log.log_format == "json"


async def test_a_reload_sets_the_runs_first_ready_file(autojump_clock: MockClock) -> None:
    async with running(Config(BASE)) as (sup, fake, _log):
        assert sup.ready_file is None  # no ready_file: its module is not even needed
        await sup.reloader.reload(Config(BASE, ready_file="/run/a"))
        assert list(fake.ready_files) == ["/run/a"]


async def test_a_ready_file_set_once_the_run_is_ending_is_never_made(autojump_clock: MockClock) -> None:
    # "once" exits with no restart to come: the run goes on (no main process), but is no longer all up.
    behaviours = {"once": Behaviour.exits(0, after=2)}
    async with running(Config([spec("db"), spec("once")]), behaviours) as (sup, fake, _log):
        await trio.sleep(5)
        await sup.reloader.reload(Config([spec("db")], ready_file="/run/a"))
        await trio.sleep(1)
        assert fake.ready_files == {}
        assert not any(call == "write_ready_file" for call, _ in fake.calls)


async def test_scheduled_jobs_come_and_go_with_the_config(autojump_clock: MockClock) -> None:
    async with running(Config([spec("db")]), {"tick": Behaviour.exits(0, after=0.1)}) as (sup, fake, _log):
        await sup.reloader.reload(Config([spec("db"), spec("tick", oneshot=True, every=10)]))
        await trio.sleep(25)
        assert len(fake.start_times("tick")) == 2
        await sup.reloader.reload(Config([spec("db"), spec("tick", oneshot=True, every=5)]))
        await trio.sleep(11)
        assert len(fake.start_times("tick")) == 4
        await sup.reloader.reload(Config([spec("db")]))
        await trio.sleep(30)
        assert len(fake.start_times("tick")) == 4
        assert "tick" not in sup.scheduler


async def test_the_reload_signal_reloads_from_the_file(autojump_clock: MockClock, tmp_path: Path) -> None:
    path = tmp_path / "trinit.toml"
    path.write_text(
        '[trinit]\nreload_signal = "HUP"\ncontrol_socket = false\n\n[process.db]\ncommand = ["db"]\n'
    )
    config = load_config(path)
    async with running(config, options=RuntimeOptions()) as (sup, fake, log):
        sup.reloader.source = lambda: load_config(path)
        path.write_text(path.read_text() + '\n[process.web]\ncommand = ["web"]\n')
        sup.on_signal(HUP, HUP)
        await until(lambda: log.find("reload_done"))
        await trio.sleep(1)
        assert fake.start_times("web")
        path.write_text("[process.db\n")  # half-written: a parse error, nothing changes
        sup.on_signal(HUP, HUP)
        await until(lambda: log.find("reload_failed"))
        assert any("invalid TOML" in e.message for e in log.find("reload_failed"))
        assert list(sup.status()) == ["db", "web"]
