"""``trinit ctl`` and ``trinit probe`` as a user runs them: the real client in a subprocess, against
a fake control socket (tests/ctl_fake.py) that records each request and sends canned replies.

What is pinned: the request each command line sends (docs/control.md), what is printed, the exit
codes (0 done, 1 refused, 2 usage, 3 no trinit answers; probe 0/1), where the socket is looked for,
and that neither trio nor attrs is imported on the way.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ctl_fake import FakeServer, Handler, canned

from trinit.boot.argv import USAGE, help_text
from trinit.config.defaults import CONTROL_SOCKET

NO_ANSWER_TAIL = "is trinit running with its control socket on?"


def run(
    *args: str, env: dict[str, str] | None = None, python: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``trinit ARGS`` (as ``python -m trinit``), TRINIT_CONTROL_SOCKET unset unless ``env`` sets it."""
    environ = {k: v for k, v in os.environ.items() if k != "TRINIT_CONTROL_SOCKET"}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, *python, "-m", "trinit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def sock(tmp_path: Path) -> str:
    return str(tmp_path / "control.sock")


@pytest.fixture
def serve(sock: str) -> Iterator[Any]:
    """``serve(handler)`` starts a fake server on ``sock``; it is closed (and checked) at the end."""
    servers: list[FakeServer] = []

    def start(handler: Handler) -> FakeServer:
        server = FakeServer(Path(sock), handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def iso(delta: float) -> str:
    """Now + ``delta`` s; the tests read it as a whole number of minutes or hours, never seconds."""
    return (datetime.now(UTC) + timedelta(seconds=delta)).isoformat()


def processes() -> list[dict[str, Any]]:
    """Three process objects with times relative to now (so made when the test runs)."""
    return [
        {
            "name": "cache",
            "kind": "service",
            "state": "ready",
            "pid": 10,
            "restarts": 2,
            "since": iso(-125),
            "last_exit": {"signal": "TERM"},
            "health": "healthy",
            "status_text": None,
            "next_run": None,
        },
        {
            "name": "app",
            "kind": "main",
            "state": "running",
            "pid": 12,
            "restarts": 0,
            "since": iso(-7300),
            "last_exit": None,
            "health": None,
            "status_text": "serving \x1b[31m42 clients",
            "next_run": None,
            "from_a_newer_trinit": [1, 2],
        },
        {
            "name": "backup",
            "kind": "scheduled",
            "state": "exited",
            "pid": None,
            "restarts": 0,
            "since": iso(-620),
            "last_exit": {"code": 3},
            "health": None,
            "status_text": None,
            "next_run": iso(3 * 3600 + 1800),
        },
    ]


# ------------------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    ("args", "request_"),
    [
        (["status"], {"cmd": "status"}),
        (["status", "app", "cache"], {"cmd": "status", "names": ["app", "cache"]}),
        (["start", "app"], {"cmd": "start", "names": ["app"], "wait": False}),
        (["start", "app", "cache", "--wait"], {"cmd": "start", "names": ["app", "cache"], "wait": True}),
        (["stop", "--wait", "cache"], {"cmd": "stop", "names": ["cache"], "wait": True}),
        (["restart", "cache"], {"cmd": "restart", "names": ["cache"], "wait": False}),
        (["signal", "app", "hup"], {"cmd": "signal", "name": "app", "signal": "SIGHUP"}),
        (["signal", "app", "15"], {"cmd": "signal", "name": "app", "signal": "SIGTERM"}),
        (["signal", "app", "SIGRTMIN+2"], {"cmd": "signal", "name": "app", "signal": "SIGRTMIN+2"}),
        (["wait", "app"], {"cmd": "wait", "names": ["app"], "for": "ready", "timeout": None}),
        (
            ["wait", "provision", "--for", "completed", "--timeout", "500ms"],
            {"cmd": "wait", "names": ["provision"], "for": "completed", "timeout": 0.5},
        ),
        (
            ["wait", "a", "b", "--for=exited", "--timeout=2"],
            {"cmd": "wait", "names": ["a", "b"], "for": "exited", "timeout": 2.0},
        ),
        (["reload"], {"cmd": "reload", "dry_run": False}),
        (["reload", "--dry-run"], {"cmd": "reload", "dry_run": True}),
        (["shutdown"], {"cmd": "shutdown"}),
        (["version"], {"cmd": "version"}),
        (["stop", "--", "-odd-name"], {"cmd": "stop", "names": ["-odd-name"], "wait": False}),
    ],
)
def test_each_command_sends_its_request(
    serve: Any, sock: str, args: list[str], request_: dict[str, Any]
) -> None:
    server = serve(
        canned(
            {
                "status": {"ok": True, "processes": []},
                "version": {"ok": True, "version": "0.1.0", "protocol": 1, "pid": 1},
            }
        )
    )
    proc = run("ctl", "--socket", sock, *args)
    assert proc.returncode == 0, proc.stderr
    assert server.requests == [{**request_, "v": 1}]
    assert proc.stderr == ""


