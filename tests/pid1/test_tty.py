"""trinit on a terminal (`docker run -it`): the main process gets the foreground, so an
interactive shell works, Ctrl-C interrupts its foreground job and not the shell, and the
shell's exit code is trinit's.

The pty's slave is the controlling terminal of the unshare/trinit session (setsid +
TIOCSCTTY) and its stdin/stdout/stderr; the test types into the master.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import subprocess
import termios
import time

import pytest

from .helpers import SLOW, TRINIT, clean_env, descendants_of, read_status, wait_for

pytestmark = pytest.mark.pid1

PROMPT = "trinit-test$ "


class Terminal:
    """trinit ARGS on a fresh pty, as PID 1 of a new PID namespace."""

    def __init__(self, tmp_path, args: list[str]) -> None:
        self.master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[3] |= termios.ECHO | termios.ISIG | termios.ICANON
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        env = clean_env({"PS1": PROMPT, "TERM": "dumb"})
        env.pop("ENV", None)
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", TRINIT, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            env=env,
            cwd=tmp_path,
        )
        os.close(slave)
        self.output = ""

    def read(self, timeout: float = 0.05) -> str:
        while select.select([self.master], [], [], timeout)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every slave fd is closed
                break
            if not chunk:
                break
            self.output += chunk.decode(errors="replace")
            timeout = 0.01
        return self.output

    def expect(self, pattern: str, *, after: int = 0, timeout: float = SLOW) -> int:
        """Wait until ``pattern`` (a regex) shows up past offset ``after``; the end of the match."""

        def seen():
            self.read()
            return re.search(pattern, self.output[after:])

        found = wait_for(seen, timeout, message=lambda: f"{pattern!r} on the terminal; got {self.output!r}")
        return after + found.end()

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = SLOW) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            self.read(0.05)
            if time.monotonic() > deadline:
                pytest.fail(f"trinit did not exit within {timeout} s; terminal:\n{self.output}")
        return self.proc.returncode

    def processes(self, name: str) -> list[int]:
        """Descendants of unshare named ``name``."""
        return [p for p in descendants_of(self.proc.pid) if read_status(p).get("Name") == name]

    def close(self) -> None:
        if self.proc.poll() is None:
            for p in descendants_of(self.proc.pid):
                try:
                    os.kill(p, 9)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)


@pytest.fixture
def terminal(tmp_path, pid1):
    made: list[Terminal] = []

    def make(args: list[str]) -> Terminal:
        made.append(Terminal(tmp_path, args))
        return made[-1]

    yield make
    for t in made:
        t.close()


def test_interactive_shell_ctrl_c_interrupts_the_job_not_the_shell(terminal):
    term = terminal(["--", "sh", "-i"])
    at = term.expect(re.escape(PROMPT))
    # the shell has the terminal's foreground: it is not stopped by SIGTTIN/SIGTTOU
    sh_pids = term.processes("sh")
    assert sh_pids
    assert read_status(sh_pids[0])["State"][0] != "T"
    term.type("sleep 30\n")
    sleeper = wait_for(lambda: term.processes("sleep"), message="the foreground job to start")[0]
    term.read()
    at = len(term.output)
    term.type("\x03")
    wait_for(
        lambda: read_status(sleeper).get("State", "Z")[0] in "ZX", timeout=5, message="sleep to die of Ctrl-C"
    )
    term.expect(re.escape(PROMPT), after=at, timeout=5)  # the shell survived and prompts again
    assert term.proc.poll() is None
    # the shell still works
    at = len(term.output)
    term.type("echo still-$((6*7))\n")
    term.expect("still-42", after=at)
    term.type("exit 7\n")
    assert term.wait() == 7, term.output


def test_ctrl_c_on_a_foreground_main_gives_130(terminal, tmp_path):
    marker = tmp_path / "up"
    term = terminal(["--", "sh", "-c", f"touch {marker}; exec sleep 30"])
    wait_for(lambda: term.processes("sleep"), message="the main process to run")
    term.type("\x03")
    assert term.wait(10) == 130, term.output
    assert "trinit" in term.output  # trinit's own log lines share the terminal


def test_interactive_shell_exit_0(terminal):
    term = terminal(["--", "sh", "-i"])
    term.expect(re.escape(PROMPT))
    term.type("exit\n")
    assert term.wait() == 0, term.output


def test_main_owns_the_terminal_foreground(terminal, tmp_path):
    """tcgetpgrp on the terminal is the main's own process group while it runs."""
    out = tmp_path / "fg"
    script = (
        f"ps -o pgid= -p $$ > {out}.pg; ps -o tpgid= -p $$ > {out}.tpgid; mv {out}.pg {out}; exec sleep 30"
    )
    term = terminal(["--", "sh", "-c", script])
    wait_for(out.exists)  # moved into place after both were written
    assert out.read_text().split() == (tmp_path / "fg.tpgid").read_text().split()
    term.type("\x03")
    assert term.wait(10) == 130
