"""The config front end: TOML and keyword arguments into validated models (no processes)."""

from __future__ import annotations

import os
import pathlib
import signal
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from trinit._errors import ConfigError
from trinit.config.load import config_from_mapping, load_config, with_main_command
from trinit.config.model import Config, ProcessSpec
from trinit.config.probes import ReadySpec

CONFIGS = pathlib.Path(__file__).parent / "configs"
BAD = sorted((CONFIGS / "bad").glob("*.toml"))
ENVIRON = {"PORT": "8080", "HOME": "/root"}


def errors_of(fn: Callable[..., object], *args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    return info.value.errors


# --------------------------------------------------------------------------- the bad corpus


def test_the_corpus_is_big_enough() -> None:
    assert len(BAD) >= 30
    for path in BAD:
        assert path.with_suffix(".expect").exists(), f"{path.name} has no .expect file"


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config(path: pathlib.Path) -> None:
    """Each bad config fails with every expected phrase; ``count: N`` pins the number of errors."""
    errors = errors_of(load_config, str(path), environ=ENVIRON)
    text = "\n".join(errors)
    for line in path.with_suffix(".expect").read_text().splitlines():
        if not line.strip():
            continue
        if line.startswith("count: "):
            assert len(errors) == int(line.split()[1]), text
        else:
            assert line.replace("{file}", str(path)) in text
    for error in errors:  # every line names the file
        assert error.startswith(f"{path}: "), error


def test_config_error_str_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(CONFIGS / "bad" / "many_errors.toml"))
    assert str(info.value).count("\n") == len(info.value.errors) - 1