def test_events_sends_its_request_and_follows_until_the_shutdown_is_done(serve: Any, sock: str) -> None:
    done = {
        "ts": "2026-01-01T12:00:05.000Z",
        "level": "info",
        "event": "shutdown_done",
        "process": None,
        "pid": None,
        "message": "shutdown done in 0.20 s",
    }
    server = serve(lambda request: [{"ok": True}, done])
    proc = run("ctl", "--socket", sock, "events", env={"TZ": "UTC"})
    assert (proc.returncode, proc.stderr) == (0, "")
    assert server.requests == [{"cmd": "events", "v": 1}]
    assert proc.stdout == "12:00:05 shutdown done in 0.20 s\n"


def test_socket_may_come_after_the_command(serve: Any, sock: str) -> None:
    server = serve(canned({"status": {"ok": True, "processes": []}}))
    assert run("ctl", "status", "--socket", sock).returncode == 0
    assert run("ctl", "status", f"--socket={sock}", "app").returncode == 0
    assert server.requests == [{"cmd": "status", "v": 1}, {"cmd": "status", "names": ["app"], "v": 1}]


# ------------------------------------------------------------------------------------- output


def test_status_prints_a_table_sized_to_its_content(serve: Any, sock: str) -> None:
    serve(canned({"status": {"ok": True, "processes": processes()}}))
    proc = run("ctl", "--socket", sock, "status")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "KIND",
        "STATE",
        "PID",
        "SINCE",
        "RESTARTS",
        "LAST",
        "EXIT",
        "HEALTH",
        "INFO",
    ]
    assert lines[1].split() == ["cache", "service", "ready", "10", "2m", "2", "SIGTERM", "healthy"]
    assert lines[2].split()[:8] == ["app", "main", "running", "12", "2h", "0", "-", "-"]
    assert lines[2].endswith("serving \\x1b[31m42 clients")  # escaped: nothing drives the terminal
    assert lines[3].split()[:8] == ["backup", "scheduled", "exited", "-", "10m", "0", "3", "-"]
    assert "next run " in lines[3] and lines[3].endswith("(in 3h)")
    assert len(lines) == 4
    # the columns line up: every row's STATE starts where the header's does
    column = lines[0].index("STATE")
    assert [line[column:].split()[0] for line in lines[1:]] == ["ready", "running", "exited"]


def test_status_drops_health_and_info_when_no_process_has_them(serve: Any, sock: str) -> None:
    plain = [{**p, "health": None, "status_text": None, "next_run": None} for p in processes()]
    serve(canned({"status": {"ok": True, "processes": plain}}))
    proc = run("ctl", "--socket", sock, "status")
    header = proc.stdout.splitlines()[0].split()
    assert header == ["NAME", "KIND", "STATE", "PID", "SINCE", "RESTARTS", "LAST", "EXIT"]
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80


