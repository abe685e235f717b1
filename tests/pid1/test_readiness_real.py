"""Readiness probes for real: exec, tcp, http, file and log (prefix and inherit), and probe
timeouts as failed runs (restart policy first, then on_failure). SPEC §4.

trinit runs as PID 1 of fresh PID and network namespaces (fixed ports never clash). The
process ``app`` records ``readied`` just before it does what makes its probe pass; the
dependent ``dep`` (``after = {app = "ready"}``) must start after that.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .helpers import PY
from .orch.common import Events, log_line, now_ns, orch_fixture, toml_config, wait_log

pytestmark = pytest.mark.pid1

h = orch_fixture()
S = 1_000_000_000
LINE = "listening on port 8080"


@pytest.fixture
def ev(tmp_path: Path) -> Events:
    return Events(tmp_path / "events")


def app_spec(kind: str, ev: Events, tmp: Path) -> dict[str, Any]:
    """The app's config for one probe kind; its probe passes 0.5 s after it starts."""
    flag = tmp / "app.up"
    term = "on=TERM:exit"
    if kind == "exec":
        probe = [PY, "-c", f"import os, sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)"]
        return {
            "command": ev.kid("app", term, "sleep=0.5", "mark=readied", f"touch={flag}", "forever"),
            "ready": {"exec": probe, "interval": 0.05},
        }
    if kind == "tcp":
        return {
            "command": ev.kid("app", term, "sleep=0.5", "mark=readied", "listen=8101", "forever"),
            "ready": {"tcp": "127.0.0.1:8101", "interval": 0.05},
        }
    if kind == "http":
        # listens at once, but answers 503 for 0.5 s: only a 2xx/3xx passes
        return {
            "command": ev.kid("app", term, "http=8102:0.5", "forever"),
            "ready": {"http": "http://127.0.0.1:8102/healthz", "interval": 0.05},
        }
    if kind == "file":
        return {
            "command": ev.kid("app", term, "sleep=0.5", "mark=readied", f"touch={flag}", "forever"),
            "ready": {"file": "app.up", "interval": 0.05},  # relative to the config's folder
        }
    if kind.startswith("log"):
        stream = "err" if kind.endswith("stderr") else "out"
        return {
            "command": ev.kid(
                "app",
                term,
                "out=starting up",
                "sleep=0.5",
                "mark=readied",
                f"{stream}={LINE}",
                "out=later",
                "forever",
            ),
            "ready": {"log": r"listening on port \d+"},
            "output": "inherit" if "inherit" in kind else "prefix",
        }
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["exec", "tcp", "http", "file", "log-prefix", "log-inherit", "log-inherit-stderr"]
)
def test_dependent_starts_once_the_probe_passes(h, ev, tmp_path, kind) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "app": app_spec(kind, ev, tmp_path),
            "dep": {"command": ev.kid("dep", "on=TERM:exit", "forever"), "after": {"app": "ready"}},
        }
    )
    run = h.run_config(cfg)
    ev.wait("dep", "start", run=run)
    readied = ev.t("app", "served200" if kind == "http" else "readied")
    assert ev.t("app", "start") + int(0.45 * S) < readied < ev.t("dep", "start")
    assert log_line(run, r"app \(pid \d+\) is ready")
    run.send(signal.SIGTERM)
    assert run.wait(20) == 0, run.stderr()
    out, err = run.stdout().splitlines(), run.log_lines()
    if kind == "log-prefix":
        assert out == ["app | starting up", f"app | {LINE}", "app | later"], out
        assert LINE not in out
    elif kind == "log-inherit":
        # read for the probe, and still copied on unchanged
        assert out == ["starting up", LINE, "later"], out
    elif kind == "log-inherit-stderr":
        assert out == ["starting up", "later"], out
        assert LINE in err, err


def test_probe_timeout_is_a_failed_run(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "app": {
                "command": ev.kid("app", "on=TERM:exit", "forever"),
                "ready": {"tcp": "127.0.0.1:8103", "interval": 0.05, "timeout": 0.5},
            },
            "dep": {"command": ev.kid("dep", "forever"), "after": {"app": "ready"}},
            "svc": {"command": ev.kid("svc", "on=TERM:exit", "forever")},
        }
    )
    run = h.run_config(cfg)
    # failed without exiting: the shutdown's exit code is 1
    assert run.wait(20) == 1, run.stderr()
    assert log_line(run, r"app .*did not become ready")
    assert ev.of("app", "TERM")  # trinit stopped it
    assert ev.of("dep") == []
    assert ev.of("svc", "TERM")


def test_probe_timeout_restarts_first_then_on_failure(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "app": {
                "command": ev.kid("app", "on=TERM:exit", "forever"),
                "ready": {"tcp": "127.0.0.1:8104", "interval": 0.05, "timeout": 0.4},
                "restart": "on-failure",
                "restart_delay": 0.1,
                "max_restarts": 1,
            },
        }
    )
    run = h.run_config(cfg)
    assert run.wait(20) == 1, run.stderr()
    starts, terms = ev.of("app", "start"), ev.of("app", "TERM")
    assert len(starts) == 2 and len(terms) == 2, ev.dump()
    assert starts[0].ns < terms[0].ns < starts[1].ns < terms[1].ns
    assert log_line(run, r"app .*restarting")


def test_probe_timeout_under_ignore_carries_on_and_skips_dependents(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "app": {
                "command": ev.kid("app", "on=TERM:exit", "forever"),
                "ready": {"tcp": "127.0.0.1:8105", "interval": 0.05, "timeout": 0.4},
                "on_failure": "ignore",
            },
            "dep": {"command": ev.kid("dep", "forever"), "after": {"app": "ready"}, "on_failure": "ignore"},
            "svc": {"command": ev.kid("svc", "on=TERM:exit", "forever")},
        }
    )
    run = h.run_config(cfg)
    wait_log(run, r"dep .*skipped")
    ev.wait("app", "TERM", run=run)
    time.sleep(0.2)
    assert run.running(), run.stderr()
    assert ev.of("dep") == []
    run.send(signal.SIGTERM)
    assert run.wait(20) == 0, run.stderr()


def test_hanging_exec_probe_attempts_are_cut_by_attempt_timeout(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "app": {
                "command": ev.kid("app", "on=TERM:exit", "forever"),
                "ready": {
                    "exec": [PY, "-c", "import time; time.sleep(60)"],
                    "interval": 0.05,
                    "attempt_timeout": 0.2,
                    "timeout": 1,
                },
            },
        }
    )
    began = now_ns()
    run = h.run_config(cfg)
    assert run.wait(20) == 1, run.stderr()
    assert (now_ns() - began) / S < 8
    assert log_line(run, r"app .*did not become ready")


def test_ready_file_never_created_for_a_probe_that_never_passed(h, ev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SPEC §4: a service that exits 0 before its probe passed never counts as up (issue 10 defect 5)."""
    ready_file = tmp_path / "ready"
    cfg = toml_config(
        {
            "app": {"command": ev.kid("app", "on=TERM:exit", "forever"), "main": True},
            "svc": {"command": ev.kid("svc", "sleep=0.5", "exit=0"), "ready": {"file": "never"}},
        },
        ready_file=str(ready_file),
    )
    run = h.run_config(cfg)
    wait_log(run, r"svc \(pid \d+\) exited with code 0")
    assert not ready_file.exists()
    run.send(signal.SIGTERM)
    assert run.wait(20) == 0, run.stderr()
    assert not [line for line in run.log_lines() if "everything is up" in line], run.stderr()
