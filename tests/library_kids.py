"""What the library tests share: a recording child script and ways to run and watch it."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

import trinit
from trinit import Config, ProcessSpec

PY = sys.executable
REPO = Path(__file__).resolve().parent.parent
TERM, KILL, INT, HUP = signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGHUP

#: A supervised child: records its start, every signal it gets and its exit in a shared file
#: (one O_APPEND write per line), prints "ready" once its handlers are in place.
#: argv: NAME RECORD [term_delay=S] [term_code=N] [usr1_code=N] [ignore_term=1]
CHILD = r"""
import os, signal, sys, time

name, record = sys.argv[1], sys.argv[2]
opts = dict(arg.split("=", 1) for arg in sys.argv[3:])
term_delay = float(opts.get("term_delay", "0"))
term_code = int(opts.get("term_code", "0"))
usr1_code = int(opts.get("usr1_code", "3"))
ignore_term = opts.get("ignore_term") == "1"
fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

def rec(what):
    os.write(fd, f"{name} {what} {os.getpid()} {time.monotonic_ns()}\n".encode())

def on_signal(signum, frame):
    rec(signal.Signals(signum).name[3:])
    if signum in (signal.SIGTERM, signal.SIGINT) and not ignore_term:
        time.sleep(term_delay)
        rec("exit")
        os._exit(term_code)
    if signum == signal.SIGUSR1:
        rec("exit")
        os._exit(usr1_code)

for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, on_signal)
rec("start")
print("ready", flush=True)
while True:
    signal.pause()
"""


class Children:
    """Builds ProcessSpecs running :data:`CHILD` and reads what the children recorded."""

    def __init__(self, tmp_path: Path) -> None:
        self.script = tmp_path / "child.py"
        self.script.write_text(CHILD)
        self.record = tmp_path / "record.txt"
        self.record.touch()

    def argv(self, name: str, **opts: object) -> list[str]:
        return [PY, str(self.script), name, str(self.record), *(f"{k}={v}" for k, v in opts.items())]

    def spec(self, name: str, *, opts: dict[str, object] | None = None, **keys: Any) -> ProcessSpec:
        keys.setdefault("ready", {"log": "^ready$", "interval": 0.01})
        keys.setdefault("output", "null")
        return ProcessSpec(name=name, command=self.argv(name, **(opts or {})), **keys)

    def records(self) -> list[tuple[str, str, int]]:
        """(name, what, pid) per line, in the order written."""
        out = []
        for line in self.record.read_text().splitlines():
            name, what, pid, _ns = line.split()
            out.append((name, what, int(pid)))
        return out

    def events(self, what: str | Sequence[str]) -> list[tuple[str, str]]:
        whats = {what} if isinstance(what, str) else set(what)
        return [(n, w) for n, w, _ in self.records() if w in whats]

    def got(self, name: str, what: str, pid: int | None = None) -> bool:
        return any(n == name and w == what and (pid is None or p == pid) for n, w, p in self.records())


def kids_fixture() -> Any:
    """A fixture giving the :class:`Children` of one test, in its tmp_path."""

    @pytest.fixture
    def kids(tmp_path: Path) -> Children:
        return Children(tmp_path)

    return kids


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` (real time) until it holds."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def alive(pid: int) -> bool:
    """True while ``pid`` exists at all (a zombie counts: it was not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_gone(pids: Sequence[int]) -> None:
    left = [pid for pid in pids if alive(pid)]
    assert not left, f"processes outlived the block: {left} ({[proc_stat(p) for p in left]})"


def proc_stat(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().strip()
    except OSError:
        return "?"


def live_pids(sup: trinit.Supervisor) -> list[int]:
    return [st.pid for st in sup.status().values() if st.pid is not None]


def chain(kids: Children, **stop: object) -> Config:
    """db <- cache <- app (app after cache after db); each takes 0.2 s to stop."""
    opts = {"term_delay": 0.2, **stop}
    return Config(
        processes=[
            kids.spec("db", opts=opts),
            kids.spec("cache", opts=opts, after=["db"]),
            kids.spec("app", opts=opts, after=["cache"]),
        ],
        shutdown_timeout=20,
    )


REVERSE_ORDER = [
    ("app", "TERM"),
    ("app", "exit"),
    ("cache", "TERM"),
    ("cache", "exit"),
    ("db", "TERM"),
    ("db", "exit"),
]


# ================================================================================ the handle


PR_GET_CHILD_SUBREAPER = 37


def subreaper() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    value = ctypes.c_int(-1)
    assert libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) == 0
    return value.value


def handlers() -> dict[int, object]:
    return {s: signal.getsignal(s) for s in signal.valid_signals() if s not in (KILL, signal.SIGSTOP)}


def write_script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "prog.py"
    path.write_text(textwrap.dedent(body))
    return path


async def run_script(
    script: Path, kids: Children, *, ready: Callable[[], bool], sig: int | None, timeout: float = 30
) -> tuple[int, str]:
    """Run ``script``; once ``ready()``, send it ``sig``; its code and output (stdout, then stderr).

    The two streams go to separate files: the script's prints and trinit's log lines come
    from different writers and must not interleave mid-line in the assertions.
    """
    out, err = script.with_suffix(".out"), script.with_suffix(".err")
    with out.open("wb") as f, err.open("wb") as g:
        proc = await trio.lowlevel.open_process(
            [PY, str(script), str(kids.script), str(kids.record)], stdout=f, stderr=g
        )
    try:
        with trio.fail_after(timeout):
            await until(lambda: ready() or proc.poll() is not None, timeout=timeout, what="the script")
            if sig is not None:
                proc.send_signal(sig)
            code = await proc.wait()
    finally:
        if proc.returncode is None:  # pragma: no cover - only when the test fails
            proc.kill()
            await proc.wait()
    return code, out.read_text() + err.read_text()