def test_status_json_prints_the_process_objects_as_they_came(serve: Any, sock: str) -> None:
    sent = processes()
    serve(canned({"status": {"ok": True, "processes": sent}}))
    proc = run("ctl", "--socket", sock, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == sent  # unknown fields included


EVENTS: list[dict[str, Any]] = [
    {
        "ts": "2026-01-01T12:00:01.250Z",
        "level": "info",
        "event": "started",
        "process": "app",
        "pid": 12,
        "message": "started: python3 app.py",
    },
    {"event": "state", "process": "app", "state": "running", "pid": 12, "ts": "2026-01-01T12:00:01.251Z"},
    {
        "ts": "2026-01-01T12:00:03.000Z",
        "level": "error",
        "event": "exited",
        "process": "app",
        "pid": 12,
        "message": "exited with code 3",
        "code": 3,
    },
    {
        "ts": "2026-01-01T12:00:04.000Z",
        "level": "info",
        "event": "shutdown_done",
        "process": None,
        "pid": None,
        "message": "shutdown done in 0.20 s",
    },
]


def test_events_prints_one_line_per_event(serve: Any, sock: str) -> None:
    serve(lambda request: [{"ok": True}, *EVENTS])
    proc = run("ctl", "--socket", sock, "events", env={"TZ": "UTC"})
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.splitlines() == [
        "12:00:01 app (pid 12) started: python3 app.py",
        "12:00:01 app (pid 12) is now running",
        "12:00:03 error: app (pid 12) exited with code 3",
        "12:00:04 shutdown done in 0.20 s",
    ]


def test_events_json_prints_the_lines_as_they_came(serve: Any, sock: str) -> None:
    serve(lambda request: [{"ok": True}, *EVENTS])
    proc = run("ctl", "--socket", sock, "events", "--json")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert [json.loads(line) for line in proc.stdout.splitlines()] == EVENTS


def test_events_closed_before_the_shutdown_means_trinit_went_away(serve: Any, sock: str) -> None:
    serve(lambda request: [{"ok": True}, EVENTS[0]])
    proc = run("ctl", "--socket", sock, "events")
    assert proc.returncode == 3
    assert "closed the event stream before its shutdown was done" in proc.stderr


def test_events_overflow_is_said_and_fails(serve: Any, sock: str) -> None:
    serve(lambda request: [{"ok": True}, EVENTS[0], {"event": "overflow"}])
    proc = run("ctl", "--socket", sock, "events", "--json")
    assert proc.returncode == 1
    assert proc.stderr == (
        "trinit ctl: trinit ended the event stream: this follower fell 10,000 events behind "
        "(is its output read fast enough?)\n"
    )
    assert json.loads(proc.stdout.splitlines()[-1]) == {"event": "overflow"}


def test_ctrl_c_ends_events_with_exit_0_and_no_traceback(serve: Any, sock: str) -> None:
    release = threading.Event()
    serve(lambda request: [{"ok": True}, EVENTS[0], release])
    child = subprocess.Popen(
        [sys.executable, "-m", "trinit", "ctl", "--socket", sock, "events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert "started" in child.stdout.readline()  # it is following now
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        release.set()
        if child.poll() is None:
            child.kill()
            child.wait()
    assert (child.returncode, err) == (0, "")


def test_a_closed_stdout_ends_events_quietly(serve: Any, sock: str) -> None:
    more = threading.Event()
    serve(lambda request: [{"ok": True}, EVENTS[0], more, *[EVENTS[2]] * 200, EVENTS[3]])
    child = subprocess.Popen(
        [sys.executable, "-m", "trinit", "ctl", "--socket", sock, "events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stderr is not None
        assert b"started" in child.stdout.readline()
        child.stdout.close()  # `| head -1` has read its line
        more.set()
        err = child.stderr.read()
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert (child.returncode, err) == (0, b"")


def test_version_prints_what_trinit_says(serve: Any, sock: str) -> None:
    serve(canned({"version": {"ok": True, "version": "0.2.0", "protocol": 1, "pid": 1, "extra": True}}))
    proc = run("ctl", "--socket", sock, "version")
    assert (proc.returncode, proc.stdout) == (0, "trinit 0.2.0 (protocol 1, pid 1)\n")


def test_reload_prints_the_plan_or_every_error(serve: Any, sock: str) -> None:
    serve(
        lambda request: [
            {"ok": True, "plan": "stop: old\nstart: new"}
            if request["dry_run"]
            else {
                "ok": False,
                "error": "the config is invalid",
                "code": "failed",
                "errors": ["a.toml: x", "a.toml: y"],
            }
        ]
    )
    dry = run("ctl", "--socket", sock, "reload", "--dry-run")
    assert (dry.returncode, dry.stdout) == (0, "stop: old\nstart: new\n")
    real = run("ctl", "--socket", sock, "reload")
    assert (real.returncode, real.stdout, real.stderr) == (
        1,
        "",
        "trinit ctl: a.toml: x\ntrinit ctl: a.toml: y\n",
    )


# ------------------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("args", "reply"),
    [
        (
            ["start", "ap"],
            {"ok": False, "error": "no process named 'ap' (did you mean 'app'?)", "code": "unknown_process"},
        ),
        (["signal", "job", "HUP"], {"ok": False, "error": "job is not running", "code": "wrong_state"}),
        (
            ["wait", "app", "--timeout", "1"],
            {"ok": False, "error": "app was not ready within 1 s", "code": "timeout"},
        ),
        (["reload"], {"ok": False, "error": "reload is not supported yet", "code": "not_supported"}),
        (["status"], {"ok": False, "error": "uid 1000 may not use this socket", "code": "denied"}),
    ],
)
def test_a_refusal_exits_1_with_its_reason(
    serve: Any, sock: str, args: list[str], reply: dict[str, Any]
) -> None:
    serve(lambda request: [reply])
    proc = run("ctl", "--socket", sock, *args)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"trinit ctl: {reply['error']}\n"


def test_no_socket_file_exits_3(sock: str) -> None:
    proc = run("ctl", "--socket", sock, "status")
    assert (proc.returncode, proc.stdout) == (3, "")
    assert (
        proc.stderr
        == f"trinit ctl: no trinit answers on {sock} (no such file or directory); {NO_ANSWER_TAIL}\n"
    )


def test_a_socket_nobody_listens_on_exits_3(sock: str) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock)  # the file exists, nothing accepts: what a crashed trinit leaves
    stale.close()
    proc = run("ctl", "--socket", sock, "status")
    assert proc.returncode == 3
    assert proc.stderr == f"trinit ctl: no trinit answers on {sock} (connection refused); {NO_ANSWER_TAIL}\n"


def test_a_path_that_is_not_a_socket_exits_3(sock: str) -> None:
    Path(sock).write_text("")
    proc = run("ctl", "--socket", sock, "shutdown")
    assert proc.returncode == 3
    assert "(connection refused)" in proc.stderr


@pytest.mark.parametrize(
    ("steps", "reason"),
    [
        ([], "it closed the connection without a reply"),
        ([b'{"ok": tr'], "it closed the connection in the middle of a reply"),
        (
            [b"HTTP/1.1 400 Bad Request\r\n"],
            "it answered something that is not JSON: not trinit's control protocol",
        ),
        ([b"[1, 2]\n"], "it answered something that is not trinit's control protocol"),
        ([{"status": "fine"}], "it answered something that is not trinit's control protocol"),
    ],
)
def test_a_server_that_does_not_answer_properly_exits_3(
    serve: Any, sock: str, steps: list[Any], reason: str
) -> None:
    serve(lambda request: steps)
    proc = run("ctl", "--socket", sock, "stop", "app")
    assert proc.returncode == 3
    assert proc.stderr == f"trinit ctl: no trinit answers on {sock} ({reason}); {NO_ANSWER_TAIL}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no command given"),
        (["bogus"], "unknown command 'bogus'"),
        (["start"], "start: name at least one process"),
        (["signal", "app"], "signal: give a process and a signal"),
        (["signal", "app", "NOPE"], "signal: invalid signal 'NOPE'"),
        (["signal", "app", "0"], "signal: invalid signal '0'"),
        (["wait", "app", "--for", "sleeping"], "wait: option --for: invalid value 'sleeping'"),
        (["wait", "app", "--timeout", "soon"], "wait: option --timeout: invalid value 'soon'"),
        (["wait", "app", "--timeout"], "option --timeout needs a value"),
        (["status", "--wait"], "status: unknown option '--wait'"),
        (["status", "--json=yes"], "option --json takes no value"),
        (["events", "app"], "events: unexpected argument 'app'"),
        (["shutdown", "-f"], "shutdown: unknown option '-f'"),
        (["stop", ""], "stop: a process name is empty"),
        (["--socket"], "option --socket needs a value"),
        (["--socket", "", "status"], "option --socket: the socket path is empty"),
        (["--socket", "/" + "x" * 120, "status"], "longer than a unix socket allows"),
    ],
)
def test_usage_errors_exit_2_and_send_nothing(serve: Any, sock: str, args: list[str], message: str) -> None:
    server = serve(canned({}))
    proc = run("ctl", *args, env={"TRINIT_CONTROL_SOCKET": sock})
    assert (proc.returncode, proc.stdout) == (2, "")
    first, second = proc.stderr.splitlines()
    assert first.startswith("trinit ctl: ") and message in first
    assert second == "Run 'trinit ctl --help' for usage."
    assert server.requests == []


