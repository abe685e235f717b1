"""The provisioner example under trinit as PID 1 of a fresh PID namespace.

    unshare --pid --fork --mount-proc --net  sh -c '<setup>; exec trinit -c examples/provisioner/trinit.toml'

The namespace also gets its own network (so the config's fixed ports 8080 and 6380 are always free; probes
are not expanded, so the test cannot move them with PORT/CACHE_PORT) and its own tmpfs on /run (so the
config's `ready_file = "/run/trinit/ready"` never touches the host). `sh` execs trinit, so trinit is PID 1.

Each example program appends `EVENT <monotonic_ns> <program> <what> <pid>` lines to events.log in
TRINIT_EXAMPLE_DIR; CLOCK_MONOTONIC is shared across PID namespaces, so those lines give the order of events.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.pid1

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "provisioner" / "trinit.toml"
READY_FILE = "/run/trinit/ready"  # [trinit] ready_file of the config
SHUTDOWN_BUDGET = 5.0  # seconds from SIGTERM to trinit's exit; the config allows 9, the programs need ~0.3

SETUP = 'ip link set lo up && mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/trinit && exec "$@"'


def trinit_command() -> list[str]:
    script = Path(sys.executable).with_name("trinit")
    if script.exists():
        return [str(script)]
    found = shutil.which("trinit")
    if found:
        return [found]
    return [sys.executable, "-m", "trinit"]


def require_namespaces() -> None:
    missing = [tool for tool in ("unshare", "ip", "mount") if shutil.which(tool) is None]
    if (os.geteuid() != 0 or missing) and os.environ.get("TRINIT_REQUIRE_NAMESPACES"):
        pytest.fail(f"needs root and unshare: euid={os.geteuid()}, missing tools: {missing} (TRINIT_REQUIRE_NAMESPACES is set)")
    if os.geteuid() != 0 or missing:
        pytest.skip(f"needs root and unshare: euid={os.geteuid()}, missing tools: {missing or 'none'}")
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "--net", "sh", "-c", SETUP, "sh", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        reason = f"needs root and unshare: cannot create the namespaces here: {probe.stderr.strip()}"
        if os.environ.get("TRINIT_REQUIRE_NAMESPACES"):
            pytest.fail(f"{reason} (TRINIT_REQUIRE_NAMESPACES is set)")
        pytest.skip(reason)


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    diagnose: Callable[[], str],
    proc: subprocess.Popen[bytes] | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"trinit exited ({proc.returncode}) while waiting for {what}\n{diagnose()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{diagnose()}")
        time.sleep(0.02)


def read_events(directory: Path) -> list[tuple[int, str, str, int]]:
    """(monotonic_ns, program, what, pid) in file order."""
    try:
        text = (directory / "events.log").read_text()
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == "EVENT":
            events.append((int(parts[1]), parts[2], parts[3], int(parts[4])))
    return events


def event_time(events: list[tuple[int, str, str, int]], program: str, what: str, context: str = "") -> int:
    matching = [ns for ns, prog, w, _ in events if (prog, w) == (program, what)]
    assert len(matching) == 1, f"expected one '{program} {what}' event, got {len(matching)}\n{context}"
    return matching[0]


def namespace_processes(init_pid: int) -> Iterator[tuple[int, str, str]]:
    """(pid in the namespace, comm, state) of every process, read from the namespace's own /proc
    (mounted by --mount-proc, reached from outside through /proc/<init>/root)."""
    proc = Path(f"/proc/{init_pid}/root/proc")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it has just gone
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state = stat[stat.rindex(")") + 2 :].split()[0]
        yield int(entry.name), comm, state


def test_provisioner_as_pid1(tmp_path: Path) -> None:
    require_namespaces()
    data = tmp_path / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRINIT_")}
    for var in ("APP_DIR", "TENANT", "HOST", "PORT", "CACHE_PORT"):
        env.pop(var, None)
    env.update(
        TRINIT_EXAMPLE_DIR=str(data),
        RECORD_INTERVAL="0.05",
        TENANT="pid1-test",
        # the config's "python3" is the interpreter running the tests
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
    )
    stdout_path, stderr_path = tmp_path / "stdout", tmp_path / "stderr"
    command = [
        "unshare", "--pid", "--fork", "--mount-proc", "--net",
        "sh", "-c", SETUP, "sh", *trinit_command(), "-c", str(CONFIG),
    ]  # fmt: skip

    def diagnose() -> str:
        out = stdout_path.read_text() if stdout_path.exists() else ""
        err = stderr_path.read_text() if stderr_path.exists() else ""
        events = "\n".join(" ".join(map(str, e)) for e in read_events(data))
        return f"--- trinit stdout:\n{out}\n--- trinit stderr:\n{err}\n--- events:\n{events}"

    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        unshare = subprocess.Popen(command, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=stdout,
                                   stderr=stderr)  # fmt: skip
    init_pid = 0
    try:
        # The namespace's PID 1 is the child of the unshare process; sh execs trinit in it.
        def find_init() -> int:
            children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children")
            try:
                pids = children.read_text().split()
            except OSError:
                return 0
            return int(pids[0]) if pids else 0

        init_pid = wait_for(find_init, 10, "the namespace's PID 1", diagnose, unshare)
        status = Path(f"/proc/{init_pid}/status").read_text()
        assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.M), status

        def is_trinit() -> bool:
            try:
                return "trinit" in Path(f"/proc/{init_pid}/cmdline").read_text()
            except OSError:
                return False

        wait_for(is_trinit, 10, "sh to exec trinit", diagnose, unshare)

        # -- start: cache ready -> app -> app ready -> provision -> ready_file --------------------------
        ready_file = Path(f"/proc/{init_pid}/root{READY_FILE}")
        wait_for(ready_file.exists, 30, f"trinit to create {READY_FILE}", diagnose, unshare)
        events = read_events(data)
        report = diagnose()
        assert unshare.poll() is None, report
        assert any(e[1:3] == ("provision", "acked") for e in events), (
            f"{READY_FILE} was created before the provision oneshot completed\n{report}"
        )

        cache_listening = event_time(events, "cache", "listening", report)
        app_start = event_time(events, "app", "start", report)
        app_listening = event_time(events, "app", "listening", report)
        provision_start = event_time(events, "provision", "start", report)  # only one attempt was needed
        assert cache_listening < app_start, "app started before the cache was ready"
        assert app_listening < provision_start, "provision started before the app was ready"
        assert event_time(events, "app", "provisioned", report) < event_time(
            events, "provision", "acked", report
        )
        assert not any(prog == "provision" and what == "failed" for _, prog, what, _ in events)

        # -- the provisioner has exited and been reaped: no zombie anywhere in the namespace ------------
        # (trinit knows the oneshot completed only by reaping it, so this holds at once; the short poll
        # only allows for a zombie of some other short-lived child being reaped just now)
        provision_pid = next(pid for _, prog, what, pid in events if (prog, what) == ("provision", "start"))

        def settled() -> list[tuple[int, str, str]] | None:
            procs = list(namespace_processes(init_pid))
            if any(state == "Z" or pid == provision_pid for pid, _, state in procs):
                return None
            return procs

        procs = wait_for(
            settled,
            2,
            f"no zombie and no provisioner (pid {provision_pid}) in the namespace",
            lambda: f"processes (pid, comm, state): {list(namespace_processes(init_pid))}\n{diagnose()}",
        )
        assert any(pid == 1 for pid, _, _ in procs), procs  # trinit, still PID 1

        # the app spools once provisioned
        wait_for(lambda: (data / "spool.jsonl").exists() and (data / "spool.jsonl").read_text().count("\n") >= 3,
                 10, "spooled records", diagnose, unshare)  # fmt: skip

        # -- SIGTERM: app stops, then flush runs, then the cache stops; exit 0 -------------------------
        sent = time.monotonic()
        os.kill(init_pid, signal.SIGTERM)
        try:
            code = unshare.wait(timeout=SHUTDOWN_BUDGET + 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"trinit did not exit within {SHUTDOWN_BUDGET + 10}s of SIGTERM\n{diagnose()}")
        elapsed = time.monotonic() - sent
        assert code == 0, f"exit status {code}\n{diagnose()}"
        assert elapsed < SHUTDOWN_BUDGET, f"shutdown took {elapsed:.2f}s\n{diagnose()}"
    finally:
        if unshare.poll() is None:
            if init_pid:
                os.kill(init_pid, signal.SIGKILL)  # the namespace's PID 1: takes the namespace with it
            unshare.kill()
            unshare.wait()

    events = read_events(data)
    order = [
        ("app", "sigterm"),
        ("app", "stopped"),
        ("flush", "start"),
        ("flush", "done"),
        ("cache", "sigterm"),
        ("cache", "stopped"),
    ]
    report = diagnose()
    times = [event_time(events, *step, report) for step in order]
    assert times == sorted(times), f"stop order wrong: {sorted(zip(times, order, strict=True))}\n{diagnose()}"
    assert not any(what == "failed" for _, _, what, _ in events), diagnose()

    # the scheduled snapshot ran as soon as the cache was ready (run_on_start), and only then
    assert event_time(events, "cache", "listening", report) < min(
        ns for ns, prog, what, _ in events if (prog, what) == ("snapshot", "start")
    )
    assert any(e[1:3] == ("snapshot", "done") for e in events), report
    assert list((data / "snapshots").glob("cache-*.json")), report

    # the cache outlived the app and saved the flush job's summary
    saved = json.loads((data / "cache.json").read_text())
    summary = json.loads(saved["spool:summary"])
    assert summary["records"] >= 3 and summary["clean_end"] is True, summary
    assert saved["spool:flushes"] == "1"

    # output = "prefix": each program's lines carry its name
    out = stdout_path.read_text() + stderr_path.read_text()
    assert re.search(r"provision\s*\|\s*provision: acknowledged by the app", out), diagnose()
    assert "pid1-test" in out  # TENANT reached provision.py through the config's ${TENANT:-demo}
