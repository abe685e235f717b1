"""Process output for real (SPEC §4 ``output``, §6): prefix, JSON lines, null and inherit;
lines never torn or lost, also at a SIGTERM mid-stream; trinit's own JSON log.

trinit runs as PID 1 of a fresh PID namespace; its stdout and stderr are files.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from .helpers import json_lines, wait_for
from .orch.common import Events, orch_fixture, toml_config

pytestmark = pytest.mark.pid1

h = orch_fixture()
PAD = "x" * 60


@pytest.fixture
def ev(tmp_path: Path) -> Events:
    return Events(tmp_path / "events")


def talker(ev: Events, output: str) -> dict[str, object]:
    return {
        "command": ev.kid("talk", "out=hello out", "err=hello err", "out=bye out", "exit=0"),
        "oneshot": True,
        "output": output,
    }


def test_prefix_keeps_stdout_and_stderr_apart(h, ev) -> None:  # type: ignore[no-untyped-def]
    run = h.run_config(toml_config({"talk": talker(ev, "prefix")}), net=False)
    assert run.wait(20) == 0, run.stderr()
    assert run.stdout().splitlines() == ["talk | hello out", "talk | bye out"]
    err = run.log_lines()
    assert "talk | hello err" in err
    assert not [ln for ln in err if "out" in ln and "talk |" in ln]


def test_prefix_as_json_lines(h, ev) -> None:  # type: ignore[no-untyped-def]
    run = h.run_config(toml_config({"talk": talker(ev, "prefix")}, log_format="json"), net=False)
    assert run.wait(20) == 0, run.stderr()
    out = json_lines(run.stdout())
    assert [(o["process"], o["stream"], o["line"]) for o in out] == [
        ("talk", "stdout", "hello out"),
        ("talk", "stdout", "bye out"),
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", o["ts"]) for o in out), out
    err = json_lines(run.stderr())  # trinit's own lines are JSON too
    assert [o["line"] for o in err if o.get("stream") == "stderr" and o.get("process") == "talk"] == [
        "hello err"
    ]


def test_null_drops_the_output(h, ev) -> None:  # type: ignore[no-untyped-def]
    run = h.run_config(toml_config({"talk": talker(ev, "null")}), net=False)
    assert run.wait(20) == 0, run.stderr()
    assert run.stdout() == ""
    own = [ln for ln in run.log_lines() if " started: " not in ln]  # that one shows the argv
    assert not [ln for ln in own if "hello" in ln or "bye" in ln], own
    assert ev.of("talk", "exit 0")


def test_inherit_passes_trinits_own_stdout(h, ev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    info = tmp_path / "talk.json"
    cfg = toml_config(
        {"talk": {"command": ev.kid("talk", f"info={info}", "out=hello out", "exit=0"), "oneshot": True}}
    )
    run = h.run_config(cfg, net=False)
    assert run.wait(20) == 0, run.stderr()
    assert run.stdout().splitlines() == ["hello out"]
    # no copy: the child writes to the very file trinit's stdout is
    assert json.loads(info.read_text())["stdout"] == str(run.stdout_path)


def expected(name: str, count: int) -> list[str]:
    return [f"{name} | line {i} {PAD}" for i in range(count)]


def test_fast_writers_lose_and_tear_no_line(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "spam": {"command": ev.kid("spam", "spam=50000", "exit=0"), "oneshot": True, "output": "prefix"},
            "more": {"command": ev.kid("more", "spam=20000", "exit=0"), "oneshot": True, "output": "prefix"},
        }
    )
    run = h.run_config(cfg, net=False)
    assert run.wait(60) == 0, run.stderr()
    lines = run.stdout().splitlines()
    assert len(lines) == 70000
    assert [ln for ln in lines if ln.startswith("spam | ")] == expected("spam", 50000)
    assert [ln for ln in lines if ln.startswith("more | ")] == expected("more", 20000)


def test_sigterm_while_writing_loses_no_line(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config({"spam": {"command": ev.kid("spam", "on=TERM:exit", "spamterm"), "output": "prefix"}})
    run = h.run_config(cfg, net=False)
    wait_for(lambda: run.stdout_path.stat().st_size > 400_000, timeout=30, message="5000 lines of output")
    run.send(signal.SIGTERM)
    assert run.wait(30) == 0, run.stderr()
    wrote = ev.of("spam", "wrote ")
    assert wrote, ev.dump()
    count = int(wrote[0].what.split()[1])
    lines = run.stdout().splitlines()
    assert len(lines) == count and lines == expected("spam", count)
    assert run.stdout().endswith("\n")


def test_trinits_own_log_as_json(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config({"app": {"command": ev.kid("app", "on=TERM:exit", "forever")}})
    run = h.run_config(cfg, "--log-format", "json", net=False)
    ev.wait("app", "start", run=run)
    wait_for(lambda: '"started"' in run.stderr(), message="the started event")
    run.send(signal.SIGTERM)
    assert run.wait(20) == 0, run.stderr()
    objs = json_lines(run.stderr())
    assert objs and all({"ts", "level", "event", "process", "pid"} <= o.keys() for o in objs), objs
    started = [o for o in objs if o["event"] == "started"]
    assert len(started) == 1 and started[0]["process"] == "app" and started[0]["level"] == "info"
    pid = int(ev.of("app", "start")[0].what.split()[1].split("=")[1])  # its pid in the namespace
    assert started[0]["pid"] == pid
    exited = [o for o in objs if o["event"] == "exited"]
    assert exited and exited[0]["process"] == "app" and exited[0]["pid"] == pid
    assert {"shutdown_begun", "shutdown_done"} <= {o["event"] for o in objs}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", o["ts"]) for o in objs)
    assert os.path.getsize(run.stdout_path) == 0
