"""Zero-config mode, `trinit [OPTIONS] -- CMD`: exit codes, usage errors, stdio, how children
start, reaping, and the options that are not about signals or shutdown.

Most tests run twice: as PID 1 of a fresh PID namespace ("pid1") and as a plain child of the
test ("child"), where trinit makes itself a child subreaper.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import pytest

from .helpers import (
    SLOW,
    TRINIT,
    Recorder,
    child,
    clean_env,
    harness_fixture,
    mode_fixture,
    read_status,
    sig_mask,
    state,
    wait_for,
)

pytestmark = pytest.mark.pid1

h = harness_fixture()
as_pid1 = mode_fixture()


# --- 1. exit codes --------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 3, 255])
def test_exit_code_passes_through(h, as_pid1, code):
    run = h.start(["--", "sh", "-c", f"exit {code}"], pid1=as_pid1)
    assert run.wait() == code, run.stderr()


@pytest.mark.parametrize(
    ("sig", "expected"), [(signal.SIGTERM, 143), (signal.SIGKILL, 137), (signal.SIGUSR1, 138)]
)
def test_main_killed_by_signal_gives_128_plus_n(h, as_pid1, sig, expected):
    # the main process kills itself: trinit did not ask for it, so the code is the main's status
    run = h.start(["--", "sh", "-c", f"kill -{sig.name[3:]} $$; sleep 10"], pid1=as_pid1)
    assert run.wait() == expected, run.stderr()


def test_main_dying_of_sigsegv_gives_139(h, as_pid1):
    run = h.start(["--", *child("segv")], pid1=as_pid1)
    assert run.wait() == 139, run.stderr()


def test_command_not_found_gives_127(h, as_pid1):
    run = h.start(["--", "no-such-command-trinit-test"], pid1=as_pid1)
    assert run.wait() == 127
    assert "no-such-command-trinit-test" in run.stderr()
    run = h.start(["--", str(h.tmp / "missing" / "prog")], pid1=as_pid1)
    assert run.wait() == 127


def test_command_not_executable_gives_126(h, as_pid1):
    script = h.tmp / "not-executable.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    run = h.start(["--", str(script)], pid1=as_pid1)
    assert run.wait() == 126
    assert str(script) in run.stderr() or "not-executable" in run.stderr()


@pytest.mark.parametrize(
    "args",
    [
        ["--no-such-option", "--", "touch", "started"],
        ["-X", "touch", "started"],
        [],
        ["--"],
        ["-t", "soon", "--", "touch", "started"],
        ["-t"],
        ["-e", "256", "--", "touch", "started"],
        ["-r", "USR1", "--", "touch", "started"],
        ["-r", "USR1:NOPE", "--", "touch", "started"],
        ["-p", "NOSUCHSIG", "--", "touch", "started"],
        ["--log-format", "xml", "--", "touch", "started"],
    ],
    ids=lambda a: " ".join(a) or "no-args",
)
def test_usage_error_exits_2_with_a_message_and_starts_nothing(h, args):
    run = h.start(args, pid1=False)
    assert run.wait() == 2
    err = run.stderr()
    assert err.strip(), "a usage error must say what is wrong on stderr"
    assert "trinit" in err
    assert not (h.tmp / "started").exists(), "nothing may start on a usage error"
    assert run.stdout() == ""


def test_usage_error_as_pid1(h, pid1):
    run = h.start(["-t", "-3", "--", "touch", "started"])
    assert run.wait() == 2
    assert "-t" in run.stderr()
    assert not (h.tmp / "started").exists()


def test_bad_environment_value_is_a_usage_error(h):
    run = h.start(["--", "touch", "started"], pid1=False, env={"TRINIT_SHUTDOWN_TIMEOUT": "whenever"})
    assert run.wait() == 2
    assert "TRINIT_SHUTDOWN_TIMEOUT" in run.stderr()
    assert not (h.tmp / "started").exists()


@pytest.mark.parametrize(
    ("options", "command", "expected"),
    [
        (["-e", "3"], "exit 3", 0),
        (["-e", "3"], "exit 4", 4),
        (["-e", "3", "-e", "4"], "exit 4", 0),
        (["-e", "143"], "kill -TERM $$; sleep 10", 0),
        (["-e", "137"], "kill -TERM $$; sleep 10", 143),
    ],
)
def test_success_exit_maps_a_code_to_0(h, options, command, expected):
    run = h.start([*options, "--", "sh", "-c", command], pid1=False)
    assert run.wait() == expected, run.stderr()


def test_success_exit_accepts_death_by_sigterm_from_shutdown(h, as_pid1):
    rec = Recorder(h.tmp, "main")
    run = h.start(["-e", "143", "--", *rec.argv()], pid1=as_pid1)
    rec.wait_ready(run)
    run.send(signal.SIGTERM)
    assert run.wait() == 0, run.stderr()
    assert rec.signals() == ["SIGTERM"]


# --- 4. how the main process starts -----------------------------------------------------------


def _parse_proc_self(text: str) -> tuple[dict[str, str], list[str]]:
    """`cat /proc/self/stat /proc/self/status` output -> (status dict, stat fields after comm)."""
    stat_line, _, rest = text.partition("\n")
    fields = stat_line.rpartition(")")[2].split()
    status = dict(line.split(":\t", 1) for line in rest.splitlines() if ":\t" in line)
    return status, fields


def _inherit(ignored: set[int], blocked: set[int]):
    def prepare() -> None:
        for sig in ignored:
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    return prepare


@pytest.mark.parametrize("inherited", ["clean", "dirty"])
def test_main_starts_with_empty_mask_default_dispositions_own_group(h, as_pid1, inherited):
    """cat reports its own /proc/self (cat installs no handlers; sh would)."""
    prepare = None
    if inherited == "dirty":  # trinit itself starts with odd ignores and a mask: none may leak
        prepare = _inherit({signal.SIGUSR2, signal.SIGHUP, signal.SIGPIPE}, {signal.SIGWINCH, signal.SIGALRM})
    run = h.start(["--", "cat", "/proc/self/stat", "/proc/self/status"], pid1=as_pid1, preexec_fn=prepare)
    assert run.wait() == 0, run.stderr()
    status, fields = _parse_proc_self(run.stdout())
    pid, pgid = int(status["Pid"]), int(fields[2])
    assert sig_mask(status["SigBlk"]) == set(), "the main process must start with an empty signal mask"
    # 32 and 33 (glibc's internal signals) have their own test below
    assert sig_mask(status["SigIgn"]) - GLIBC_INTERNAL == set(), (
        "the main process must start with default dispositions"
    )
    assert sig_mask(status["SigCgt"]) == set()
    assert pgid == pid, "the main process must lead a process group of its own"
    if as_pid1:
        assert pid == 2, "trinit is PID 1 and its main process is its first child"


GLIBC_INTERNAL = {32, 33}


def test_main_does_not_start_with_glibc_internal_signals_ignored(h, as_pid1):
    """Default dispositions means all of them: glibc's posix_spawn leaves 32 and 33 SIG_IGN in the
    child (they are not in the SETSIGDEF set; sigaddset refuses them), and SIG_IGN survives exec."""
    run = h.start(["--", "grep", "^SigIgn", "/proc/self/status"], pid1=as_pid1)
    assert run.wait() == 0, run.stderr()
    ignored = sig_mask(run.stdout().split()[1])
    assert ignored & GLIBC_INTERNAL == set(), (
        f"the main process starts with signals {sorted(ignored)} ignored"
    )


def test_main_keeps_dispositions_it_sets_itself(h, as_pid1):
    """The recorder (Python) ignores SIGPIPE/SIGXFSZ itself; nothing else is ignored or blocked."""
    rec = Recorder(h.tmp, "main")
    run = h.start(["--", *rec.argv()], pid1=as_pid1)
    info = rec.wait_ready(run)
    assert sig_mask(info["SigBlk"]) == set()
    assert sig_mask(info["SigIgn"]) - GLIBC_INTERNAL <= {signal.SIGPIPE, signal.SIGXFSZ}
    assert info["pgid"] == info["pid"]
    assert info["sid"] != info["pid"], "the main process gets its own group, not its own session"
    run.send(signal.SIGTERM)
    assert run.wait() == 143


# --- 5. stdio ----------------------------------------------------------------------------------


def test_stdin_and_stdout_reach_the_main_process(h, as_pid1):
    run = h.start(["--", "cat"], pid1=as_pid1, stdin=subprocess.PIPE)
    assert run.proc.stdin is not None
    run.proc.stdin.write(b"hi\n")
    run.proc.stdin.close()
    assert run.wait() == 0, run.stderr()
    assert run.stdout() == "hi\n"


def test_echo_pipe_through_trinit_cat(tmp_path, as_pid1):
    """The shell form of the above: `echo hi | trinit -- cat`."""
    prefix = "unshare --pid --fork --mount-proc " if as_pid1 else ""
    out = subprocess.run(
        ["sh", "-c", f"echo hi | {prefix}{TRINIT} -- cat"],
        capture_output=True,
        timeout=SLOW,
        env=clean_env(),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"hi\n"


def test_main_stderr_reaches_trinit_stderr(h, as_pid1):
    run = h.start(["--", "sh", "-c", "echo to-stdout; echo to-stderr >&2"], pid1=as_pid1)
    assert run.wait() == 0
    assert "to-stderr" in run.stderr()
    assert run.stdout() == "to-stdout\n"


def test_stdio_is_passed_as_is_not_copied(h, as_pid1):
    """The main's fds 0-2 are trinit's own: the same pipe and files, no relay in between."""
    read_end, write_end = os.pipe()
    try:
        run = h.start(
            ["--", "sh", "-c", "readlink /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2"],
            pid1=as_pid1,
            stdin=read_end,
        )
    finally:
        os.close(read_end)
    os.close(write_end)
    assert run.wait() == 0, run.stderr()
    fd0, fd1, fd2 = run.stdout().split("\n")[:3]
    assert fd0.startswith("pipe:")
    assert fd1 == str(run.stdout_path)
    assert fd2 == str(run.stderr_path)


# --- 2. reaping -------------------------------------------------------------------------------


def test_hundreds_of_orphans_are_all_reaped(h, as_pid1):
    count = 300
    run = h.start(["-v", "--", *child("orphans", h.tmp, count)], pid1=as_pid1)
    pids_file = h.tmp / "pids"
    wait_for(lambda: pids_file.exists() or not run.running(), message="the orphans to be made")
    assert run.running(), run.stderr()
    orphans = [int(p) for p in pids_file.read_text().split()]
    assert len(orphans) == count
    # while alive, every orphan is trinit's child (PID 1 adopts them; otherwise the subreaper does)
    wait_for(
        lambda: len(run.children()) == count + 1,
        message=lambda: f"{count} adopted orphans, got {len(run.children())}",
    )
    if not as_pid1:
        parents = {int(read_status(p).get("PPid", "0")) for p in orphans}
        assert parents == {run.pid}
    (h.tmp / "go").touch()
    wait_for(lambda: (h.tmp / "done").exists())
    # all exit at once: shortly after, not one zombie is left under trinit
    wait_for(
        lambda: len(run.children()) == 1 and not run.zombies(),
        timeout=10,
        message=lambda: f"no zombies; {len(run.zombies())} left of {len(run.children())} children",
    )
    assert run.running()
    if not as_pid1:
        assert all(state(p) == "" for p in orphans)
    # -v logs each orphan it reaped
    wait_for(
        lambda: len(re.findall(r"orphan", run.stderr())) >= count,
        timeout=10,
        message=lambda: f"{count} orphan lines in the log:\n{run.stderr()[-2000:]}",
    )
    run.send(signal.SIGTERM)
    assert run.wait() == 143


def test_double_fork_leaves_no_zombie(h, as_pid1):
    """The classic: a daemonizing grandchild (the middle parent exits at once) is reaped."""
    marker = h.tmp / "grandchild"
    script = f'sh -c "echo \\$\\$ > {marker}.tmp; mv {marker}.tmp {marker}; exit 0" & exit 0'
    rec = Recorder(h.tmp, "main")
    run = h.start(["--", "sh", "-c", f"sh -c '{script}'; exec \"$@\"", "sh", *rec.argv()], pid1=as_pid1)
    rec.wait_ready(run)
    wait_for(marker.exists)
    wait_for(
        lambda: len(run.children()) == 1 and not run.zombies(),
        timeout=5,
        message=lambda: f"no zombie under trinit: {[(c, state(c)) for c in run.children()]}",
    )
    run.send(signal.SIGTERM)
    assert run.wait() == 143


def test_main_is_not_logged_as_an_orphan(h, as_pid1):
    """The main process's exit is its own event, never an 'orphan reaped' line."""
    run = h.start(["-v", "--", "sh", "-c", "exit 3"], pid1=as_pid1)
    assert run.wait() == 3
    log = run.stderr()
    main_pid = re.search(r"main \(pid (\d+)\) started", log)
    assert main_pid, log
    assert f"orphan pid {main_pid.group(1)} " not in log, log


