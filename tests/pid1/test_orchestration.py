"""Orchestration end to end: trinit -c CONFIG as PID 1 of fresh PID and network namespaces.

Start order (`after` conditions, independent starts, skipped dependents), restarts with real
processes, the shutdown (reverse dependency order, stop jobs, stop signals, SIGKILL after the
grace, process groups, the sweep of leftovers, the budget), exit codes, signals and ready_file
(SPEC §2–§5).

Children are orch/kid.py: they append ``EVENT <monotonic_ns> NAME WHAT`` lines to one file,
and the tests assert the order of those timestamps (never absolute speeds).
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from .helpers import PY, wait_for
from .orch.common import Events, log_line, now_ns, orch_fixture, toml_config, wait_log, wait_trinit

pytestmark = pytest.mark.pid1

h = orch_fixture()
S = 1_000_000_000  # ns in a second


@pytest.fixture
def ev(tmp_path: Path) -> Events:
    return Events(tmp_path / "events")


def stop(run, code: int = 0, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    run.send(signal.SIGTERM)
    assert run.wait(timeout) == code, run.stderr()


# --- start order -----------------------------------------------------------------------------


def test_after_ready_waits_for_a_real_tcp_listener(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "app": {
                "command": ev.kid("app", "on=TERM:exit", "sleep=0.6", "listen=8001", "forever"),
                "ready": {"tcp": "127.0.0.1:8001", "interval": 0.05},
            },
            "web": {"command": ev.kid("web", "on=TERM:exit", "forever"), "after": {"app": "ready"}},
        }
    )
    run = h.run_config(cfg)
    ev.wait("web", "start", run=run)
    assert ev.t("web", "start") > ev.t("app", "listening") > ev.t("app", "start") + S // 2
    assert log_line(run, r"app \(pid \d+\) is ready")
    # a process group of its own
    pid, pgid = (int(x.split("=")[1]) for x in ev.of("web", "start")[0].what.split()[1:3])
    assert pid == pgid
    stop(run)


def test_nothing_starts_once_the_shutdown_began(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "app": {
                "command": ev.kid("app", "on=TERM:exit", "forever"),
                "ready": {"tcp": "127.0.0.1:8003", "interval": 0.05},
            },
            "dep": {"command": ev.kid("dep", "forever"), "after": {"app": "ready"}},
            "job": {"command": ev.kid("job", "exit=0"), "oneshot": True, "after": {"app": "started"}},
        }
    )
    run = h.run_config(cfg)
    ev.wait("app", "start", run=run)
    ev.wait("job", "exit 0", run=run)
    wait_trinit(run)
    sent = now_ns()
    stop(run)
    assert (now_ns() - sent) / S < 3
    assert ev.of("dep") == []


def test_started_completed_and_independent_starts(h, ev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    flag = tmp_path / "slow.up"
    probe = [PY, "-c", f"import os, sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)"]
    cfg = toml_config(
        {
            "migrate": {"command": ev.kid("migrate", "sleep=1.0", "exit=0"), "oneshot": True},
            "app": {"command": ev.kid("app", "on=TERM:exit", "forever"), "after": {"migrate": "completed"}},
            "slow": {
                "command": ev.kid("slow", "on=TERM:exit", "sleep=1.0", f"touch={flag}", "mark=up", "forever"),
                "ready": {"exec": probe, "interval": 0.05},
            },
            "early": {"command": ev.kid("early", "on=TERM:exit", "forever"), "after": {"slow": "started"}},
            "late": {"command": ev.kid("late", "on=TERM:exit", "forever"), "after": ["slow"]},
            "a": {"command": ev.kid("a", "on=TERM:exit", "forever")},
            "b": {"command": ev.kid("b", "on=TERM:exit", "forever")},
        }
    )
    run = h.run_config(cfg)
    ev.wait("app", "start", run=run)
    ev.wait("late", "start", run=run)
    migrated = ev.t("migrate", "exit 0")
    # "completed": the migration finished before the app started
    assert ev.t("app", "start") > migrated
    # independent processes start together: all of them before the first one could finish
    independent = [ev.t(n, "start") for n in ("migrate", "slow", "a", "b")]
    assert max(independent) < migrated
    assert max(independent) < ev.t("slow", "up")
    # "started": early did not wait for slow's probe; "ready" (array form): late did
    assert ev.t("early", "start") < ev.t("slow", "up")
    assert ev.t("late", "start") > ev.t("slow", "up")
    stop(run)


def test_dependency_failing_under_ignore_skips_the_dependent(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "dep": {"command": ev.kid("dep", "exit=3"), "oneshot": True, "on_failure": "ignore"},
            "d1": {"command": ev.kid("d1", "forever"), "after": {"dep": "completed"}, "on_failure": "ignore"},
            "svc": {"command": ev.kid("svc", "on=TERM:exit", "forever")},
        }
    )
    run = h.run_config(cfg)
    line = wait_log(run, r"d1 .*skipped")
    assert "dep" in line
    ev.wait("svc", "start", run=run)
    time.sleep(0.3)
    assert run.running(), run.stderr()  # ignored: trinit carries on
    assert ev.of("d1") == []
    stop(run, 0)


def test_skipped_dependent_counts_as_failed_under_its_own_on_failure(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "dep": {"command": ev.kid("dep", "sleep=0.5", "exit=3"), "oneshot": True, "on_failure": "ignore"},
            "d2": {"command": ev.kid("d2", "forever"), "after": {"dep": "completed"}},
            "svc": {"command": ev.kid("svc", "on=TERM:exit", "forever")},
        }
    )
    run = h.run_config(cfg)
    # d2's failure (on_failure = "shutdown") ends the run; it failed without exiting: code 1
    assert run.wait(20) == 1, run.stderr()
    assert log_line(run, r"d2 .*skipped")
    assert ev.of("d2") == []
    assert ev.of("svc", "TERM")


# --- oneshots --------------------------------------------------------------------------------


def test_oneshot_timeout_stop_signal_grace_then_sigkill(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "job": {
                "command": ev.kid("job", "on=INT:ignore", "on=TERM:ignore", "forever"),
                "oneshot": True,
                "timeout": 0.5,
                "stop_signal": "INT",
                "stop_timeout": 0.3,
            },
            "svc": {"command": ev.kid("svc", "on=TERM:exit", "forever")},
        }
    )
    run = h.run_config(cfg)
    # the timeout is a failure without an exit: on_failure = "shutdown" fixes the code to 1
    assert run.wait(20) == 1, run.stderr()
    began = ev.t("job", "start")
    assert ev.t("job", "INT") > began + int(0.4 * S)
    assert ev.of("job", "TERM") == []
    assert log_line(run, r"job .*timeout")
    assert "0.3" in log_line(run, r"job .*SIGKILL")
    assert ev.t("svc", "TERM") > ev.t("job", "INT") + int(0.25 * S)  # the shutdown came after the kill


def test_main_timeout_exits_1(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {"app": {"command": ev.kid("app", "on=TERM:code:0", "forever"), "main": True, "timeout": 0.5}}
    )
    run = h.run_config(cfg)
    assert run.wait(20) == 1, run.stderr()
    assert ev.t("app", "TERM") > ev.t("app", "start") + int(0.4 * S)


def test_oneshot_retries_until_success(h, ev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "job": {
                "command": ev.kid("job", f"failtimes={tmp_path / 'job.runs'}:2", "exit=0"),
                "oneshot": True,
                "retries": 2,
                "restart_delay": 0.1,
            },
            "app": {"command": ev.kid("app", "exit=0"), "main": True, "after": ["job"]},
        }
    )
    run = h.run_config(cfg)
    assert run.wait(20) == 0, run.stderr()
    assert [e.what for e in ev.of("job", "exit")] == ["exit 1", "exit 1", "exit 0"]
    assert ev.t("app", "start") > ev.t("job", "exit 0")


def test_oneshot_out_of_retries_under_ignore(h, ev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "job": {
                "command": ev.kid("job", f"failtimes={tmp_path / 'job.runs'}:5", "exit=0"),
                "oneshot": True,
                "retries": 1,
                "restart_delay": 0.1,
                "on_failure": "ignore",
            },
            "after_job": {"command": ev.kid("after_job", "exit=0"), "oneshot": True, "after": ["job"]},
            "app": {"command": ev.kid("app", "on=TERM:exit", "forever"), "main": True},
        }
    )
    run = h.run_config(cfg)
    line = wait_log(run, r"after_job .*skipped")  # it counts as failed: on_failure = "shutdown"
    assert "job" in line
    assert run.wait(20) == 1, run.stderr()
    assert [e.what for e in ev.of("job", "exit")] == ["exit 1", "exit 1"]
    assert ev.of("after_job") == []
    assert ev.of("app", "TERM")


# --- restarts ---------------------------------------------------------------------------------


def test_on_failure_restarts_with_growing_backoff_then_max_restarts(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "side": {
                "command": ev.kid("side", "exit=7"),
                "restart": "on-failure",
                "restart_delay": 0.3,
                "restart_delay_max": 10,
                "max_restarts": 3,
            },
            "svc": {"command": ev.kid("svc", "on=TERM:exit", "forever")},
        }
    )
    run = h.run_config(cfg)
    # after 3 restarts side has failed: on_failure = "shutdown", exit code = its code
    assert run.wait(30) == 7, run.stderr()
    starts = [e.ns for e in ev.of("side", "start")]
    exits = [e.ns for e in ev.of("side", "exit 7")]
    assert len(starts) == 4 and len(exits) == 4, ev.dump()
    gaps = [(starts[i + 1] - exits[i]) / S for i in range(3)]
    # delays 0.3, 0.6, 1.2 (+ a start-up overhead): each gap clearly longer than the last
    assert gaps[0] >= 0.28, gaps
    assert gaps[1] > gaps[0] + 0.15, gaps
    assert gaps[2] > gaps[1] + 0.3, gaps
    assert log_line(run, r"side .*giving up")
    assert ev.of("svc", "TERM")


def test_restarted_process_is_not_ready_until_its_probe_passes_again(h, ev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ok = tmp_path / "cache.ok"
    stamp = tmp_path / "cache.crashed"
    ready_file = tmp_path / "all.ready"
    cfg = toml_config(
        {
            "cache": {
                "command": ev.kid(
                    "cache",
                    "on=TERM:exit",
                    f"rm={ok}",
                    "sleep=0.5",
                    f"touch={ok}",
                    "mark=touched",
                    f"crashonce={stamp},{ok}",
                    "forever",
                ),
                "ready": {"file": str(ok), "interval": 0.02},
                "restart": "on-failure",
                "restart_delay": 0.1,
            },
            "web": {"command": ev.kid("web", "on=TERM:exit", "forever"), "after": {"cache": "ready"}},
        },
        ready_file=str(ready_file),
    )
    run = h.run_config(cfg)
    ev.wait("web", "start", run=run)
    wait_for(ready_file.exists, message="ready_file")
    Path(str(stamp) + ".go").touch()  # cache crashes once, and restarts
    gone = wait_for(lambda: not ready_file.exists() and now_ns(), message="ready_file removed at the restart")
    back = wait_for(lambda: ready_file.exists() and now_ns(), message="ready_file again")
    touched = ev.wait("cache", "touched", count=2)[1].ns
    assert gone < touched <= back
    log = run.stderr()
    assert (
        log.count("cache") and len([ln for ln in log.splitlines() if "cache" in ln and "is ready" in ln]) == 2
    )
    assert log.rindex("is ready") > log.index("restarting")
    # the dependent was left running: started once, never signalled
    assert len(ev.of("web", "start")) == 1
    assert ev.of("web", "TERM") == []
    stop(run)
    assert len(ev.of("web", "TERM")) == 1  # still running at the shutdown


# --- shutdown ---------------------------------------------------------------------------------


def test_shutdown_in_reverse_order_with_a_stop_job_between(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "cache": {"command": ev.kid("cache", "on=TERM:exit", "forever")},
            "web": {"command": ev.kid("web", "on=TERM:slow:0.2", "forever"), "after": {"cache": "ready"}},
            "flush": {
                "command": ev.kid("flush", "sleep=0.3", "exit=0"),
                "oneshot": True,
                "phase": "stop",
                "after": ["web"],
            },
            "hup": {"command": ev.kid("hup", "on=HUP:exit", "on=TERM:exit", "forever"), "stop_signal": "HUP"},
        }
    )
    run = h.run_config(cfg)
    ev.wait("web", "start", run=run)
    ev.wait("hup", "start", run=run)
    wait_trinit(run)
    sent = now_ns()
    run.send(signal.SIGTERM)
    assert run.wait(20) == 0, run.stderr()
    took = (now_ns() - sent) / S
    assert ev.of("flush") and ev.of("cache", "TERM"), ev.dump()
    # web stopped (and exited) before the stop job ran, which ended before cache was asked to stop
    assert sent < ev.t("web", "TERM") < ev.t("web", "cleaned") < ev.t("flush", "start")
    assert ev.t("flush", "exit 0") < ev.t("cache", "TERM")
    # stop_signal honoured; a process outside the stop job's set stays up until the job ends
    assert ev.of("hup", "TERM") == []
    assert ev.t("hup", "HUP") > ev.t("flush", "exit 0")
    # nothing needed the 5 s grace: trinit left as soon as everything was gone
    assert took < 4.0, run.stderr()


def test_sigkill_after_stop_timeout_is_logged(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {"stubborn": {"command": ev.kid("stubborn", "on=TERM:ignore", "forever"), "stop_timeout": 0.5}}
    )
    run = h.run_config(cfg)
    ev.wait("stubborn", "start", run=run)
    wait_trinit(run)
    sent = now_ns()
    run.send(signal.SIGTERM)
    assert run.wait(20) == 0, run.stderr()
    took = (now_ns() - sent) / S
    assert ev.of("stubborn", "TERM")
    assert ev.of("stubborn", "exiting") == []
    line = log_line(run, r"stubborn.*SIGKILL")
    assert "0.5" in line, line
    assert 0.45 < took < 5, took


def test_signal_group_reaches_a_grandchild(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "grp": {
                "command": ev.kid("grp", "child=grp.kid", "on=TERM:waitchild", "forever"),
                "signal_group": True,
            },
            "lone": {
                "command": ev.kid("lone", "child=lone.kid", "on=TERM:waitchild", "forever"),
                "stop_timeout": 0.5,
            },
        }
    )
    run = h.run_config(cfg)
    ev.wait("grp", "start", run=run)
    ev.wait("lone.kid", "start", run=run)
    ev.wait("grp.kid", "start", run=run)
    wait_trinit(run)
    run.send(signal.SIGTERM)
    assert run.wait(20) == 0, run.stderr()
    # the group got the stop signal: the grandchild exited, so its parent could
    assert ev.t("grp.kid", "TERM") < ev.t("grp", "exiting")
    assert "grp (" not in "".join(ln for ln in run.log_lines() if "SIGKILL" in ln)
    # without signal_group only the parent got it: killed after its grace, then the sweep
    # reached the orphaned grandchild
    assert log_line(run, r"lone.*SIGKILL")
    assert ev.t("lone.kid", "TERM") > ev.t("lone", "TERM") + int(0.4 * S)


def test_sweep_lets_a_double_forked_daemon_clean_up(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config({"side": {"command": ev.kid("side", "daemon=side.daemon", "on=TERM:exit", "forever")}})
    run = h.run_config(cfg)
    ev.wait("side.daemon", "start", run=run)
    wait_trinit(run)
    run.send(signal.SIGTERM)
    assert run.wait(20) == 0, run.stderr()
    ended = now_ns()
    assert ev.t("side", "TERM") < ev.t("side.daemon", "TERM") < ev.t("side.daemon", "cleaned") < ended
    assert ev.t("side.daemon", "cleaned") - ev.t("side.daemon", "TERM") >= int(0.25 * S)
    assert log_line(run, r"SIGTERM to 1 process")
    assert not [ln for ln in run.log_lines() if "SIGKILL" in ln], run.stderr()


def test_exhausted_budget_kills_and_names_who_held_it_up(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "hog": {"command": ev.kid("hog", "on=TERM:ignore", "forever"), "stop_timeout": 30},
            "ok": {"command": ev.kid("ok", "on=TERM:exit", "forever")},
        },
        shutdown_timeout=1,
    )
    run = h.run_config(cfg)
    ev.wait("hog", "start", run=run)
    ev.wait("ok", "start", run=run)
    wait_trinit(run)
    sent = now_ns()
    run.send(signal.SIGTERM)
    assert run.wait(20) == 0, run.stderr()
    took = (now_ns() - sent) / S
    assert 0.9 < took < 6, took
    line = log_line(run, r"shutdown_timeout|budget.*(ran out|exhausted)")
    assert "hog" in line and "ok" not in line.replace("hog", ""), line
    assert ev.of("ok", "exiting")


def test_exhausted_budget_kills_a_stubborn_leftover(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {"side": {"command": ev.kid("side", "daemon=side.daemon:ignore", "on=TERM:exit", "forever")}},
        shutdown_timeout=1,
    )
    run = h.run_config(cfg)
    ev.wait("side.daemon", "start", run=run)
    wait_trinit(run)
    sent = now_ns()
    run.send(signal.SIGTERM)
    assert run.wait(20) == 0, run.stderr()
    took = (now_ns() - sent) / S
    assert 0.9 < took < 6, took
    assert ev.of("side.daemon", "TERM")  # the sweep's SIGTERM, then SIGKILL at the deadline
    assert ev.of("side.daemon", "exiting") == []
    # SPEC §5.5: the log names who held the shutdown up; for a leftover that is its pid
    daemon_pid = ev.of("side.daemon", "start")[0].what.split()[1].split("=")[1]
    line = log_line(run, r"shutdown_timeout|ran out")
    assert re.search(rf"\b{daemon_pid}\b", line), line


# --- exit codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actions", "extra", "code"),
    [
        (["exit=3"], {}, 3),
        (["exit=3"], {"success_codes": [0, 3]}, 0),
        (["kill=USR1"], {}, 128 + signal.SIGUSR1),
    ],
    ids=["code", "success_codes", "signal"],
)
def test_exit_code_is_the_main_process_status(h, ev, actions, extra, code) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "side": {"command": ev.kid("side", "on=TERM:exit", "forever")},
            "app": {
                "command": ev.kid("app", "waitfile=" + str(ev.path) + ".go", *actions),
                "main": True,
                **extra,
            },
        }
    )
    run = h.run_config(cfg)
    ev.wait("side", "start", run=run)
    Path(str(ev.path) + ".go").touch()
    assert run.wait(20) == code, run.stderr()
    assert ev.of("side", "TERM")  # the main's exit ended everything


def test_first_failure_fixes_the_exit_code(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "app": {"command": ev.kid("app", "on=TERM:code:9", "forever"), "main": True},
            "bad": {"command": ev.kid("bad", "sleep=0.3", "exit=5"), "oneshot": True},
        }
    )
    run = h.run_config(cfg)
    assert run.wait(20) == 5, run.stderr()
    assert ev.t("app", "TERM") > ev.t("bad", "exit 5")


def test_no_main_exits_0_once_everything_finished(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "one": {"command": ev.kid("one", "sleep=0.2", "exit=0"), "oneshot": True},
            "two": {"command": ev.kid("two", "exit=4"), "oneshot": True, "success_codes": [4]},
            "three": {"command": ev.kid("three", "exit=0"), "oneshot": True, "after": ["one", "two"]},
        }
    )
    run = h.run_config(cfg)
    assert run.wait(20) == 0, run.stderr()
    assert ev.t("three", "start") > max(ev.t("one", "exit"), ev.t("two", "exit"))


# --- signals ------------------------------------------------------------------------------


def test_signals_forwarded_to_main_and_forward_signals_only(h, ev) -> None:  # type: ignore[no-untyped-def]
    rec = ["on=USR1:ignore", "on=HUP:ignore", "on=TERM:exit", "forever"]
    cfg = toml_config(
        {
            "app": {"command": ev.kid("app", *rec), "main": True},
            "fwd": {"command": ev.kid("fwd", *rec), "forward_signals": True},
            "quiet": {"command": ev.kid("quiet", *rec)},
        }
    )
    run = h.run_config(cfg)
    for name in ("app", "fwd", "quiet"):
        ev.wait(name, "start", run=run)
    wait_trinit(run)
    wait_log(run, r"quiet \(pid \d+\) started")
    run.send(signal.SIGUSR1)
    ev.wait("app", "USR1")
    ev.wait("fwd", "USR1")
    run.send(signal.SIGHUP)
    ev.wait("app", "HUP")
    ev.wait("fwd", "HUP")
    time.sleep(0.3)
    assert ev.of("quiet", "USR1") == [] and ev.of("quiet", "HUP") == []
    stop(run, 0)


def test_signals_reach_a_restarted_forwarding_process(h, ev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stamp, dummy = tmp_path / "fwd.crashed", tmp_path / "dummy"
    dummy.touch()
    cfg = toml_config(
        {
            "fwd": {
                "command": ev.kid(
                    "fwd", "on=USR1:ignore", "on=TERM:exit", f"crashonce={stamp},{dummy}", "forever"
                ),
                "forward_signals": True,
                "restart": "on-failure",
                "restart_delay": 0.1,
            },
        }
    )
    run = h.run_config(cfg)
    ev.wait("fwd", "start", run=run)
    wait_trinit(run)
    Path(f"{stamp}.go").touch()
    ev.wait("fwd", "start", count=2, run=run)
    wait_for(lambda: run.stderr().count("fwd (pid") >= 3, message="the second started line")
    run.send(signal.SIGUSR1)
    ev.wait("fwd", "USR1")
    assert ev.t("fwd", "USR1") > ev.t("fwd", "start", 1)
    stop(run, 0)


def test_second_sigterm_during_shutdown_is_passed_on(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {"slow": {"command": ev.kid("slow", "on=TERM:second", "forever"), "stop_timeout": 30}},
        shutdown_timeout=60,
    )
    run = h.run_config(cfg)
    ev.wait("slow", "start", run=run)
    wait_trinit(run)
    run.send(signal.SIGTERM)
    ev.wait("slow", "TERM", run=run)
    sent = now_ns()
    run.send(signal.SIGTERM)
    assert run.wait(20) == 0, run.stderr()
    assert (now_ns() - sent) / S < 5
    assert len(ev.of("slow", "TERM")) == 2 and ev.of("slow", "exiting")


def test_sigint_during_shutdown_forces_it(h, ev) -> None:  # type: ignore[no-untyped-def]
    cfg = toml_config(
        {
            "stubborn": {"command": ev.kid("stubborn", "on=TERM:ignore", "forever"), "stop_timeout": 30},
            "late": {
                "command": ev.kid("late", "exit=0"),
                "oneshot": True,
                "phase": "stop",
                "after": ["stubborn"],
            },
        },
        shutdown_timeout=60,
    )
    run = h.run_config(cfg)
    ev.wait("stubborn", "start", run=run)
    wait_trinit(run)
    run.send(signal.SIGTERM)
    ev.wait("stubborn", "TERM", run=run)
    sent = now_ns()
    run.send(signal.SIGINT)
    code = run.wait(20)
    assert (now_ns() - sent) / S < 5, run.stderr()
    assert code == 0, run.stderr()
    assert ev.of("late") == []  # the stop job not yet begun was skipped, with a log line
    assert log_line(run, r"late .*skipped")


# --- ready_file -----------------------------------------------------------------------------


def test_ready_file_created_when_everything_is_up_removed_at_shutdown(h, ev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "cfg"
    ready_file = folder / "up" / "ready"
    cfg = toml_config(
        {
            "app": {
                "command": ev.kid(
                    "app", f"on=TERM:exists:{ready_file}", "sleep=0.3", "listen=8002", "forever"
                ),
                "ready": {"tcp": "127.0.0.1:8002", "interval": 0.05},
            },
            "migrate": {"command": ev.kid("migrate", "sleep=0.8", "exit=0"), "oneshot": True},
            "optional": {
                "command": ev.kid("optional", "sleep=0.5", "exit=2"),
                "oneshot": True,
                "on_failure": "ignore",
            },
        },
        ready_file="up/ready",  # relative to the config's folder
    )
    run = h.run_config(cfg, folder=folder)
    seen = wait_for(lambda: ready_file.exists() and now_ns(), message="ready_file")
    assert seen > ev.t("migrate", "exit 0")
    assert seen > ev.t("app", "listening")
    assert seen > ev.t("optional", "exit 2")  # failed under "ignore": counts as up
    stop(run)
    assert ev.of("app", "TERM exists=False"), ev.dump()  # removed when the shutdown began
    assert not ready_file.exists()


# --- a process group stops as a whole (SPEC §5.2) ------------------------------------------------

#: A pre-fork server: two workers in its process group; the parent exits at once on SIGTERM,
#: each worker drains for 0.5 s first. ``prefork.py EVENTS NAME``.
PREFORK = r"""
import os, signal, sys, time
events, name = sys.argv[1], sys.argv[2]
def rec(what):
    fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    os.write(fd, f"EVENT {time.monotonic_ns()} {name} {what}\n".encode())
    os.close(fd)