def test_a_bad_environment_socket_is_a_usage_error() -> None:
    proc = run("ctl", "status", env={"TRINIT_CONTROL_SOCKET": "/" + "y" * 200})
    assert proc.returncode == 2
    assert proc.stderr.startswith("trinit ctl: TRINIT_CONTROL_SOCKET: the socket path is longer")


@pytest.mark.parametrize(
    "args", [["ctl", "--help"], ["ctl", "-h"], ["ctl", "status", "--help"], ["probe", "--help"]]
)
def test_help(args: list[str]) -> None:
    proc = run(*args)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.startswith(f"usage: trinit {args[0]} ")
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80


# ------------------------------------------------------------------------------------- the socket's path


def test_the_environment_names_the_socket(serve: Any, sock: str) -> None:
    server = serve(canned({"status": {"ok": True, "processes": []}}))
    assert run("ctl", "status", env={"TRINIT_CONTROL_SOCKET": sock}).returncode == 0
    assert len(server.requests) == 1


def test_socket_option_wins_over_the_environment(serve: Any, sock: str, tmp_path: Path) -> None:
    server = serve(canned({"status": {"ok": True, "processes": []}}))
    elsewhere = str(tmp_path / "elsewhere.sock")
    assert run("ctl", "--socket", sock, "status", env={"TRINIT_CONTROL_SOCKET": elsewhere}).returncode == 0
    assert len(server.requests) == 1
    proc = run("ctl", "--socket", elsewhere, "status", env={"TRINIT_CONTROL_SOCKET": sock})
    assert proc.returncode == 3 and elsewhere in proc.stderr
    assert len(server.requests) == 1