def test_syntax_error_keeps_the_path_as_given(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trinit.toml").write_text("[process.a]\ncommand = 'x\n")
    assert errors_of(load_config, "trinit.toml") == [
        'trinit.toml: line 2, end of file: invalid TOML: expected "\'"'
    ]
    (tmp_path / "trinit.toml").write_text("[process.a]\ncommand = x\n")
    assert errors_of(load_config, "trinit.toml") == [
        "trinit.toml: line 2, column 11: invalid TOML: invalid value"
    ]


def test_missing_file() -> None:
    errors = errors_of(load_config, "/nonexistent/trinit.toml")
    assert errors == ["/nonexistent/trinit.toml: cannot read the config: No such file or directory"]


def test_directory_instead_of_file(tmp_path: pathlib.Path) -> None:
    assert "cannot read the config" in errors_of(load_config, tmp_path)[0]


def test_not_utf8(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.toml"
    path.write_bytes(b'[process.a]\ncommand = "\xff"\n')
    assert errors_of(load_config, path) == [f"{path}: line 2: the config is not UTF-8 text"]


def test_pathlike_source(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[process.a]\ncommand = "x"\n')
    assert load_config(path).source == str(path)


# ------------------------------------------------------------------------------- good files


def test_spec_example() -> None:
    config = load_config(CONFIGS / "good" / "spec_example.toml", environ={})
    assert config.shutdown_timeout == 9.0 and config.log_format == "text"
    assert config.ready_file == "/run/trinit/ready"
    app = config.process("app")
    assert app.main and app.command == ("python3", "/app/app.py", "--port", "8080")
    assert app.ready == ReadySpec(kind="tcp", target="127.0.0.1:8080")
    assert app.forward_signals and not app.signal_group
    provision = config.process("provision")
    assert provision.oneshot and provision.after == (("app", "ready"),)
    assert provision.timeout == 60.0 and provision.retries == 2 and provision.on_failure == "shutdown"
    cache = config.process("cache")
    assert cache.command == ("redis-server", "--port", "6379") and cache.restart == "on-failure"
    assert cache.ready == ReadySpec(kind="exec", target=("redis-cli", "ping"), interval=0.2, timeout=30.0)
    assert config.main_process() is app


def test_stop_jobs_example() -> None:
    path = CONFIGS / "good" / "stop_jobs.toml"
    folder = str(path.parent)
    config = load_config(path, environ={"MODE": ""})
    assert config.shutdown_timeout == 30.0
    assert config.ready_file == f"{folder}/state/ready"
    db = config.process("db")
    assert db.stop_signal == signal.SIGINT and db.stop_timeout == 10.0
    assert db.ready == ReadySpec(kind="exec", target=("pg_isready",), interval=0.2)
    migrate = config.process("migrate")
    assert migrate.after == (("db", "ready"),) and migrate.restart_delay == 1.0
    app = config.process("app")
    assert app.command == ("/bin/sh", "-c", "exec gunicorn app:app --workers ${WORKERS:-2}")
    assert app.signal_group  # shell = true
    assert app.after == (("migrate", "completed"), ("db", "ready"))
    assert app.cwd == f"{folder}/app" and app.env_file == f"{folder}/app.env"
    assert dict(app.env) == {"MODE": "prod", "LITERAL": "$1 and $"}
    assert app.success_codes == frozenset({0, 143})
    logs = config.process("logs")
    assert logs.max_restarts == 5 and logs.output == "prefix" and logs.forward_signals
    backup = config.process("backup")
    assert backup.is_stop_job and backup.kind == "stop job" and backup.timeout == 5.0


def test_minimal_and_empty() -> None:
    assert load_config(CONFIGS / "good" / "minimal.toml").process("main").command == ("sleep", "infinity")
    empty = load_config(CONFIGS / "good" / "no_processes.toml")
    assert empty.processes == () and empty.log_format == "json"


# -------------------------------------------------------------------- keyword construction


def test_keyword_construction_normalizes() -> None:
    spec = ProcessSpec(
        name="web",
        command="gunicorn -b ':8000' app",
        after=["db"],
        ready={"http": "http://127.0.0.1:8000/health", "timeout": "2m"},
        stop_signal="sigquit",
        stop_timeout="500ms",
        restart="always",
        restart_delay_max="1h",
        env={"A": "1"},
        success_codes=[0, 3],
        user=0,
    )
    assert spec.command == ("gunicorn", "-b", ":8000", "app")
    assert spec.ready == ReadySpec(kind="http", target="http://127.0.0.1:8000/health", timeout=120.0)
    assert spec.stop_signal == signal.SIGQUIT and spec.stop_timeout == 0.5
    assert spec.restart_delay_max == 3600.0
    assert spec.env == (("A", "1"),) and spec.success_codes == frozenset({0, 3})
    assert spec.user == "0"
    assert spec.after == (("db", "ready"),)


@pytest.mark.parametrize("value", ["TERM", "term", "SIGTERM", "sigterm", "15", 15, " Term "])
def test_signal_spellings(value: Any) -> None:
    assert ProcessSpec(name="a", command="x", stop_signal=value).stop_signal == signal.SIGTERM


def test_realtime_signal() -> None:
    assert ProcessSpec(name="a", command="x", stop_signal="RTMIN+2").stop_signal == signal.SIGRTMIN + 2


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (5, 5.0),
        (0.5, 0.5),
        ("500ms", 0.5),
        ("2s", 2.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        (0, 0.0),
    ],
)
def test_duration_spellings(value: Any, seconds: float) -> None:
    assert ProcessSpec(name="a", command="x", stop_timeout=value).stop_timeout == seconds


def test_keyword_errors_have_no_file_part_and_are_all_reported() -> None:
    errors = errors_of(ProcessSpec, name="web", command="x", stop_timeout="soon", shell="yes", retries=1)
    assert errors == [
        "process \"web\": shell: must be true or false (got 'yes')",
        'process "web": stop_timeout: must be a duration like 5, "500ms", "2s" or "1m" (got \'soon\')',
        'process "web": retries: only for oneshots (a long-running process uses restart)',
    ]


def test_keyword_and_toml_give_the_same_message(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[process.web]\ncommand = "x"\nstop_timeout = "soon"\n')
    from_file = errors_of(load_config, path)
    from_keywords = errors_of(ProcessSpec, name="web", command="x", stop_timeout="soon")
    assert from_file == [f"{path}: {from_keywords[0]}"]


def test_missing_command_keyword() -> None:
    assert errors_of(ProcessSpec, name="a") == [
        'process "a": command: is required: an argv array, or a string split with shell word rules'
    ]


def test_shell_command_and_signal_group_default() -> None:
    spec = ProcessSpec(name="a", command="echo $1 | tr a b", shell=True)
    assert spec.command == ("/bin/sh", "-c", "echo $1 | tr a b")
    assert spec.signal_group is True
    assert ProcessSpec(name="a", command="x", shell=True, signal_group=False).signal_group is False
    assert ProcessSpec(name="a", command="x").signal_group is False


def test_forward_signals_default() -> None:
    assert ProcessSpec(name="a", command="x", main=True).forward_signals is True
    assert ProcessSpec(name="a", command="x", main=True, forward_signals=False).forward_signals is False
    assert ProcessSpec(name="a", command="x").forward_signals is False


def test_default_values_on_the_wrong_kind_are_fine() -> None:
    """``oneshot = false`` on main or ``retries = 0`` on a service say nothing wrong."""
    ProcessSpec(name="a", command="x", main=True, oneshot=False, restart="no", on_failure="shutdown")
    ProcessSpec(name="b", command="x", retries=0, phase="run")


def test_evolve_revalidates_and_keeps_normal_forms() -> None:
    spec = ProcessSpec(name="a", command="echo hi", shell=True, after=["b"], ready={"file": "/x"})
    again = attrs.evolve(spec, stop_timeout=1)
    assert again.command == spec.command and again.after == spec.after and again.ready == spec.ready
    assert again.stop_timeout == 1.0
    with pytest.raises(ConfigError):
        attrs.evolve(spec, stop_timeout=-1)


def test_after_forms_and_default_conditions() -> None:
    config = Config(
        processes=[
            ProcessSpec(name="db", command="x"),
            ProcessSpec(name="migrate", command="x", oneshot=True, after=["db"]),
            ProcessSpec(name="app", command="x", main=True, after=["migrate", ("db", "started")]),
            ProcessSpec(name="web", command="x", after={"db": "ready", "migrate": "started"}),
        ]
    )
    assert config.process("migrate").after == (("db", "ready"),)
    assert config.process("app").after == (("migrate", "completed"), ("db", "started"))
    assert config.process("web").after == (("db", "ready"), ("migrate", "started"))
    # Building again from the resolved processes changes nothing.
    assert attrs.evolve(config, shutdown_timeout=3).processes == config.processes


def test_config_errors_from_keywords() -> None:
    errors = errors_of(
        Config,
        processes=[
            ProcessSpec(name="a", command="x", after=["b"]),
            ProcessSpec(name="a", command="y"),
            "nope",
        ],
        shutdown_timeout="never",
    )
    assert 'shutdown_timeout: must be a duration like 5, "500ms", "2s" or "1m" (got \'never\')' in errors
    assert "processes: item 3 must be a ProcessSpec (got 'nope')" in errors
    assert 'process "a": two processes have this name' in errors
    assert 'process "a": after: no process named "b"' in errors


def test_source_prefixes_graph_errors() -> None:
    errors = errors_of(Config, processes=[ProcessSpec(name="a", command="x", after=["zz"])], source="f.toml")
    assert errors == ['f.toml: process "a": after: no process named "zz"']


def test_stop_job_after_stays_names_only_through_config() -> None:
    config = Config(
        processes=[
            ProcessSpec(name="db", command="x"),
            ProcessSpec(name="flush", command="x", oneshot=True, phase="stop", after=["db"]),
        ]
    )
    attrs.evolve(config.process("flush"), timeout=3)  # still names only
    attrs.evolve(config, ready_file="/tmp/r")


def test_mapping_loader_without_a_file() -> None:
    config = config_from_mapping({"process": {"a": {"command": "x ${V}"}}}, environ={"V": "1 2"})
    assert config.process("a").command == ("x", "1 2") and config.source is None
    errors = errors_of(config_from_mapping, {"process": {"a": {"command": 3}}, "x": 1})
    assert 'config: unknown table "x"; the config has [trinit] and [process.NAME] tables' in errors
    assert 'process "a": command: must be an argv array of strings or a string (got 3)' in errors


def test_toml_datetime_is_a_type_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[process.a]\ncommand = "x"\nstop_timeout = 1979-05-27\n')
    assert "stop_timeout: must be a duration" in errors_of(load_config, path)[0]


# ---------------------------------------------------------------------------- user / group


def test_existing_user_and_group_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    spec = ProcessSpec(name="a", command="x", user="root", group=0)
    assert (spec.user, spec.group) == ("root", "0")
    ProcessSpec(name="a", command="x", user=48213, group=48213)  # no entries, but both ids given


def test_switching_user_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    errors = errors_of(ProcessSpec, name="a", command="x", user="root")
    assert errors == [
        'process "a": user: trinit runs as uid 1000, not root, so it cannot switch to user "root" '
        "(privileges are checked before anything starts)"
    ]
    errors = errors_of(ProcessSpec, name="a", command="x", group="0")
    assert (
        'process "a": group: trinit runs as gid 1000, not root, so it cannot switch to group "0"' in errors[0]
    )
    ProcessSpec(name="a", command="x", user=1000, group=1000)  # its own ids are fine


# ----------------------------------------------------------------------------- command line


def test_with_main_command_replaces_the_main() -> None:
    config = load_config(CONFIGS / "good" / "stop_jobs.toml", environ={})
    new = with_main_command(config, ["python3", "-m", "http.server"])
    app = new.process("app")
    assert app.command == ("python3", "-m", "http.server") and not app.shell and app.main
    assert app.after == config.process("app").after
    assert [p.name for p in new.processes] == [p.name for p in config.processes]
    assert with_main_command(config, []) is config


def test_with_main_command_adds_a_main() -> None:
    config = Config(processes=[ProcessSpec(name="side", command="x")], source="t.toml")
    new = with_main_command(config, ["sh", "-c", "exit 3"])
    assert new.main_process() == ProcessSpec(name="main", command=["sh", "-c", "exit 3"], main=True)
    assert new.source == "t.toml"


def test_with_main_command_name_taken() -> None:
    config = Config(processes=[ProcessSpec(name="main", command="x")], source="t.toml")
    errors = errors_of(with_main_command, config, ["y"])
    assert errors[0].startswith("t.toml: -- COMMAND: the config has no main process")


def test_zero_config_main() -> None:
    # What ``trinit -- CMD`` builds (trinit/boot/main.py): keyword arguments, no file.
    main_spec = ProcessSpec(name="main", command=["nginx", "-g", "daemon off;"], main=True, stop_timeout=2)
    config = Config(processes=[main_spec], shutdown_timeout=4)
    main = config.process("main")
    assert main.main and main.command == ("nginx", "-g", "daemon off;") and main.stop_timeout == 2.0
    assert config.shutdown_timeout == 4.0
    assert errors_of(ProcessSpec, name="main", command=[], main=True) == [
        'process "main": command: must not be empty'
    ]
