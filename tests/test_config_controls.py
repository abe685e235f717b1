"""Control characters never reach the terminal raw (issue 10, defect 16): for any config
input, every line of a ConfigError and every line trinit's log prints is one line, with every
control character (``\\n``, ``\\r``, ANSI/OSC escapes, C1, U+2028) escaped."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trinit._errors import ConfigError
from trinit._text import CONTROLS
from trinit.config.load import config_from_mapping, parse_toml
from trinit.io.log import Logger

#: Characters that break a line or drive a terminal, mixed with harmless ones.
HOSTILE = ["\n", "\r", "\x1b", "]0;pwned", "\x07", "[2J", "\x9b", "\x85", "\u2028", "\x00", "\x7f", "\t"]
hostile = st.lists(st.sampled_from([*HOSTILE, "a", "app", "x", ".", "-", " ", "é"]), max_size=6).map("".join)
scalars = st.one_of(hostile, st.integers(-3, 70), st.booleans(), st.floats(allow_nan=True))
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(hostile, scalars, max_size=2))
KEYS = [
    "command", "shell", "main", "oneshot", "after", "ready", "restart", "stop_signal", "stop_timeout",
    "user", "group", "output", "env", "env_file", "cwd", "phase", "on_failure", "success_codes",
]  # fmt: skip


@st.composite
def hostile_configs(draw: Any) -> dict[str, Any]:
    processes: dict[str, Any] = {}
    for name in draw(st.lists(st.one_of(hostile, st.sampled_from(["app", "db"])), min_size=1, max_size=3)):
        table: dict[str, Any] = {
            "command": draw(st.one_of(hostile, st.lists(hostile, min_size=1, max_size=3)))
        }
        for key in draw(st.lists(st.one_of(st.sampled_from(KEYS), hostile), max_size=4)):
            table[key] = draw(values)
        if draw(st.booleans()):
            table["ready"] = {
                draw(st.sampled_from(["exec", "tcp", "http", "file", "log", "x\ny"])): draw(values)
            }
        processes[name] = table
    config: dict[str, Any] = {"process": processes}
    if draw(st.booleans()):
        config["trinit"] = draw(
            st.dictionaries(
                st.one_of(st.sampled_from(["ready_file", "log_format"]), hostile), values, max_size=2
            )
        )
    return config


def one_clean_line(line: str) -> None:
    assert not CONTROLS & set(line), repr(line)


def log_lines(config: Any) -> list[bytes]:
    """What trinit's log prints about these processes, in text and JSON."""
    out: list[bytes] = []
    for log_format in ("text", "json"):
        log = Logger(log_format=log_format)
        for spec in config.processes:
            out.append(
                log._format("info", "started", f"started: {shlex.join(spec.command)}", spec.name, 7, {})
            )
            out.append(
                log._format(
                    "error", "failed", "failed: exited with code 3", spec.name, None, {"argv": spec.command}
                )
            )
    return out


def check(data: dict[str, Any], source: str) -> None:
    try:
        config = config_from_mapping(data, source=source, base_dir="/srv", environ={"A": "\n\x1b"})
    except ConfigError as exc:
        assert exc.errors
        for error in exc.errors:
            one_clean_line(error)
        return
    for line in log_lines(config):
        assert line.endswith(b"\n")
        one_clean_line(line[:-1].decode())
        assert line.count(b"\n") == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_configs(), hostile)
def test_any_config_mapping_gives_one_clean_line_per_problem(data: dict[str, Any], source: str) -> None:
    check(data, source or "trinit.toml")


@settings(max_examples=300, deadline=None)
@given(hostile_configs())
def test_any_toml_document_gives_one_clean_line_per_problem(data: dict[str, Any]) -> None:
    lines: list[str] = []
    for name, table in data["process"].items():
        lines.append(f"[process.{json.dumps(name)}]")
        for key, value in table.items():
            lines.append(f"{json.dumps(key)} = {toml_value(value)}")
    try:
        parsed = parse_toml("\n".join(lines) + "\n", "trinit.toml")
    except ConfigError as exc:
        for error in exc.errors:
            one_clean_line(error)
        return
    check(parsed, "trinit.toml")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_one_clean_line_per_problem(document: str) -> None:
    try:
        check(parse_toml(document, "in\nput.toml"), "in\nput.toml")
    except ConfigError as exc:
        for error in exc.errors:
            one_clean_line(error)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else ("inf" if value == float("inf") else "-inf" if value == float("-inf") else repr(value))
        )
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def test_the_cli_prints_one_clean_line_per_problem(tmp_path: Path) -> None:
    """Through `trinit -c` (boot/main writes the lines), bytes as the terminal gets them."""
    config = tmp_path / "trinit.toml"
    config.write_text('[process.app]\ncommand = ["true"]\nmain = true\n[process."b\\rc"]\ncommand = "x"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "trinit", "-c", str(config)],
        capture_output=True,
        timeout=30,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().split("\n")
    assert lines[-1] == ""
    assert lines[:-1] == [
        f'trinit: error: {config}: process "b\\rc": the name may only hold letters, digits, "_", "-" and "."'
    ]


def test_a_user_with_control_characters_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "trinit.toml"
    config.write_text(
        '[process.app]\ncommand = ["true"]\nmain = true\nuser = "no\\nbody\\u001b]0;pwned\\u0007"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "trinit", "-c", str(config)], capture_output=True, timeout=30
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().split("\n")
    assert len(lines) == 2 and lines[1] == "", lines
    one_clean_line(lines[0])
    assert "no\\nbody\\x1b]0;pwned\\x07" in lines[0]
