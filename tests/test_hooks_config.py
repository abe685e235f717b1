"""The lifecycle hook keys (SPEC §9) in the config: their forms, expansion, errors, and what
``trinit check`` counts in the longest stop path (no processes)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import attrs
import pytest

from trinit._errors import ConfigError
from trinit.config.load import config_from_mapping, load_config
from trinit.config.model import Config, ProcessSpec
from trinit.config.plan import make_plan
from trinit.config.render import render_plan


def config_of(toml: str, environ: dict[str, str] | None = None) -> Config:
    return config_from_mapping(tomllib.loads(toml), source="t.toml", environ=environ or {})


def errors_of(**keys: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        ProcessSpec("web", ["web"], **keys)  # type: ignore[arg-type]
    return info.value.errors


def test_defaults_are_no_hooks() -> None:
    spec = ProcessSpec("web", ["web"])
    assert (spec.pre_start, spec.pre_stop, spec.post_stop) == ((), None, None)
    assert (spec.stop_delay, spec.hook_timeout) == (0.0, 30.0)


def test_a_hook_is_written_like_a_command() -> None:
    spec = ProcessSpec(
        "web",
        ["web"],
        pre_start="render-config '/etc/my app.conf'",
        pre_stop=["curl", "-sf", "-X", "POST", "http://127.0.0.1:8000/drain"],
        post_stop="/usr/local/bin/report-exit",
        stop_delay="5s",
        hook_timeout="1m",
    )
    assert spec.pre_start == (("render-config", "/etc/my app.conf"),)
    assert spec.pre_stop == ("curl", "-sf", "-X", "POST", "http://127.0.0.1:8000/drain")
    assert spec.post_stop == ("/usr/local/bin/report-exit",)
    assert (spec.stop_delay, spec.hook_timeout) == (5.0, 60.0)


def test_pre_start_takes_several_commands_in_order() -> None:
    spec = ProcessSpec("web", ["web"], pre_start=[["render-config", "/etc/api.conf"], ["migrate", "--all"]])
    assert spec.pre_start == (("render-config", "/etc/api.conf"), ("migrate", "--all"))
    assert ProcessSpec("web", ["web"], pre_start=[]).pre_start == ()
    assert ProcessSpec("web", ["web"], pre_start=["one", "argv"]).pre_start == (("one", "argv"),)


def test_with_shell_a_hook_string_runs_with_sh_and_an_array_stays_an_argv() -> None:
    spec = ProcessSpec("web", "exec web", shell=True, pre_start="test -f $1 && echo ok", post_stop=["report"])
    assert spec.pre_start == (("/bin/sh", "-c", "test -f $1 && echo ok"),)
    assert spec.post_stop == ("report",)


def test_normalized_hooks_are_accepted_again() -> None:
    spec = ProcessSpec("web", "w", pre_start=[["a"], ["b", "c"]], pre_stop="d", post_stop="e", hook_timeout=3)
    assert attrs.evolve(spec) == spec
    assert attrs.evolve(spec, stop_delay=2).pre_start == spec.pre_start
    one = ProcessSpec("web", "w", pre_start="a b")
    assert attrs.evolve(one) == one


def test_every_kind_of_process_may_have_hooks() -> None:
    hooks = {"pre_start": "a", "pre_stop": "b", "post_stop": "c", "stop_delay": 1, "hook_timeout": 2}
    Config(
        [
            ProcessSpec("app", ["app"], main=True, **hooks),  # type: ignore[arg-type]
            ProcessSpec("svc", ["svc"], restart="always", **hooks),  # type: ignore[arg-type]
            ProcessSpec("job", ["job"], oneshot=True, retries=2, **hooks),  # type: ignore[arg-type]
            ProcessSpec("flush", ["flush"], oneshot=True, phase="stop", **hooks),  # type: ignore[arg-type]
            ProcessSpec("tick", ["tick"], oneshot=True, every="1m", **hooks),  # type: ignore[arg-type]
        ]
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"pre_start": 3},
            "pre_start: must be a command (an argv array or a string), or an array of commands",
        ),
        ({"pre_start": [["a"], "b"]}, "pre_start: mixes commands and words"),
        ({"pre_start": [["a"], []]}, "pre_start: command 2: must not be empty"),
        ({"pre_start": [["a", 1]]}, "pre_start: command 1: item 2 must be a string (got 1)"),
        ({"pre_stop": [["a"], ["b"]]}, "pre_stop: must be one command (an argv array or a string)"),
        ({"pre_stop": "  "}, "pre_stop: must not be empty"),
        ({"post_stop": "'unclosed"}, "post_stop: cannot be split with shell word rules"),
        ({"post_stop": {"cmd": "x"}}, "post_stop: must be a command"),
        ({"stop_delay": "soon"}, 'stop_delay: must be a duration like 5, "500ms", "2s" or "1m"'),
        ({"stop_delay": -1}, "stop_delay: must not be negative"),
        ({"hook_timeout": 0, "post_stop": "x"}, "hook_timeout: must be more than 0 seconds"),
        ({"hook_timeout": True, "post_stop": "x"}, "hook_timeout: must be a duration"),
        ({"hook_timeout": 5}, "hook_timeout: bounds each run of pre_start, pre_stop and post_stop"),
        ({"pre_start": "a\0b"}, "pre_start: must not contain a NUL character"),
    ],
)
def test_misuse_is_one_line_naming_the_process_and_key(keys: dict[str, object], message: str) -> None:
    errors = errors_of(**keys)
    assert len(errors) == 1, errors
    assert errors[0].startswith('process "web": ') and message in errors[0], errors
    assert "\n" not in errors[0]


def test_hook_timeout_at_its_default_needs_no_hook() -> None:
    ProcessSpec("web", ["web"], hook_timeout=30)


def test_every_hook_error_is_reported_at_once() -> None:
    errors = errors_of(pre_start=1, pre_stop=2, post_stop=3, stop_delay="x", hook_timeout=-1)
    assert [e.split(": ")[1] for e in errors] == [
        "pre_start",
        "pre_stop",
        "post_stop",
        "stop_delay",
        "hook_timeout",
    ]


def test_hooks_are_expanded_like_commands() -> None:
    config = config_of(
        """
        [process.app]
        command = "app"
        pre_start = [["render", "${CONF:-/etc/app.conf}"], ["migrate", "$$1", "${DB}"]]
        pre_stop = "curl http://127.0.0.1:${PORT}/drain"
        post_stop = ["report", "${WHO:-ops team}"]
        """,
        {"PORT": "8000", "DB": "a b"},
    )
    spec = config.processes[0]
    assert spec.pre_start == (("render", "/etc/app.conf"), ("migrate", "$1", "a b"))
    assert spec.pre_stop == ("curl", "http://127.0.0.1:8000/drain")
    assert spec.post_stop == ("report", "ops team")


def test_an_unset_variable_in_a_hook_is_an_error_naming_the_hook() -> None:
    with pytest.raises(ConfigError) as info:
        config_of('[process.app]\ncommand = "app"\npre_stop = "drain ${NOPE}"\n')
    assert info.value.errors == [
        't.toml: process "app": pre_stop: ${NOPE} is not set in trinit\'s environment '
        "(set it, give a default like ${NOPE:-value}, or write $$ for a literal $)"
    ]


def test_a_mixed_pre_start_is_refused_from_a_file_too() -> None:
    with pytest.raises(ConfigError) as info:
        config_of('[process.app]\ncommand = "app"\npre_start = [["a"], "b c"]\n')
    assert "pre_start: mixes commands and words" in info.value.errors[0]


HOOKED = """
[trinit]
shutdown_timeout = 30

