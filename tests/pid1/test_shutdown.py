"""The zero-config shutdown (SPEC §5): stop signal, -t grace then SIGKILL, then every process
left behind gets SIGTERM and its cleanup time, --shutdown-timeout caps it all, a repeated
SIGTERM is passed on, a SIGINT skips the grace, and trinit exits as soon as nothing is left.

The main process and the processes it leaves behind are children/recorder.py; ``--orphan``
makes the main's double-forked grandchild, re-parented to trinit.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import time

import pytest

from .helpers import (
    PY,
    SLOW,
    TRINIT,
    Recorder,
    clean_env,
    harness_fixture,
    mode_fixture,
    state,
    wait_for,
)

pytestmark = pytest.mark.pid1

h = harness_fixture()
as_pid1 = mode_fixture()

S = signal.Signals


def start_main(h, *options: str, pid1: bool, main_options=(), env=None):
    rec = Recorder(h.tmp, "main")
    run = h.start([*options, "--", *rec.argv(*main_options)], pid1=pid1, env=env)
    rec.wait_ready(run)
    return run, rec


def term_and_time(run) -> tuple[int, float]:
    """SIGTERM to trinit; its exit code and the seconds it took to exit."""
    sent = time.monotonic()
    run.send(S.SIGTERM)
    code = run.wait()
    assert run.ended_at is not None
    return code, run.ended_at - sent


def gone(pid: int) -> bool:
    return state(pid) in ("", "Z")


def test_exits_as_soon_as_the_main_is_gone(h, as_pid1):
    """No sleeping out a grace that is not needed: default -t 5, shutdown budget 9."""
    run, rec = start_main(h, pid1=as_pid1)
    code, took = term_and_time(run)
    assert code == 143, run.stderr()
    assert took < 1.0, f"trinit took {took:.2f} s to exit after its main process died of SIGTERM"
    assert rec.signals() == ["SIGTERM"]


def test_main_ignoring_term_is_killed_after_stop_timeout(h, as_pid1):
    run, rec = start_main(h, "-t", "0.5", pid1=as_pid1, main_options=["--term", "ignore"])
    main_pid = rec.info()["pid"]
    code, took = term_and_time(run)
    assert code == 137, run.stderr()
    assert rec.signals() == ["SIGTERM"]
    assert took >= 0.45, f"SIGKILL came {took:.2f} s after SIGTERM, before the 0.5 s grace ran out"
    assert took < 0.5 + 5
    kill_lines = [line for line in run.log_lines() if "SIGKILL" in line]
    assert kill_lines, run.stderr()
    assert any(f"pid {main_pid}" in line for line in kill_lines), run.stderr()
    if not as_pid1:
        assert gone(main_pid)


def test_stop_timeout_accepts_durations_with_a_unit(h):
    run, _ = start_main(h, "-t", "500ms", pid1=False, main_options=["--term", "ignore"])
    code, took = term_and_time(run)
    assert code == 137
    assert 0.45 <= took < 5


def test_leftover_gets_sigterm_and_finishes_its_cleanup_first(h, as_pid1):
    """A grandchild that double-forked away gets SIGTERM once the main is gone, and its 0.5 s
    cleanup completes before trinit exits (tini/dumb-init would exit at once: it dies at 0.00 s)."""
    run, rec = start_main(h, pid1=as_pid1, main_options=["--orphan", "slow:0.5"])
    orphan = Recorder(h.tmp, "main.orphan")
    orphan_pid = orphan.info()["pid"]
    if as_pid1:
        assert orphan_pid in (3, 4, 5), "the orphan lives in trinit's namespace"
    code, took = term_and_time(run)
    assert code == 143, run.stderr()
    assert orphan.signals() == ["SIGTERM"], "the leftover must get SIGTERM (and only that)"
    assert orphan.cleaned(), "trinit exited before the leftover finished its cleanup"
    cleaned_at = int(orphan.path("cleaned").read_text()) / 1e9
    assert run.ended_at is not None and cleaned_at <= run.ended_at
    (_, main_term), (_, orphan_term) = rec.times()[0], orphan.times()[0]
    assert main_term <= orphan_term, "the main process is stopped first, then what is left"
    assert 0.45 <= took < 5


def test_leftover_ignoring_term_is_killed_when_shutdown_timeout_runs_out(h, as_pid1):
    run, _ = start_main(h, "--shutdown-timeout", "1.5", pid1=as_pid1, main_options=["--orphan", "ignore"])
    orphan = Recorder(h.tmp, "main.orphan")
    orphan_pid = orphan.info()["pid"]
    code, took = term_and_time(run)
    assert code == 143, run.stderr()
    assert orphan.signals() == ["SIGTERM"]
    assert 1.4 <= took < 1.5 + 4, f"trinit exited {took:.2f} s after SIGTERM with a 1.5 s shutdown budget"
    if not as_pid1:
        wait_for(lambda: gone(orphan_pid), timeout=5, message="the leftover to be SIGKILLed")
    assert any("SIGKILL" in line for line in run.log_lines()), run.stderr()


def test_shutdown_timeout_log_names_the_leftovers_holding_it_up(h):
    """SPEC §5.5: when the budget runs out, "the log names the processes that were still holding
    the shutdown up". A leftover has no name: its pid, on the line that says SIGKILL."""
    run, _ = start_main(h, "--shutdown-timeout", "1", pid1=False, main_options=["--orphan", "ignore"])
    orphan_pid = Recorder(h.tmp, "main.orphan").info()["pid"]
    code, _ = term_and_time(run)
    assert code == 143
    kill_lines = [line for line in run.log_lines() if "SIGKILL" in line]
    assert kill_lines, run.stderr()
    assert any(re.search(rf"\b{orphan_pid}\b", line) for line in kill_lines), run.stderr()