def test_without_option_or_environment_the_default_socket_is_used() -> None:
    if os.path.exists(CONTROL_SOCKET):
        pytest.skip(f"{CONTROL_SOCKET} exists on this machine")
    assert CONTROL_SOCKET == "/run/trinit/control.sock"
    proc = run("ctl", "status", env={"TRINIT_CONTROL_SOCKET": ""})
    assert proc.returncode == 3
    assert f"no trinit answers on {CONTROL_SOCKET} (" in proc.stderr
    probe = run("probe", "live")
    assert (
        probe.stderr == f"trinit probe: no trinit answers on {CONTROL_SOCKET} (no such file or directory)\n"
    )


# ------------------------------------------------------------------------------------- probe


@pytest.mark.parametrize("what", ["ready", "live"])
def test_probe_exits_0_on_yes_with_nothing_printed(serve: Any, sock: str, what: str) -> None:
    server = serve(lambda request: [{"ok": True, what: True, "reason": None}])
    proc = run("probe", what, "--socket", sock)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert server.requests == [{"cmd": "probe", "what": what, "v": 1}]


@pytest.mark.parametrize("what", ["ready", "live"])
def test_probe_exits_1_on_no_with_the_reason_on_stderr(serve: Any, sock: str, what: str) -> None:
    serve(lambda request: [{"ok": True, what: False, "reason": "cache is restarting"}])
    proc = run("probe", what, "--socket", sock)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"trinit probe: not {what}: cache is restarting\n"


