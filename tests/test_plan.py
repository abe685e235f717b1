"""The plan: start layers and conditions, stop order, stop jobs, longest stop path (pure)."""

from __future__ import annotations

import tomllib

import pytest

from trinit._errors import ConfigError
from trinit.config.load import config_from_mapping
from trinit.config.model import Config, ProcessSpec
from trinit.config.plan import Plan, make_plan
from trinit.config.render import render_plan


def plan_of(toml: str) -> Plan:
    return make_plan(config_from_mapping(tomllib.loads(toml), source="t.toml"))


CHAIN = """
[process.a]
command = "a"
[process.b]
command = "b"
after = ["a"]
[process.c]
command = "c"
after = { b = "started" }
"""


def test_chain() -> None:
    plan = plan_of(CHAIN)
    assert plan.order == ("a", "b", "c")
    assert plan.start_after == {"a": (), "b": (("a", "ready"),), "c": (("b", "started"),)}
    assert plan.start_layers == (("a",), ("b",), ("c",))
    assert plan.stop_waits_for == {"a": {"b"}, "b": {"c"}, "c": frozenset()}
    assert plan.stop_layers == (("c",), ("b",), ("a",))
    assert plan.stop_job_after == {}
    assert plan.longest_stop_path == (15.0, ("c", "b", "a"))
    assert len(plan.warnings) == 1
    assert plan.warnings[0].startswith(
        "the longest stop path takes up to 15 s (c -> b -> a), more than shutdown_timeout (9 s)"
    )


DIAMOND = """
[trinit]
shutdown_timeout = 20
[process.app]
command = "app"
main = true
after = ["api", "worker"]
stop_timeout = 3
[process.api]
command = "api"
after = ["db"]
stop_timeout = 7
[process.worker]
command = "worker"
after = ["db"]
stop_timeout = 2
[process.db]
command = "db"
stop_timeout = 4
"""


def test_diamond() -> None:
    plan = plan_of(DIAMOND)
    assert plan.order == ("db", "api", "worker", "app")
    assert plan.start_layers == (("db",), ("api", "worker"), ("app",))
    assert plan.stop_layers == (("app",), ("api", "worker"), ("db",))
    assert plan.stop_waits_for["db"] == {"api", "worker"}
    assert plan.stop_waits_for["api"] == {"app"}
    assert plan.longest_stop_path == (14.0, ("app", "api", "db"))
    assert plan.warnings == ()


def test_independent_groups_start_and_stop_together() -> None:
    plan = plan_of(
        """
        [process.x]
        command = "x"
        [process.y]
        command = "y"
        [process.x2]
        command = "x2"
        after = ["x"]
        """
    )
    assert plan.start_layers == (("x", "y"), ("x2",))
    assert plan.stop_layers == (("y", "x2"), ("x",))
    assert plan.stop_waits_for == {"x": {"x2"}, "y": frozenset(), "x2": frozenset()}


def test_order_is_stable_with_dependencies_first() -> None:
    plan = plan_of(
        """
        [process.web]
        command = "w"
        after = ["db"]
        [process.side]
        command = "s"
        [process.db]
        command = "d"
        """
    )
    assert plan.order == ("side", "db", "web")
    assert plan.start_layers == (("side", "db"), ("web",))


STOP_JOB = """
[process.db]
command = "db"
[process.app]
command = "app"
main = true
after = ["db"]
[process.cache]
command = "cache"
[process.flush]
command = "flush"
oneshot = true
phase = "stop"
after = ["app"]
timeout = 2
"""


def test_stop_job() -> None:
    plan = plan_of(STOP_JOB)
    assert plan.order == ("db", "app", "cache", "flush")
    assert plan.start_after["flush"] == ()
    assert plan.start_layers == (("db", "cache"), ("app",))  # stop jobs do not start with the rest
    assert plan.stop_job_after == {"flush": {"app"}}
    # Everything not in the job's after set stays up until the job ends.
    assert plan.stop_waits_for == {
        "db": {"app", "flush"},
        "app": frozenset(),
        "cache": {"flush"},
        "flush": frozenset(),
    }
    assert plan.stop_layers == (("app",), ("flush",), ("db", "cache"))
    assert plan.longest_stop_path == (12.0, ("app", "flush", "db"))


def test_stop_job_after_includes_dependents_transitively() -> None:
    plan = plan_of(
        """
        [process.db]
        command = "db"
        [process.api]
        command = "api"
        after = ["db"]
        [process.app]
        command = "app"
        after = ["api"]
        [process.other]
        command = "other"
        [process.dump]
        command = "dump"
        oneshot = true
        phase = "stop"
        after = ["db"]
        """
    )
    assert plan.stop_job_after == {"dump": {"db", "api", "app"}}
    assert plan.stop_waits_for["other"] == {"dump"}
    assert plan.stop_layers == (("app",), ("api",), ("db",), ("dump",), ("other",))
    assert any('stop job "dump" has no timeout' in w for w in plan.warnings)


def test_stop_job_without_after_runs_first() -> None:
    plan = plan_of(
        """
        [process.a]
        command = "a"
        [process.b]
        command = "b"
        after = ["a"]
        [process.notify]
        command = "n"
        oneshot = true
        phase = "stop"
        timeout = 1
        """
    )
    assert plan.stop_job_after == {"notify": frozenset()}
    assert plan.stop_waits_for == {"a": {"b", "notify"}, "b": {"notify"}, "notify": frozenset()}
    assert plan.stop_layers == (("notify",), ("b",), ("a",))
    assert plan.longest_stop_path == (11.0, ("notify", "b", "a"))