def test_shutdown_timeout_also_caps_the_main_grace(h, pid1):
    """-t 30 but a 1 s budget: the budget wins; the env var sets it."""
    run, rec = start_main(
        h, "-t", "30", pid1=True, main_options=["--term", "ignore"], env={"TRINIT_SHUTDOWN_TIMEOUT": "1"}
    )
    main_pid = rec.info()["pid"]
    code, took = term_and_time(run)
    assert code == 137, run.stderr()
    assert 0.9 <= took < 1 + 4
    assert any(f"pid {main_pid}" in line for line in run.log_lines() if "SIGKILL" in line), run.stderr()


def test_command_line_shutdown_timeout_beats_environment(h):
    run, _ = start_main(
        h,
        "-t",
        "30",
        "--shutdown-timeout",
        "0.5",
        pid1=False,
        main_options=["--term", "ignore"],
        env={"TRINIT_SHUTDOWN_TIMEOUT": "20"},
    )
    code, took = term_and_time(run)
    assert code == 137
    assert 0.45 <= took < 4


def test_repeated_term_during_shutdown_reaches_the_main_in_its_grace(h, as_pid1):
    run, rec = start_main(h, "-t", "30", pid1=as_pid1, main_options=["--term", "ignore"])
    run.send(S.SIGTERM)
    assert rec.wait_signals(1) == ["SIGTERM"]
    run.send(S.SIGTERM)
    assert rec.wait_signals(2) == ["SIGTERM", "SIGTERM"]
    assert run.running()
    run.send(S.SIGINT)
    assert run.wait(5) == 137


def test_sigint_during_shutdown_skips_the_remaining_grace(h, as_pid1):
    run, rec = start_main(
        h, "-t", "30", pid1=as_pid1, main_options=["--term", "ignore", "--orphan", "ignore"]
    )
    orphan = Recorder(h.tmp, "main.orphan")
    orphan_pid = orphan.info()["pid"]
    run.send(S.SIGTERM)
    rec.wait_signals(1)
    sent = time.monotonic()
    run.send(S.SIGINT)
    assert run.wait(10) == 137, run.stderr()
    assert run.ended_at is not None
    assert run.ended_at - sent < 3, "SIGINT during the shutdown must not wait out the 30 s grace"
    if not as_pid1:
        wait_for(lambda: gone(orphan_pid), timeout=5, message="the leftover to be SIGKILLed too")