def test_probe_exits_1_when_refused_or_nobody_answers(serve: Any, sock: str) -> None:
    gone = run("probe", "live", "--socket", sock)
    assert (gone.returncode, gone.stdout) == (1, "")
    assert gone.stderr == f"trinit probe: no trinit answers on {sock} (no such file or directory)\n"
    replies = iter(
        [[{"ok": False, "error": "uid 1000 may not use this socket", "code": "denied"}], [], [{"ok": True}]]
    )
    serve(lambda request: next(replies))
    denied = run("probe", "ready", "--socket", sock)
    assert (denied.returncode, denied.stderr) == (1, "trinit probe: uid 1000 may not use this socket\n")
    closed = run("probe", "ready", "--socket", sock)
    assert closed.returncode == 1 and "it closed the connection without a reply" in closed.stderr
    no_field = run("probe", "ready", "--socket", sock)  # a reply without "ready": not a yes
    assert (no_field.returncode, no_field.stdout) == (1, "")


@pytest.mark.parametrize(
    "args", [[], ["maybe"], ["ready", "live"], ["ready", "--json"], ["live", "--socket"]]
)
def test_probe_usage_errors_exit_2(args: list[str]) -> None:
    proc = run("probe", *args)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.startswith("trinit probe: ")


# ------------------------------------------------------------------------------------- cheapness


def imported(stderr: str) -> set[str]:
    """The modules ``python -X importtime`` reported."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize(
    ("args", "reply"),
    [
        (["ctl", "status"], {"ok": True, "processes": processes()}),
        (["ctl", "events"], {"ok": True}),
        (["probe", "live"], {"ok": True, "live": True, "reason": None}),
    ],
)
def test_the_client_imports_neither_trio_nor_attrs(
    serve: Any, sock: str, args: list[str], reply: dict[str, Any]
) -> None:
    serve(lambda request: [reply, EVENTS[-1]])
    proc = run(*args, env={"TRINIT_CONTROL_SOCKET": sock}, python=("-X", "importtime"))
    assert proc.returncode == 0, proc.stderr
    modules = imported(proc.stderr)
    assert "trinit.boot.ctl" in modules  # the listing works
    heavy = {m for m in modules if m.split(".")[0] in ("trio", "attrs", "attr", "trinit.config.model")}
    assert not heavy
    assert not {
        m for m in modules if m.startswith(("trinit.runtime", "trinit.config.model", "trinit.system"))
    }


def test_trinit_help_names_ctl_probe_and_the_control_socket() -> None:
    assert "trinit ctl [--socket PATH]" in USAGE and "trinit probe ready|live" in USAGE
    assert "--control-socket PATH" in help_text() and "TRINIT_CONTROL_SOCKET" in help_text() and CONTROL_SOCKET in help_text()


def test_a_request_longer_than_trinit_reads_is_a_usage_error(serve: Any, sock: str) -> None:
    server = serve(canned({}))
    proc = run("ctl", "--socket", sock, "stop", *(f"worker-{i:05d}" for i in range(6000)))
    assert proc.returncode == 2
    assert "the request is longer than trinit reads (64 KiB)" in proc.stderr
    assert server.requests == []


def test_a_closed_stdout_is_no_traceback(serve: Any, sock: str) -> None:
    serve(canned({"status": {"ok": True, "processes": processes()}}))
    proc = subprocess.run(
        [
            "sh",
            "-c",
            'exec "$@" >&-',
            "sh",
            sys.executable,
            "-m",
            "trinit",
            "ctl",
            "--socket",
            sock,
            "status",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stderr) == (0, "")


def test_events_json_escapes_what_could_drive_a_terminal_keeping_the_value(serve: Any, sock: str) -> None:
    raw = '{"event":"x","process":null,"pid":null,"message":"a\u009b2Jb\u2028c\x7f"}\n'.encode()
    serve(lambda request: [{"ok": True}, raw, EVENTS[-1]])
    proc = run("ctl", "--socket", sock, "events", "--json")
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.isascii() and "\\u009b" in first and "\x7f" not in first
    assert json.loads(first)["message"] == "a\u009b2Jb\u2028c\x7f"