def test_nested_stop_jobs_run_in_turn() -> None:
    plan = plan_of(
        """
        [trinit]
        shutdown_timeout = 60
        [process.db]
        command = "db"
        [process.app]
        command = "app"
        after = ["db"]
        [process.j1]
        command = "j"
        oneshot = true
        phase = "stop"
        after = ["app"]
        timeout = 10
        [process.j2]
        command = "j"
        oneshot = true
        phase = "stop"
        after = ["db"]
        timeout = 20
        [process.j3]
        command = "j"
        oneshot = true
        phase = "stop"
        after = ["app"]
        timeout = 1
        """
    )
    assert plan.stop_job_after == {"j1": {"app"}, "j2": {"db", "app"}, "j3": {"app"}}
    assert plan.stop_waits_for["db"] == {"app", "j1", "j3"}
    assert plan.stop_layers == (("app",), ("j1", "j3"), ("db",), ("j2",))
    assert plan.longest_stop_path == (40.0, ("app", "j1", "db", "j2"))


def test_stop_jobs_gating_each_other_are_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        plan_of(
            """
            [process.x]
            command = "x"
            [process.y]
            command = "y"
            [process.x2]
            command = "x2"
            after = ["x"]
            [process.j1]
            command = "j"
            oneshot = true
            phase = "stop"
            after = ["x"]
            [process.j2]
            command = "j"
            oneshot = true
            phase = "stop"
            after = ["y", "x2"]
            """
        )
    assert info.value.errors == [
        't.toml: process "j1": after: stop jobs "j1" and "j2" would wait for each other: "x" must stop before '
        '"j1" runs but stays up until "j2" ends, and "y" must stop before "j2" runs but stays up until "j1" '
        "ends (give them the same after, or let one's after contain the other's)"
    ]


def test_oneshot_dependency_conditions_in_the_plan() -> None:
    plan = plan_of(
        """
        [process.migrate]
        command = "m"
        oneshot = true
        [process.app]
        command = "a"
        after = ["migrate"]
        [process.probe]
        command = "p"
        after = { migrate = "started", app = "ready" }
        """
    )
    assert plan.start_after["app"] == (("migrate", "completed"),)
    assert plan.start_after["probe"] == (("migrate", "started"), ("app", "ready"))


def test_empty_config() -> None:
    plan = make_plan(Config())
    assert plan.order == () and plan.start_layers == () and plan.stop_layers == ()
    assert plan.longest_stop_path == (0.0, ())
    assert plan.warnings[0].startswith("there are no processes")


def test_keyword_config_plan() -> None:
    config = Config(processes=[ProcessSpec(name="main", command="sleep 1", main=True)])
    plan = make_plan(config)
    assert plan.longest_stop_path == (5.0, ("main",)) and plan.warnings == ()


def test_render_plan() -> None:
    text = render_plan(plan_of(STOP_JOB))
    assert text.startswith("t.toml: 4 processes\n")
    for piece in (
        "  app    main      app\n",
        "  flush  stop job  flush  [timeout 2 s]\n",
        "  1.  db\n",
        "  2.  app    once db is ready\n",
        "  1.  app    the shutdown's signal, 5 s grace\n",
        "  2.  flush  stop job: runs once app has stopped, timeout 2 s\n",
        "  3.  db     SIGTERM, 5 s grace\n",
        "      cache  SIGTERM, 5 s grace\n",
        "Longest stop path: 12 s (app -> flush -> db), MORE than shutdown_timeout (9 s)\n",
        "Warnings:\n  - the longest stop path takes up to 12 s",
    ):
        assert piece in text
    assert all(line == line.rstrip() for line in text.splitlines())


def test_render_plan_details() -> None:
    text = render_plan(
        plan_of(
            """
            [process.web]
            command = "echo $1 && exec web"
            shell = true
            stop_signal = "QUIT"
            stop_timeout = "1s"
            restart = "always"
            max_restarts = 3
            ready = { http = "http://127.0.0.1/health" }
            on_failure = "ignore"
            """
        )
    )
    assert (
        "web  service   sh -c 'echo $1 && exec web'  [ready: http http://127.0.0.1/health (timeout 60 s); restart always, at most 3 in a row; failure ignored]"
        in text
    )
    assert "SIGQUIT to its group, 1 s grace" in text
    assert "within shutdown_timeout (9 s)" in text and "Warnings" not in text


def test_a_loaded_config_is_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import trinit.config.graph
    import trinit.config.load
    import trinit.config.model
    import trinit.config.plan
    import trinit.config.validate
    from trinit.config.load import with_main_command

    modules = [trinit.config.graph, trinit.config.load, trinit.config.model, trinit.config.plan]
    modules.append(trinit.config.validate)

    calls = {"check_graph": 0, "check_process": 0}

    def counting(name: str, module: object) -> None:
        real = getattr(module, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            calls[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for name in calls:  # wherever the name is imported, so a new caller is counted too
        for module in modules:
            if hasattr(module, name):
                counting(name, module)
    config = config_from_mapping(tomllib.loads(CHAIN), source="t.toml")
    make_plan(config)
    assert calls == {"check_graph": 1, "check_process": 3}
    make_plan(with_main_command(config, ["app"]))  # a new main: only it is checked
    assert calls == {"check_graph": 1, "check_process": 4}
