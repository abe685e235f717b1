"""Restarts that follow dependencies (SPEC §10), on a fake OS: ``after = { db = { restart = true } }``.

The configs and their plan first, then the runtime: who stops, in which order, who is left
alone, and how often followers restart while what they follow crash-loops.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest
import trio
from fakeutil import stop_at
from trio.testing import MockClock

from trinit import Config, ConfigError, ProcessSpec
from trinit.config.plan import make_plan
from trinit.config.render import render_plan
from trinit.runtime.supervisor import Runtime
from trinit.testing import Behaviour, Exit, FakeLog, FakeOS, run_supervisor

TERM = signal.SIGTERM


def follow(dep: str, when: str | None = "ready") -> dict[str, str | dict[str, Any]]:
    table: dict[str, Any] = {"restart": True}
    if when is not None:
        table["when"] = when
    return {dep: table}


def group_config(**extra: object) -> Config:
    """db <- web (restart) <- api (restart); other waits for api plainly; side for db plainly."""
    return Config(
        [
            ProcessSpec("db", ["db"], restart="always", restart_delay=0.5),
            ProcessSpec("web", ["web"], after=follow("db")),
            ProcessSpec("api", ["api"], after={**follow("web"), "db": "started"}),
            ProcessSpec("other", ["other"], after={"api": "ready"}),
            ProcessSpec("side", ["side"], after=["db"]),
        ],
        **extra,  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------------------ the config


def test_the_table_form_of_a_condition_and_its_defaults() -> None:
    config = Config(
        [
            ProcessSpec("db", ["db"]),
            ProcessSpec("seed", ["seed"], oneshot=True),
            ProcessSpec("web", ["web"], after={"db": {"restart": True}, "seed": {}}),
            ProcessSpec("api", ["api"], after={"db": {"when": "started", "restart": False}}),
        ]
    )
    web, api = config.process("web"), config.process("api")
    # Without "when" the default condition applies: ready, or completed for a oneshot.
    assert web.after == (("db", "ready"), ("seed", "completed"))
    assert web.restarts_with == {"db"}
    assert api.after == (("db", "started"),) and api.restarts_with == frozenset()


@pytest.mark.parametrize(
    ("after", "message"),
    [
        ({"db": {"when": "soon"}}, 'process "web": after.db.when: must be "started", "ready" or "completed"'),
        ({"db": {"restart": "yes"}}, 'process "web": after.db.restart: must be true or false'),
        ({"db": {"restart": True, "wen": "ready"}}, 'after.db: unknown key "wen" (did you mean "when"?)'),
        ({"db": 3}, "after.db: must be"),
    ],
)
def test_a_bad_condition_table_names_its_key(after: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config([ProcessSpec("db", ["db"]), ProcessSpec("web", ["web"], after=after)])
    assert any(message in e for e in info.value.errors), info.value.errors


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (
            [ProcessSpec("db", ["db"]), ProcessSpec("app", ["app"], main=True, after=follow("db"))],
            'process "app": after.db.restart: not allowed on the main process',
        ),
        (
            [ProcessSpec("app", ["app"], main=True), ProcessSpec("web", ["web"], after=follow("app"))],
            'process "web": after.app.restart: "app" is the main process, which is never restarted',
        ),
        (
            [
                ProcessSpec("db", ["db"]),
                ProcessSpec("dump", ["dump"], oneshot=True, phase="stop", after=follow("db", None)),
            ],
            'process "dump": after.db.restart: not allowed on a stop job',
        ),
        (
            [
                ProcessSpec("db", ["db"]),
                ProcessSpec("tick", ["tick"], oneshot=True, every=60, after=follow("db")),
            ],
            'process "tick": after.db.restart: not allowed on a scheduled job',
        ),
    ],
)
def test_restart_edges_only_where_a_restart_can_follow(specs: list[ProcessSpec], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config(specs)
    assert any(message in e for e in info.value.errors), info.value.errors


def test_the_plan_has_the_restart_groups_and_check_prints_them() -> None:
    plan = make_plan(group_config())
    # Along restart = true edges only: other and side follow nobody.
    assert plan.restart_followers == {"db": ("web", "api"), "web": ("api",)}
    text = render_plan(plan)
    assert "Restart groups" in text
    assert "  db   -> web, api" in text and "  web  -> api" in text
    assert "web    once db is ready (restarts with it)" in text


# ------------------------------------------------------------------------------ the runtime


def forever() -> Behaviour:
    return Behaviour.forever(on_signal={TERM: Exit(code=0, delay=0.1)})


async def test_a_requested_restart_stops_followers_first_and_leaves_the_rest_running(
    autojump_clock: MockClock,
) -> None:
    fake = FakeOS(default=forever())
    log = FakeLog()

    async def restart_db(rt: Runtime) -> None:
        await rt.restart("db")

    def later(rt: Runtime) -> None:
        rt.in_background(restart_db, rt)

    code = await run_supervisor(group_config(), fake, log=log, at=[(5, later), *stop_at(20)])
    assert code == 0
    # Stopped in reverse order, each once the one before it is gone; db last.
    terms = {name: [s.time for s in fake.signals_to(name)] for name in ("db", "web", "api", "other", "side")}
    assert (
        terms["api"][0] == 5
        and terms["web"][0] == pytest.approx(5.1)
        and terms["db"][0] == pytest.approx(5.2)
    )
    # Untouched: a plain dependent of db, and a plain dependent of a follower (until the shutdown).
    assert terms["side"] == [20] or terms["side"][0] >= 20
    assert all(t >= 20 for t in terms["other"])
    assert len(fake.start_times("side")) == 1 and len(fake.start_times("other")) == 1
    # Started again once db runs again, each after its own after holds.
    db2, web2, api2 = fake.start_times("db")[1], fake.start_times("web")[1], fake.start_times("api")[1]
    assert db2 == pytest.approx(5.3)
    assert db2 <= web2 <= api2
    assert not log.find("failed")
    restarting = [e.process for e in log.find("restarting") if e.fields.get("leader") == "db"]
    assert restarting == ["api", "web"]


async def test_a_crash_loop_restarts_followers_at_most_once_per_restart(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec(
                "db", ["db"], restart="on-failure", restart_delay=0.5, max_restarts=3, on_failure="ignore"
            ),
            ProcessSpec("web", ["web"], after=follow("db")),
            ProcessSpec("api", ["api"], after=follow("web")),
        ]
    )
    fake = FakeOS({"db": Behaviour.exits(1, after=1)}, default=forever())
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(30))
    db_starts = fake.start_times("db")
    assert len(db_starts) == 4  # the first run and 3 restarts, then it failed for good
    # One stop and one start per restart of db, never more.
    assert len(fake.start_times("web")) <= len(db_starts)
    assert len(fake.start_times("api")) <= len(db_starts)
    assert len(fake.signals_to("web")) <= 4
    assert not log.find("failed", "web") and not log.find("failed", "api")


async def test_followers_come_back_with_the_new_run_not_during_the_delay(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec(
                "db", ["db"], restart="always", restart_delay=1, ready={"file": "/never", "timeout": 600}
            ),
            ProcessSpec("web", ["web"], after=follow("db", "started")),
        ]
    )
    fake = FakeOS({"db": [Behaviour.exits(1, after=2), forever()]}, default=forever())
    await run_supervisor(config, fake, at=stop_at(10))
    # web started once db had started, was stopped by db's crash at 2 (0.1 s to go), and came
    # back with db's new run after the restart delay of 1 s, not during it.
    assert fake.start_times("db") == [0, pytest.approx(3.1)]
    assert fake.start_times("web") == [0, pytest.approx(3.1)]
    assert fake.signals_to("web")[0].time == 2


async def test_a_completed_oneshot_follower_runs_again(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("db", ["db"]),
            ProcessSpec("seed", ["seed"], oneshot=True, after=follow("db")),
        ]
    )
    fake = FakeOS({"seed": Behaviour.exits(0, after=0.5)}, default=forever())

    async def restart_db(rt: Runtime) -> None:
        await rt.restart("db")

    def later(rt: Runtime) -> None:
        rt.in_background(restart_db, rt)

    await run_supervisor(config, fake, at=[(3, later), *stop_at(8)])
    assert fake.start_times("seed") == [0, pytest.approx(3.1)]


async def test_ready_file_is_removed_while_the_group_restarts(autojump_clock: MockClock) -> None:
    fake = FakeOS(default=forever())
    seen: list[bool] = []

    async def restart_db(rt: Runtime) -> None:
        seen.append(bool(fake.ready_files))
        async with trio.open_nursery() as n:
            n.start_soon(rt.restart, "db")
            await trio.sleep(0.15)
            seen.append(bool(fake.ready_files))
        await trio.sleep(1)
        seen.append(bool(fake.ready_files))

    def later(rt: Runtime) -> None:
        rt.in_background(restart_db, rt)

    await run_supervisor(group_config(ready_file="/run/ready"), fake, at=[(5, later), *stop_at(10)])
    assert seen == [True, False, True]