def worker(i):
    def drain(*_):
        time.sleep(0.5)
        rec(f"worker{i} drained")
        os._exit(0)
    signal.signal(signal.SIGTERM, drain)
    rec(f"worker{i} up")
    while True:
        signal.pause()
for i in range(2):
    if os.fork() == 0:
        worker(i)
signal.signal(signal.SIGTERM, lambda *_: (rec("exiting"), os._exit(0)))
rec("start")
while True:
    signal.pause()
"""


@pytest.mark.parametrize("how", ["signal_group", "-g"])
def test_group_stop_waits_for_the_workers_before_the_dependency(h, ev, how) -> None:  # type: ignore[no-untyped-def]
    """Issue 10 defect 10: redis stays up until the app's workers have drained."""
    app: dict[str, object] = {
        "command": [PY, "-c", PREFORK, str(ev.path), "app"],
        "after": {"redis": "started"},
    }
    if how == "signal_group":
        app["signal_group"] = True
    else:
        app["main"] = True
    cfg = toml_config({"redis": {"command": ev.kid("redis", "on=TERM:exit", "forever")}, "app": app})
    run = h.run_config(cfg, *([how] if how == "-g" else []))
    ev.wait("app", "worker1 up", run=run)
    ev.wait("app", "worker0 up", run=run)
    ev.wait("app", "start", run=run)
    wait_trinit(run)
    run.send(signal.SIGTERM)
    assert run.wait(20) == 0, run.stderr()
    drained = [ev.t("app", "worker0 drained"), ev.t("app", "worker1 drained")]
    assert ev.t("app", "exiting") < min(drained)
    assert max(drained) < ev.t("redis", "TERM"), ev.dump()
    assert not [ln for ln in run.log_lines() if "SIGKILL" in ln], run.stderr()


# --- a start that fails names its cause (SPEC §2) -------------------------------------------------


def test_missing_cwd_exits_1_and_says_the_cwd_is_missing(h, ev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 10 defect 17: not 127 "could not start '/bin/true'"."""
    missing = tmp_path / "gone"
    cfg = toml_config({"app": {"command": ["/bin/true"], "main": True, "cwd": str(missing)}})
    run = h.run_config(cfg)
    assert run.wait(20) == 1, run.stderr()
    line = log_line(run, r"app .*could not start")
    assert f"its cwd {missing} does not exist" in line, line
