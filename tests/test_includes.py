"""``[trinit] include`` (SPEC §10): more files of ``[process.*]`` tables, globbed relative to the
config file's folder, read in sorted order; every error names the file it is in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trinit import ConfigError, load_config
from trinit.testing import FakeOS, make_supervisor


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def errors_of(path: Path | str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.errors


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """trinit.toml with include = ["conf.d/*.toml"], run from its folder (relative names)."""
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path / "trinit.toml",
        '[trinit]\ninclude = ["conf.d/*.toml"]\n\n[process.app]\ncommand = ["app"]\nmain = true\n',
    )
    return tmp_path


def test_included_processes_come_in_sorted_file_order(tree: Path) -> None:
    write(tree / "conf.d/20-web.toml", '[process.web]\ncommand = ["web"]\nafter = ["cache"]\n')
    write(tree / "conf.d/10-cache.toml", '[process.cache]\ncommand = ["cache"]\n')
    write(tree / "conf.d/notes.txt", "not a config\n")
    config = load_config("trinit.toml")
    assert [p.name for p in config.processes] == ["app", "cache", "web"]
    assert config.process("web").after == (("cache", "ready"),)


def test_relative_paths_in_an_included_file_are_taken_from_its_folder(tree: Path) -> None:
    write(
        tree / "conf.d/web.toml", '[process.web]\ncommand = ["web"]\ncwd = "srv"\nready = { file = "up" }\n'
    )
    web = load_config("trinit.toml").process("web")
    assert web.cwd == str(tree / "conf.d/srv")
    assert web.ready is not None and web.ready.target == str(tree / "conf.d/up")


def test_a_name_defined_twice_names_both_files(tree: Path) -> None:
    write(tree / "conf.d/a.toml", '[process.web]\ncommand = ["web"]\n')
    write(tree / "conf.d/b.toml", '[process.web]\ncommand = ["web2"]\n\n[process.app]\ncommand = ["x"]\n')
    assert errors_of("trinit.toml") == [
        'conf.d/b.toml: process "web": is defined in conf.d/a.toml already; '
        "a process name is defined once (rename one of them)",
        'conf.d/b.toml: process "app": is defined in trinit.toml already; '
        "a process name is defined once (rename one of them)",
    ]


def test_every_error_names_its_own_file(tree: Path) -> None:
    write(tree / "conf.d/a.toml", '[process.web]\ncommand = ["web"]\nafter = ["db"]\nstop_timeout = "x"\n')
    write(
        tree / "conf.d/b.toml",
        '[trinit]\nshutdown_timeout = 3\n\n[process.job]\ncommand = "true"\nretries = 2\n',
    )
    write(tree / "conf.d/c.toml", "[process.bad\n")
    errors = errors_of("trinit.toml")
    assert 'conf.d/a.toml: process "web": after: no process named "db"' in errors
    assert any(e.startswith('conf.d/a.toml: process "web": stop_timeout: must be a duration') for e in errors)
    assert any(
        e.startswith('conf.d/b.toml: an included file holds [process.NAME] tables only (found "trinit")')
        for e in errors
    )
    assert 'conf.d/b.toml: process "job": retries: only for oneshots' in " ".join(errors)
    assert any(e.startswith("conf.d/c.toml: line 1") and "invalid TOML" in e for e in errors)
    assert not any(e.startswith("trinit.toml") for e in errors), errors


def test_include_must_be_an_array_and_a_plain_name_must_exist(tree: Path) -> None:
    write(tree / "bad.toml", '[trinit]\ninclude = "conf.d/*.toml"\n\n[process.a]\ncommand = ["a"]\n')
    assert errors_of("bad.toml") == [
        'bad.toml: [trinit]: include: must be an array of file patterns like ["conf.d/*.toml"] '
        "(got 'conf.d/*.toml')"
    ]
    write(tree / "missing.toml", '[trinit]\ninclude = ["extra.toml"]\n\n[process.a]\ncommand = ["a"]\n')
    assert errors_of("missing.toml") == [
        "missing.toml: [trinit]: include: extra.toml: no such file (a pattern without * must name a file)"
    ]
    # A wildcard that matches nothing is fine: conf.d may be empty.
    assert [p.name for p in load_config("trinit.toml").processes] == ["app"]


def test_an_absolute_config_path_shows_absolute_included_names(tree: Path) -> None:
    write(tree / "conf.d/a.toml", '[process.web]\ncommand = ["web"]\nbogus = 1\n')
    errors = errors_of(tree / "trinit.toml")
    assert errors[0].startswith(f'{tree / "conf.d/a.toml"}: process "web": unknown key "bogus"')


def test_trinit_check_shows_included_processes_and_their_errors(tree: Path) -> None:
    write(tree / "conf.d/web.toml", '[process.web]\ncommand = ["web"]\n')
    check = [sys.executable, "-m", "trinit", "check", "-c", "trinit.toml"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRINIT_")}
    done = subprocess.run(check, capture_output=True, text=True, env=env, cwd=tree)
    assert done.returncode == 0, done.stderr
    assert "web" in done.stdout and "2 processes" in done.stdout
    write(tree / "conf.d/web.toml", '[process.web]\ncommand = ["web"]\nmain = true\n')
    done = subprocess.run(check, capture_output=True, text=True, env=env, cwd=tree)
    assert done.returncode == 2
    assert 'conf.d/web.toml: process "web": main: "app" is already the main process' in done.stderr


def test_an_env_file_error_names_the_included_file(tree: Path) -> None:
    write(tree / "conf.d/web.toml", '[process.web]\ncommand = ["web"]\nenv_file = "web.env"\n')
    config = load_config("trinit.toml")
    assert config.source_of("web") == "conf.d/web.toml" and config.source_of("app") == "trinit.toml"
    with pytest.raises(ConfigError) as info:
        make_supervisor(config, FakeOS())
    assert info.value.errors[0].startswith('conf.d/web.toml: process "web": env_file:')