[process.db]
command = "db"
pre_stop = "db-drain"
stop_delay = 2
post_stop = "db-report"
hook_timeout = 4

[process.app]
command = "app"
main = true
after = ["db"]
pre_start = [["render"], ["migrate"]]
stop_timeout = 3

[process.flush]
command = "flush"
oneshot = true
phase = "stop"
after = ["app"]
timeout = 1
pre_start = "prepare"
post_stop = "report"
hook_timeout = 2
"""


def test_the_longest_stop_path_counts_hooks_and_stop_delay() -> None:
    plan = make_plan(config_of(HOOKED))
    # app 3; flush 1 + pre_start 2 + post_stop 2; db pre_stop 4 + delay 2 + grace 5 + post_stop 4.
    assert plan.longest_stop_path == (3 + 5 + 15, ("app", "flush", "db"))
    assert plan.warnings == ()
    tight = make_plan(attrs.evolve(config_of(HOOKED), shutdown_timeout=20))
    assert tight.warnings[0].startswith("the longest stop path takes up to 23 s (app -> flush -> db)")
    assert "lower a stop_timeout, stop_delay or hook_timeout" in tight.warnings[0]


def test_check_shows_the_hooks_in_the_stop_plan() -> None:
    text = render_plan(make_plan(config_of(HOOKED)))
    assert "  app    main      app  [pre_start: 2 commands, each up to 30 s]\n" in text
    assert (
        "  db     pre_stop (up to 4 s); 2 s stop_delay; SIGTERM, 5 s grace; post_stop (up to 4 s)\n" in text
    )
    assert "Longest stop path: 23 s (app -> flush -> db), within shutdown_timeout (30 s)\n" in text


def test_trinit_check_exits_2_on_a_hook_error_and_starts_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    config = tmp_path / "trinit.toml"
    config.write_text(
        f'[process.app]\ncommand = ["touch", "{marker}"]\nmain = true\n'
        f'pre_start = ["touch", "{marker}"]\npre_stop = [["a"], ["b"]]\n'
    )
    for args in (["check", "-c", str(config)], ["-c", str(config)]):
        proc = subprocess.run(
            [sys.executable, "-m", "trinit", *args], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [
            f'trinit: error: {config}: process "app": pre_stop: must be one command (an argv array or a '
            "string); to run several, put them in a script, or use /bin/sh -c"
        ]
        assert not marker.exists()


def test_load_config_reads_the_hooks_of_the_spec_example(tmp_path: Path) -> None:
    path = tmp_path / "trinit.toml"
    path.write_text(
        """
[process.api]
command = ["gunicorn", "app:app"]
main = true
pre_start = [["render-config", "/etc/api.conf"]]
pre_stop = ["curl", "-sf", "-X", "POST", "http://127.0.0.1:8000/drain"]
stop_delay = "5s"
post_stop = "/usr/local/bin/report-exit"
hook_timeout = "30s"
"""
    )
    spec = load_config(str(path)).processes[0]
    assert spec.pre_start == (("render-config", "/etc/api.conf"),) and spec.stop_delay == 5.0


def test_an_expansion_error_names_the_command_of_several() -> None:
    with pytest.raises(ConfigError) as info:
        config_of('[process.app]\ncommand = "app"\npre_start = [["a"], ["b", "${NOPE}"]]\n')
    assert info.value.errors == [
        't.toml: process "app": pre_start: command 2: ${NOPE} is not set in trinit\'s environment '
        "(set it, give a default like ${NOPE:-value}, or write $$ for a literal $)"
    ]