# --- 7. options ------------------------------------------------------------------------------


def test_pdeathsig_shuts_trinit_down_when_its_parent_dies(h):
    pidfile = h.tmp / "trinit.pid"
    rec = Recorder(h.tmp, "main")
    argv = " ".join(rec.argv())
    outer = subprocess.Popen(
        [
            "sh",
            "-c",
            f"{TRINIT} -v -p TERM -- {argv} 2> trinit.stderr & echo $! > {pidfile}; "
            f"while [ ! -e {rec.path('ready')} ]; do sleep 0.05; done",
        ],
        cwd=h.tmp,
        env=clean_env(),
    )
    try:
        assert outer.wait(SLOW) == 0
        trinit_pid = int(pidfile.read_text())
        h.extra_pids.append(trinit_pid)
        main_pid = rec.info()["pid"]
        h.extra_pids.append(main_pid)
        # its parent (sh) is gone: trinit got SIGTERM and shut down, passing it to the main
        wait_for(lambda: rec.signals() == ["SIGTERM"], message=lambda: f"the main's SIGTERM: {rec.signals()}")
        wait_for(
            lambda: not (os.path.exists(f"/proc/{trinit_pid}") and state(trinit_pid) not in ("Z", "")),
            message="trinit to exit",
        )
        assert not os.path.exists(f"/proc/{main_pid}") or state(main_pid) in ("Z", "")
        assert "shutdown" in (h.tmp / "trinit.stderr").read_text()
    finally:
        outer.kill()
        outer.wait()


