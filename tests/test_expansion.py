"""``${VAR}`` expansion (SPEC §4) and relative paths, as the loader applies them."""

from __future__ import annotations

from typing import Any

import pytest

from trinit._errors import ConfigError
from trinit.config.load import ExpansionError, config_from_mapping, expand
from trinit.config.model import ProcessSpec

ENV = {"NAME": "web", "EMPTY": "", "SPACED": "a b  c", "DOLLAR": "$X"}


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("${NAME}", "web"),
        ("x${NAME}y", "xweby"),
        ("${NAME:-other}", "web"),
        ("${UNSET:-other}", "other"),
        ("${UNSET:-}", ""),
        ("${EMPTY:-fallback}", "fallback"),  # like sh: ":-" also covers an empty value
        ("${EMPTY}", ""),
        ("${UNSET:-a b:c}", "a b:c"),
        ("${UNSET:-$HOME}", "$HOME"),  # the default is literal
        ("${DOLLAR}", "$X"),  # a value is never expanded again
        ("$$", "$"),
        ("$$$$", "$$"),
        ("$${NAME}", "${NAME}"),
        ("$$$", "$$"),  # "$$" then a lone "$"
        ("$1 $@ $HOME $", "$1 $@ $HOME $"),  # any other $ stays as it is
        ("${1}", "${1}"),
        ("${NAME-x}", "${NAME-x}"),  # not a form trinit knows: kept for a shell
        ("${NAME%/}", "${NAME%/}"),
        ("${NAME", "${NAME"),
        ("${}", "${}"),
        ("no dollars", "no dollars"),
    ],
)
def test_expand(text: str, out: str) -> None:
    assert expand(text, ENV) == out


def test_unset_names_every_variable_once() -> None:
    with pytest.raises(ExpansionError) as info:
        expand("${A} ${B} ${A}", {})
    assert str(info.value).startswith("${A}, ${B} are not set in trinit's environment")


def load(process: dict[str, Any], environ: dict[str, str] = ENV, base_dir: str = "/etc/app") -> ProcessSpec:
    return config_from_mapping(
        {"process": {"p": process}}, source="t.toml", base_dir=base_dir, environ=environ
    ).process("p")


def test_string_command_is_split_before_expansion() -> None:
    """A value with spaces stays one argument, and quotes in a value are not parsed."""
    spec = load({"command": "echo ${SPACED} '${NAME}' \"x ${NAME}\""})
    assert spec.command == ("echo", "a b  c", "web", "x web")
    assert load({"command": "echo ${Q}"}, environ={"Q": "'a b'"}).command == ("echo", "'a b'")


def test_array_command_expands_each_element() -> None:
    assert load({"command": ["${NAME}", "--x=${UNSET:-1}", "$1"]}).command == ("web", "--x=1", "$1")


def test_shell_command_expands_the_whole_string() -> None:
    spec = load({"command": 'for a in "$@"; do echo ${NAME} $a $$; done', "shell": True})
    assert spec.command == ("/bin/sh", "-c", 'for a in "$@"; do echo web $a $; done')


def test_cwd_and_env_values_expand_and_paths_resolve() -> None:
    spec = load(
        {
            "command": "x",
            "cwd": "${NAME}/data",
            "env": {"A": "${NAME}", "B": "$$", "C": "${UNSET:-d}"},
            "env_file": "${NAME}.env",
            "ready": {"file": "run/${NAME}"},
        }
    )
    assert spec.cwd == "/etc/app/web/data"
    assert spec.env == (("A", "web"), ("B", "$"), ("C", "d"))
    # env_file and ready.file are paths, not expanded (SPEC lists command, cwd and env only).
    assert spec.env_file == "/etc/app/${NAME}.env"
    assert spec.ready is not None and spec.ready.target == "/etc/app/run/${NAME}"


def test_absolute_paths_stay_and_ready_file_resolves() -> None:
    spec = load({"command": "x", "cwd": "/srv", "env_file": "/etc/x.env"})
    assert (spec.cwd, spec.env_file) == ("/srv", "/etc/x.env")
    config = config_from_mapping({"trinit": {"ready_file": "../ready"}}, base_dir="/etc/app")
    assert config.ready_file == "/etc/ready"


def test_other_keys_are_not_expanded() -> None:
    spec = load({"command": "x", "ready": {"exec": ["check", "${NAME}"]}}, environ={})
    assert spec.ready is not None and spec.ready.target == ("check", "${NAME}")


def test_unset_variable_in_each_place() -> None:
    with pytest.raises(ConfigError) as info:
        load({"command": ["${A}"], "cwd": "${B}", "env": {"K": "${C}"}}, environ={})
    assert info.value.errors == [
        f't.toml: process "p": {key}: ${{{var}}} is not set in trinit\'s environment '
        f"(set it, give a default like ${{{var}:-value}}, or write $$ for a literal $)"
        for key, var in (("command", "A"), ("cwd", "B"), ("env.K", "C"))
    ]


def test_expansion_is_not_applied_to_keyword_construction() -> None:
    assert ProcessSpec(name="a", command="echo ${HOME}").command == ("echo", "${HOME}")


def test_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRINIT_TEST_VAR", "42")
    spec = config_from_mapping({"process": {"p": {"command": "x ${TRINIT_TEST_VAR}"}}}).process("p")
    assert spec.command == ("x", "42")
