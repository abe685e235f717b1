"""The diff of a reload (SPEC §10), a pure function of two configs, tested as a table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trinit import Config, ProcessSpec
from trinit.config.diff import ReloadPlan, changed_keys, diff_configs


def spec(name: str, **keys: Any) -> ProcessSpec:
    keys.setdefault("command", [name])
    return ProcessSpec(name, **keys)


def cfg(*specs: ProcessSpec, **settings: Any) -> Config:
    return Config(list(specs), **settings)


FOLLOW = {"when": "ready", "restart": True}

BASE = cfg(
    spec("app", main=True, after=["web"]),
    spec("db"),
    spec("web", after={"db": FOLLOW}),
    spec("api", after={"web": FOLLOW}),
    spec("side", after=["db"]),
    spec("worker"),
)


def without(config: Config, *names: str, **replace: ProcessSpec) -> Config:
    processes = [replace.get(p.name, p) for p in config.processes if p.name not in names]
    return Config(processes)


CASES: list[tuple[str, Config, Config, dict[str, Any]]] = [
    # Start order: db, web, app (after web), api, side, worker.
    ("nothing", BASE, BASE, {"unchanged": ("db", "web", "app", "api", "side", "worker")}),
    (
        "removed",
        BASE,
        without(BASE, "worker"),
        {"removed": ("worker",), "unchanged": ("db", "web", "app", "api", "side")},
    ),
    (
        "added, depending on an existing one",
        BASE,
        Config([*BASE.processes, spec("cache", after={"db": "started"})]),
        {"added": ("cache",), "unchanged": ("db", "web", "app", "api", "side", "worker")},
    ),
    (
        "changed, with its followers; a plain dependent left alone",
        BASE,
        without(BASE, db=spec("db", env={"X": "1"})),
        {
            "changed": (("db", ("env",)),),
            "followers": (("web", "db"), ("api", "db")),
            "unchanged": ("app", "side", "worker"),
        },
    ),
    (
        "a changed follower is changed, not a follower",
        BASE,
        without(BASE, db=spec("db", stop_timeout=1), api=spec("api", after={"web": FOLLOW}, stop_timeout=2)),
        {
            "changed": (("db", ("stop_timeout",)), ("api", ("stop_timeout",))),
            "followers": (("web", "db"),),
            "unchanged": ("app", "side", "worker"),
        },
    ),
    (
        "how after is written does not count",
        cfg(spec("db"), spec("web", after=["db"])),
        cfg(spec("db"), spec("web", after={"db": "ready"})),
        {"unchanged": ("db", "web")},
    ),
    (
        "restart = true added is a change of after",
        cfg(spec("db"), spec("web", after=["db"])),
        cfg(spec("db"), spec("web", after={"db": FOLLOW})),
        {"changed": (("web", ("after",)),), "unchanged": ("db",)},
    ),
    (
        "a dependency removed together with its dependent",
        BASE,
        without(BASE, "side", "worker"),
        {"removed": ("worker", "side"), "unchanged": ("db", "web", "app", "api")},
    ),
    (
        "a rename is a stop and a start",
        cfg(spec("a"), spec("b")),
        cfg(spec("a"), spec("c", command=["b"])),
        {"removed": ("b",), "added": ("c",), "unchanged": ("a",)},
    ),
    (
        "runtime settings",
        cfg(spec("a"), shutdown_timeout=9),
        cfg(spec("a"), shutdown_timeout=20, log_format="json", ready_file="/run/ready"),
        {
            "settings": (
                ("shutdown_timeout", 9.0, 20.0),
                ("log_format", "text", "json"),
                ("ready_file", None, "/run/ready"),
            ),
            "unchanged": ("a",),
        },
    ),
    (
        "a stop job is updated",
        cfg(spec("a"), spec("dump", oneshot=True, phase="stop", after=["a"])),
        cfg(spec("a"), spec("dump", oneshot=True, phase="stop", after=["a"], timeout=5)),
        {"changed": (("dump", ("timeout",)),), "unchanged": ("a",), "stop_jobs": frozenset({"dump"})},
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_diff(old: Config, new: Config, expected: dict[str, Any]) -> None:
    assert diff_configs(old, new) == ReloadPlan(**expected)


REFUSED: list[tuple[str, Config, Config, list[str]]] = [
    (
        "main changed",
        BASE,
        without(BASE, app=spec("app", main=True, after=["web"], command=["app", "-v"])),
        [
            'the main process "app" changed (command): it cannot restart without ending the run; '
            "restart trinit (the container) to apply it"
        ],
    ),
    (
        "main removed",
        BASE,
        without(BASE, "app"),
        [
            'the main process "app" is no longer in the config: its end would end the run; '
            "restart trinit (the container) to apply it"
        ],
    ),
    (
        "a main added",
        cfg(spec("a")),
        cfg(spec("a"), spec("m", main=True)),
        [
            '"m" would become the main process, which cannot change while trinit runs; '
            "restart trinit (the container) to apply it"
        ],
    ),
    (
        "main moved to another process",
        cfg(spec("a", main=True), spec("b")),
        cfg(spec("a"), spec("b", main=True)),
        [
            'the main process "a" is no longer the main process: its end would end the run; '
            "restart trinit (the container) to apply it",
            '"b" would become the main process, which cannot change while trinit runs; '
            "restart trinit (the container) to apply it",
        ],
    ),
    (
        "fixed [trinit] keys",
        cfg(spec("a"), control_socket="/run/a.sock"),
        cfg(spec("a"), control_socket="/run/b.sock", reload_signal="HUP"),
        [
            "control_socket cannot change while trinit runs (/run/a.sock -> /run/b.sock); "
            "restart trinit (the container) to apply it",
            "reload_signal cannot change while trinit runs (none -> SIGHUP); "
            "restart trinit (the container) to apply it",
        ],
    ),
]


@pytest.mark.parametrize(("old", "new", "refusals"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_whole(old: Config, new: Config, refusals: list[str]) -> None:
    plan = diff_configs(old, new)
    assert list(plan.refusals) == refusals
    assert plan.lines() == [f"refused: {r}" for r in refusals]


def test_the_plan_as_printed() -> None:
    new = Config(
        [
            *without(BASE, "worker", db=spec("db", command=["db", "--fast"])).processes,
            spec("cache"),
        ],
        shutdown_timeout=20,
    )
    assert diff_configs(BASE, new).lines() == [
        "stop     worker  (no longer in the config)",
        "restart  db      (changed: command)",
        "restart  web     (restarts with db)",
        "restart  api     (restarts with db)",
        "start    cache   (new)",
        "set      shutdown_timeout: 9 s -> 20 s",
        "unchanged: app, side",
    ]
    assert diff_configs(BASE, BASE).lines()[0] == "nothing to do: the config has not changed"


def test_changed_keys_name_the_keys_as_written() -> None:
    old = spec("web", after=["db"], ready={"tcp": "127.0.0.1:80"})
    new = spec("web", after={"db": FOLLOW}, ready={"tcp": "127.0.0.1:81"}, env={"A": "1"})
    assert changed_keys(old, new) == ("after", "ready", "env")


def run_check(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRINIT_")}
    return subprocess.run(
        [sys.executable, "-m", "trinit", "check", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_check_diff_prints_the_plan_or_the_errors(tmp_path: Path) -> None:
    (tmp_path / "old.toml").write_text(
        '[process.db]\ncommand = ["db"]\n\n[process.web]\ncommand = ["web"]\n'
        'after = { db = { when = "started", restart = true } }\n'
    )
    (tmp_path / "new.toml").write_text(
        '[process.db]\ncommand = ["db", "-v"]\n\n[process.web]\ncommand = ["web"]\n'
        'after = { db = { when = "started", restart = true } }\n\n'
        '[process.cache]\ncommand = ["cache"]\n'
    )
    done = run_check("--diff", "old.toml", "new.toml", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        "Reload from old.toml to new.toml:",
        "  restart  db     (changed: command)",
        "  restart  web    (restarts with db)",
        "  start    cache  (new)",
    ]
    (tmp_path / "bad.toml").write_text('[process.db]\ncommand = ["db"]\nafter = ["nope"]\n')
    done = run_check("--diff", "old.toml", "bad.toml", cwd=tmp_path)
    assert done.returncode == 2 and 'bad.toml: process "db": after: no process named "nope"' in done.stderr
    (tmp_path / "main.toml").write_text('[process.db]\ncommand = ["db"]\nmain = true\n')
    done = run_check("--diff", "old.toml", "main.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert "main.toml: a reload from old.toml is refused: " in done.stderr
    for args in (["--diff", "old.toml"], ["-c", "old.toml", "--diff", "old.toml", "new.toml"]):
        assert run_check(*args, cwd=tmp_path).returncode == 2