def test_pdeathsig_without_parent_death_does_nothing(h, as_pid1):
    run = h.start(["-p", "SIGUSR1", "--", "sh", "-c", "exit 5"], pid1=as_pid1)
    assert run.wait() == 5


def test_subreaper_flag_is_accepted(h, as_pid1):
    run = h.start(["-s", "--", "sh", "-c", "exit 4"], pid1=as_pid1)
    assert run.wait() == 4, run.stderr()


@pytest.mark.parametrize(("options", "env"), [(["--subreaper"], None), ([], {"TRINIT_SUBREAPER": "1"})])
def test_subreaper_long_flag_and_env_are_accepted(h, options, env):
    run = h.start([*options, "--", "sh", "-c", "exit 4"], pid1=False, env=env)
    assert run.wait() == 4, run.stderr()


ORPHAN_CMD = ["sh", "-c", "sh -c 'true &'; sleep 0.3; exit 0"]


def test_verbose_logs_debug_lines(h, as_pid1):
    run = h.start(["-v", "--", *ORPHAN_CMD], pid1=as_pid1)
    assert run.wait() == 0
    assert "orphan" in run.stderr()


def test_verbosity_env_is_like_v(h):
    run = h.start(["--", *ORPHAN_CMD], pid1=False, env={"TRINIT_VERBOSITY": "2"}, lifecycle=False)
    assert run.wait() == 0
    assert "orphan" in run.stderr(), "-vv (or TRINIT_VERBOSITY=2) shows debug lines"
    run = h.start(["--", *ORPHAN_CMD], pid1=False, env={"TRINIT_VERBOSITY": "1"}, lifecycle=False)
    assert run.wait() == 0
    assert "orphan" not in run.stderr(), "orphan lines are debug: hidden at -v"
    assert "started" in run.stderr()


