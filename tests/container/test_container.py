"""End to end: Dockerfile.example built unmodified, trinit as PID 1 of a real container (podman + runc),
driven only by the runtime's own commands: run, stop, kill -s, exec, run -it.

Needs root, podman and the base image of .ci/container-setup; skipped without them, except under
TRINIT_REQUIRE_NAMESPACES (CI), where a skip fails the run. Test programs are in scripts/.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .inotify import DirectoryEvents
from .podman import IMAGE, SLOW, Container, container, podman, run_options, wait_for

pytestmark = [pytest.mark.container, pytest.mark.usefixtures("image")]  # image: built, or skip/fail

ZERO_CONFIG = ["trinit", "--"]
#: `podman stop -t 10` must finish well inside its own grace, never by its SIGKILL.
QUICK_STOP = 3.0


def file_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def diagnose(box: Container, out: Path) -> str:
    files = "\n".join(f"--- {p.name}:\n{p.read_text()}" for p in sorted(out.iterdir()) if p.is_file())
    return f"--- podman logs:\n{box.logs()}\n{files}"


# --- 1. zero-config reaping, and `podman stop` -----------------------------------------------


def test_zero_config_reaps_orphans_and_stops_quickly(tmp_path: Path) -> None:
    with container(tmp_path, "python3", "/t/orphans.py", "5", entrypoint=ZERO_CONFIG) as box:
        wait_for(lambda: file_text(tmp_path / "reaped"), message=lambda: diagnose(box, tmp_path))
        assert "left []" in file_text(tmp_path / "reaped"), diagnose(box, tmp_path)
        ps = box.exec("python3", "/t/zombies.py")
        assert ps.returncode == 0, ps.stderr
        assert ps.stdout == "", f"zombies left in the container:\n{ps.stdout}"
        took = box.stop(10)
        assert took < QUICK_STOP, f"podman stop -t 10 took {took:.2f} s\n{diagnose(box, tmp_path)}"
        # the main process keeps SIGTERM's default action: trinit exits with its status, 128 + 15
        assert box.exit_code() == 128 + signal.SIGTERM, diagnose(box, tmp_path)


# --- 2. the provisioner example, as the image runs it -----------------------------------------


def read_events(directory: Path) -> list[tuple[int, str, str]]:
    """The example's `EVENT <monotonic_ns> <program> <what> <pid>` lines, in time order."""
    events = []
    for line in file_text(directory / "events.log").splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == "EVENT":
            events.append((int(parts[1]), parts[2], parts[3]))
    return sorted(events)