def test_sigint_begins_the_shutdown_and_a_second_sigint_forces_it(h, as_pid1):
    """A first Ctrl-C is a graceful stop (the main gets SIGINT), a second one kills."""
    run, rec = start_main(h, "-t", "30", pid1=as_pid1, main_options=["--int", "ignore"])
    run.send(S.SIGINT)
    assert rec.wait_signals(1) == ["SIGINT"]
    assert run.running()
    sent = time.monotonic()
    run.send(S.SIGINT)
    assert run.wait(10) == 137
    assert run.ended_at is not None and run.ended_at - sent < 3


def test_main_exit_also_stops_the_leftovers_gracefully(h, as_pid1):
    """No signal at all: the main exits 3 while a background process it started still runs; that
    one gets SIGTERM and finishes its cleanup, and trinit exits 3."""
    bg = Recorder(h.tmp, "bg")
    script = f'"$@" & while [ ! -e {bg.path("ready")} ]; do sleep 0.02; done; exit 3'
    run = h.start(["--", "sh", "-c", script, "sh", *bg.argv("--term", "slow:0.5")], pid1=as_pid1)
    assert run.wait() == 3, run.stderr()
    assert bg.signals() == ["SIGTERM"]
    assert bg.cleaned()


def test_not_pid1_signals_only_its_own_descendants(tmp_path, pid1):
    """Outside its own namespace trinit must not kill(-1): a process next to it survives its
    shutdown while its own leftover is stopped. Run inside a scratch namespace whose PID 1 is a
    shell, so a wrong kill(-1) could only hit that namespace."""
    script = f"""
        sleep 30 & sibling=$!
        {TRINIT} -v -- sh -c 'sleep 30 & echo $! > leftover; exit 0' 2> trinit.stderr
        echo $? > code
        sleep 0.2
        if kill -0 $sibling 2>/dev/null; then echo alive > sibling; else echo dead > sibling; fi
        kill $sibling
    """
    out = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
        cwd=tmp_path,
        env=clean_env(),
        timeout=SLOW,
        capture_output=True,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "code").read_text().strip() == "0", (tmp_path / "trinit.stderr").read_text()
    assert (tmp_path / "sibling").read_text().strip() == "alive", (
        "trinit signalled a process outside its tree"
    )
    leftover = (tmp_path / "leftover").read_text().strip()
    assert leftover in (tmp_path / "trinit.stderr").read_text(), "the leftover was stopped (and logged)"


def test_no_process_survives_trinit_outside_a_namespace(h):
    """As a plain child, trinit's leftovers are stopped, not orphaned to the real init."""
    run, _ = start_main(h, pid1=False, main_options=["--orphan", "exit", "--child", "exit"])
    pids = [Recorder(h.tmp, n).info()["pid"] for n in ("main", "main.orphan", "main.child")]
    h.extra_pids.extend(pids)
    assert run.send(S.SIGTERM) is None
    assert run.wait() == 143
    for pid in pids:
        wait_for(functools.partial(gone, pid), timeout=5, message=f"pid {pid} to be gone")


def test_python_main_that_exits_cleanly_on_term_gives_0(h, as_pid1):
    """A main that handles SIGTERM and exits 0 makes trinit exit 0."""
    code = (
        "import signal, sys, time, pathlib\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        f"pathlib.Path({str(h.tmp / 'up')!r}).touch()\n"
        "time.sleep(60)\n"
    )
    run = h.start(["--", PY, "-c", code], pid1=as_pid1)
    wait_for(lambda: (h.tmp / "up").exists())
    run.wait_handling()
    assert run.send(S.SIGTERM) is None
    assert run.wait() == 0, run.stderr()
    assert os.path.exists(h.tmp / "up")