def test_zero_config_is_as_quiet_as_tini_by_default(h, as_pid1):
    """SPEC §6: warnings and errors only; a clean run prints nothing of trinit's own."""
    run = h.start(["--", "sh", "-c", "echo out; echo err >&2; exit 0"], pid1=as_pid1, lifecycle=False)
    assert run.wait() == 0
    assert run.stderr() == "err\n"
    assert run.stdout() == "out\n"
    run = h.start(["--", *ORPHAN_CMD], pid1=as_pid1, lifecycle=False)
    assert run.wait() == 0
    assert run.stderr() == ""
    # what matters still shows: a failure to start
    run = h.start(["--", "no-such-command-trinit-test"], pid1=as_pid1, lifecycle=False)
    assert run.wait() == 127
    assert "no-such-command-trinit-test" in run.stderr()


def test_v_shows_the_lifecycle_in_zero_config(h):
    run = h.start(["-v", "--", "true"], pid1=False, lifecycle=False)
    assert run.wait() == 0
    assert "started" in run.stderr() and "shutdown" in run.stderr()


def test_quiet_hides_warnings_too(h):
    run = h.start(["-q", "--", "sh", "-c", "exit 3"], pid1=False, lifecycle=False)
    assert run.wait() == 3
    assert run.stderr() == ""
    run = h.start(["--", "true"], pid1=False, env={"TRINIT_VERBOSITY": "-1"}, lifecycle=False)
    assert run.wait() == 0
    assert run.stderr() == ""
    # -q keeps what matters: a failure to start
    run = h.start(["-q", "--", "no-such-command-trinit-test"], pid1=False, lifecycle=False)
    assert run.wait() == 127
    assert "no-such-command-trinit-test" in run.stderr()