def test_provisioner_starts_and_stops_in_order(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with container(tmp_path, options=["-v", f"{data}:/var/lib/trinit-example"]) as box:  # as the image runs
        wait_for(
            lambda: box.exec("test", "-e", "/run/trinit/ready").returncode == 0,
            message=lambda: f"the ready file\n{box.logs()}",
        )
        wait_for(lambda: (data / "spool.jsonl").exists(), message=lambda: f"the spool\n{box.logs()}")
        took = box.stop(10)
        code = box.exit_code()
        log = box.logs()
    assert code == 0, log
    assert took < QUICK_STOP, f"podman stop -t 10 took {took:.2f} s\n{log}"
    assert "SIGKILL" not in log, log
    assert "flush | flush: flushed" in log, log

    happened = [(program, what) for _, program, what in read_events(data)]
    report = "\n".join(map(str, happened)) + "\n" + log
    start = [("cache", "listening"), ("app", "start"), ("app", "listening"), ("provision", "start")]
    stop = [
        ("app", "sigterm"),
        ("app", "stopped"),
        ("flush", "start"),
        ("flush", "done"),
        ("cache", "sigterm"),
        ("cache", "stopped"),
    ]
    for step in start + stop:
        assert happened.count(step) == 1, f"expected one {step} event\n{report}"
    order = [happened.index(step) for step in start + stop]
    assert order == sorted(order), f"events out of order\n{report}"
    saved = json.loads((data / "cache.json").read_text())
    assert json.loads(saved["spool:summary"])["clean_end"] is True, saved


# --- 3. a grandchild's slow SIGTERM handler finishes before the container ends ----------------


def test_grandchild_finishes_its_file_on_podman_stop(tmp_path: Path) -> None:
    result = tmp_path / "grandchild"
    with container(tmp_path, "python3", "/t/slow_term.py", entrypoint=ZERO_CONFIG) as box:
        wait_for(lambda: file_text(result).startswith("started"), message=lambda: diagnose(box, tmp_path))
        took = box.stop(10)
        assert file_text(result) == "started term done\n", diagnose(box, tmp_path)
        assert took < QUICK_STOP, f"podman stop -t 10 took {took:.2f} s\n{diagnose(box, tmp_path)}"
        assert box.exit_code() == 128 + signal.SIGTERM, diagnose(box, tmp_path)


# --- 4. `podman run -it`: a shell on a pty ------------------------------------------------------


class Terminal:
    """The parent's side of a pty with `podman run -it` on the other end."""

    def __init__(self, argv: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its controlling terminal
            try:
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        self.seen = b""

    def expect(self, text: bytes, timeout: float = SLOW) -> None:
        """Read until ``text`` appears after what was matched before."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                pytest.fail(f"no {text!r} on the terminal after {timeout} s; it showed:\n{self.seen!r}")
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO: the other side has closed
                chunk = b""
            if not chunk:
                pytest.fail(f"the terminal closed before {text!r}; it showed:\n{self.seen!r}")
            self.seen += chunk
        self.seen = self.seen[self.seen.index(text) + len(text) :]

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def exit_status(self, timeout: float = SLOW) -> int:
        """podman's exit status: the container's, so trinit's; output is drained meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if select.select([self.fd], [], [], 0.05)[0]:
                try:
                    self.seen += os.read(self.fd, 4096)
                except OSError:
                    pass
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        pytest.fail(f"podman run -it did not exit within {timeout} s; the terminal showed:\n{self.seen!r}")


def test_interactive_shell_through_a_pty(tmp_path: Path) -> None:
    name = f"trinit-test-tty-{os.getpid()}"
    prompt = b"trinit-pty$ "
    argv = ["podman", "run", "-it", "--rm", "--name", name, *run_options(tmp_path)]
    argv += ["--entrypoint", json.dumps(ZERO_CONFIG), "-e", f"PS1={prompt.decode()}"]
    argv += [IMAGE, "bash", "--norc", "--noprofile", "-i"]
    term = Terminal(argv)
    try:
        term.expect(prompt)
        term.send(b"\x03")  # Ctrl-C at the prompt: SIGINT to the shell's foreground group only
        term.expect(prompt)
        term.send(b"echo alive-$((6 * 7))\r")
        term.expect(b"alive-42")
        term.expect(prompt)
        term.send(b"exit 7\r")
        assert term.exit_status() == 7, term.seen
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


# --- 5. `podman kill -s SIG` reaches the main process exactly once -----------------------------

SIGNALS = ["HUP", "QUIT", "ABRT", "USR1", "USR2", "PIPE", "ALRM", "CONT", "URG", "XCPU", "XFSZ", "VTALRM"]
SIGNALS += ["PROF", "WINCH", "IO", "PWR", "SYS", "TRAP", "STKFLT"]
#: Faults are forwarded when another process sent them (SPEC §3): `podman kill` did.
SIGNALS += ["SEGV", "BUS", "FPE", "ILL"]
REALTIME = [signal.SIGRTMIN, signal.SIGRTMIN + 1, signal.SIGRTMIN + 5, signal.SIGRTMAX - 1]
#: Sent after each signal under test: once it has arrived, a duplicate of the first would have too.
SENTINEL = signal.SIGRTMAX


@pytest.fixture(scope="module")
def recorder(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Container, Path]]:
    """One zero-config container whose main process records every signal it gets."""
    out = tmp_path_factory.mktemp("signals")
    with container(out, "python3", "/t/recorder.py", entrypoint=ZERO_CONFIG) as box:
        wait_for(lambda: file_text(out / "recording"), message=lambda: diagnose(box, out))
        yield box, out


def received(out: Path) -> list[int]:
    return [int(line) for line in file_text(out / "signals").split()]


@pytest.mark.parametrize(
    "sig",
    SIGNALS + [str(int(n)) for n in REALTIME],
)
def test_podman_kill_reaches_main_once(recorder: tuple[Container, Path], sig: str) -> None:
    box, out = recorder
    signum = int(sig) if sig.isdigit() else int(getattr(signal, f"SIG{sig}"))
    assert box.running(), f"the container ended before SIG{sig}\n{diagnose(box, out)}"
    before = received(out)
    box.kill(sig)
    wait_for(lambda: signum in received(out)[len(before) :], timeout=3, message=f"SIG{sig} to reach main")
    box.kill(str(int(SENTINEL)))
    wait_for(lambda: SENTINEL in received(out)[len(before) :], timeout=SLOW, message="the sentinel")
    assert received(out)[len(before) :].count(signum) == 1, received(out)[len(before) :]
    assert box.running(), diagnose(box, out)


# --- 6. the ready file never comes back once the main process has exited ------------------------


def test_ready_file_stays_gone_after_main_exits(tmp_path: Path) -> None:
    """/run/trinit is a host directory here, watched with inotify: even a brief re-creation is seen."""
    run = tmp_path / "run"
    run.mkdir()
    events = DirectoryEvents(run)
    mount = ["-v", f"{run}:/run/trinit"]
    try:
        with container(tmp_path, entrypoint=["trinit", "-c", "/t/ready.toml"], options=mount) as box:
            wait_for(
                lambda: (run / "ready").exists(), message=lambda: f"the ready file\n{diagnose(box, tmp_path)}"
            )
            before = [e for e in events.read() if e[1] == "ready"]
            (tmp_path / "go").touch()  # the main process exits 0
            code = box.exit_code()
            report = diagnose(box, tmp_path)
        after = [e for e in events.read() if e[1] == "ready"]
    finally:
        events.close()
    assert code == 0, report
    assert before == [("created", "ready")], f"{before}\n{report}"
    assert after == [("deleted", "ready")], f"the ready file came back after main exited: {after}\n{report}"


# --- 7. `podman exec` against the running container ---------------------------------------------


def test_podman_exec_into_the_running_container(tmp_path: Path) -> None:
    with container(tmp_path) as box:  # the image's own entrypoint and config
        version = box.exec("trinit", "--version")
        assert version.returncode == 0, version.stderr
        assert version.stdout.startswith("trinit "), version.stdout
        pid1 = box.exec("cat", "/proc/1/cmdline").stdout.split("\0")
        assert pid1[1:-1] == [
            "/usr/local/bin/trinit",
            "-c",
            "/etc/trinit.toml",
            "--",
            "python3",
            "/app/app.py",
        ], pid1
        check = box.exec("trinit", "check", "-c", "/etc/trinit.toml")
        assert check.returncode == 0, check.stdout + check.stderr
        assert box.exec("python3", "/t/zombies.py").stdout == ""
        assert box.stop(10) < QUICK_STOP
        assert box.exit_code() == 0, box.logs()


# --- 8. `trinit ctl` and `trinit probe` through `podman exec` (SPEC §8) ------------------------------


def test_ctl_and_probe_through_podman_exec(tmp_path: Path) -> None:
    with container(tmp_path) as box:  # the image's own entrypoint and config: the socket is on by default
        wait_for(
            lambda: box.exec("trinit", "probe", "ready").returncode == 0,
            message=lambda: f"probe ready\n{box.logs()}",
        )
        assert box.exec("trinit", "probe", "live").returncode == 0
        status = box.exec("trinit", "ctl", "status", "--json")
        assert status.returncode == 0, status.stderr
        procs = {p["name"]: p for p in json.loads(status.stdout)}
        assert procs["app"]["kind"] == "main" and procs["app"]["state"] == "ready"
        assert procs["snapshot"]["kind"] == "scheduled" and procs["snapshot"]["next_run"]
        table = box.exec("trinit", "ctl", "status")
        assert table.stdout.split()[:3] == ["NAME", "KIND", "STATE"], table.stdout

        old = procs["cache"]["pid"]
        assert box.exec("trinit", "ctl", "restart", "cache", "--wait").returncode == 0
        assert box.exec("trinit", "ctl", "stop", "cache", "--wait").returncode == 0
        assert box.exec("trinit", "probe", "ready").returncode == 1  # a stopped process is not up
        assert box.exec("trinit", "ctl", "start", "cache", "--wait").returncode == 0
        cache = json.loads(box.exec("trinit", "ctl", "status", "--json", "cache").stdout)[0]
        assert cache["state"] == "ready" and cache["pid"] not in (None, old)
        unknown = box.exec("trinit", "ctl", "stop", "cach")
        assert unknown.returncode == 1 and "cache" in unknown.stderr

        # `ctl shutdown` is `podman stop`'s SIGTERM: the ordered shutdown, app's exit code.
        assert box.exec("trinit", "ctl", "shutdown").returncode == 0
        wait_for(lambda: not box.running(), message=lambda: box.logs())
        assert box.exit_code() == 0, box.logs()
        assert "shutdown done" in box.logs()