def test_command_line_verbosity_beats_environment(h):
    run = h.start(["-q", "--", *ORPHAN_CMD], pid1=False, env={"TRINIT_VERBOSITY": "2"}, lifecycle=False)
    assert run.wait() == 0
    assert run.stderr() == ""


def test_json_log_format(h, as_pid1):
    run = h.start(["-v", "--log-format", "json", "--", *ORPHAN_CMD], pid1=as_pid1)
    assert run.wait() == 0
    lines = run.stderr().splitlines()
    assert lines
    events = []
    for line in lines:
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        assert {"ts", "level", "event", "process", "pid"} <= obj.keys(), line
        events.append(obj)
    started = [e for e in events if e["event"] == "started"]
    assert started and started[0]["process"] == "main" and isinstance(started[0]["pid"], int)
    if as_pid1:
        assert started[0]["pid"] == 2
    exited = [e for e in events if e["event"] == "exited"]
    assert exited and exited[0]["process"] == "main"
    assert any("orphan" in e["event"] for e in events)
    assert all(e["level"] in ("debug", "info", "warning", "error") for e in events)


def test_version_and_help(h):
    for args in (["--version"], ["-h"], ["--help"]):
        run = h.start(args, pid1=False)
        assert run.wait() == 0
        assert "trinit" in run.stdout()
    run = h.start(["--version"], pid1=False)
    run.wait()
    assert re.search(r"\d+\.\d+", run.stdout())
    run = h.start(["-h"], pid1=False)
    run.wait()
    assert "usage" in run.stdout().lower()
    for option in ("-g", "-p", "-e", "-r", "-t", "--shutdown-timeout", "--log-format"):
        assert option in run.stdout()


def test_help_as_pid1(h, pid1):
    run = h.start(["-h"])
    assert run.wait() == 0
    assert "usage" in run.stdout().lower()


def test_options_are_not_taken_from_the_command(h, as_pid1):
    """Everything after the first non-option belongs to the command, -v included."""
    run = h.start(["sh", "-c", 'echo "$@"', "sh", "-v", "--", "-q"], pid1=as_pid1)
    assert run.wait() == 0, run.stderr()
    assert run.stdout() == "-v -- -q\n"
