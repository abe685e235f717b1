"""A small harness: trinit as PID 1 of a fresh PID namespace, or as a plain child of the test.

    unshare --pid --fork --mount-proc TRINIT ARGS...

Everything is watched from outside: trinit's pid is the child of the unshare process, its
children and zombies come from /proc, its log from the stderr file. Every wait is bounded;
whatever a test leaves running is killed when the harness closes.

Child programs live in ``children/`` and are run with ``sys.executable``; they report through
files in the test's tmp_path, and the tests synchronize on those files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
CHILDREN = HERE / "children"
PY = sys.executable
#: Generous bound for anything that should take well under a second.
SLOW = 15.0


def trinit_path() -> str:
    script = Path(sys.executable).with_name("trinit")
    if script.exists():
        return str(script)
    found = shutil.which("trinit")
    assert found, "the trinit console script is not installed"
    return found


TRINIT = trinit_path()


def require_namespaces() -> None:
    """tests/conftest.py's check: skip on a laptop, fail under CI (TRINIT_REQUIRE_NAMESPACES)."""
    try:
        from conftest import require_namespaces as check  # tests/conftest.py (import-mode prepend)
    except ImportError:  # another import mode: the same rule, restated
        if os.geteuid() == 0 and shutil.which("unshare"):
            return
        if os.environ.get("TRINIT_REQUIRE_NAMESPACES"):
            pytest.fail(
                "PID-1 test cannot run here: needs root and unshare (TRINIT_REQUIRE_NAMESPACES is set)"
            )
        pytest.skip("needs root and unshare")
    check()


def child(name: str, *args: object) -> list[str]:
    """argv running children/NAME.py with the test's interpreter."""
    return [PY, str(CHILDREN / f"{name}.py"), *(str(a) for a in args)]


def wait_for(what: Callable[[], Any], timeout: float = SLOW, message: str | Callable[[], str] = "") -> Any:
    """Poll ``what`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        got = what()
        if got:
            return got
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            pytest.fail(f"timed out after {timeout} s waiting for {text or what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRINIT_") and k != "PYTHONFAULTHANDLER"}
    env.update(extra or {})
    return env


# --- /proc, from outside ---------------------------------------------------------------


def read_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict ({} if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def state(pid: int) -> str:
    """One letter (R, S, Z, T, ...), or "" if the pid is gone."""
    return read_status(pid).get("State", " ")[:1].strip()


def alive(pid: int) -> bool:
    """Exists and is not a zombie."""
    return state(pid) not in ("", "Z", "X")


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(p) for p in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


def descendants_of(pid: int) -> list[int]:
    out: list[int] = []
    todo = children_of(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children_of(p)
    return out


def pids_with(marker: str) -> list[int]:
    """Live (non-zombie) processes anywhere whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read() and alive(int(entry)):
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
    return found


def sig_mask(hex_text: str) -> set[int]:
    """The signal numbers in a SigBlk/SigIgn/SigCgt hex mask."""
    bits = int(hex_text, 16)
    return {n for n in range(1, 65) if bits & (1 << (n - 1))}


def ns_pid_of(pid: int) -> int:
    """The pid as seen inside the innermost PID namespace of the process."""
    return int(read_status(pid)["NSpid"].split()[-1])


# --- the harness -----------------------------------------------------------------------


class Trinit:
    """One trinit run; see :meth:`Harness.start`."""

    def __init__(
        self, proc: subprocess.Popen[bytes], *, pid1: bool, stderr_path: Path, stdout_path: Path | None
    ):
        self.proc = proc
        self.pid1 = pid1
        self.stderr_path = stderr_path
        self.stdout_path = stdout_path
        self.started_at = time.monotonic()
        self._pid: int | None = None if pid1 else proc.pid
        self.returncode: int | None = None
        self.ended_at: float | None = None

    @property
    def pid(self) -> int:
        """trinit's pid (in the test's namespace): the unshare process's only child."""
        if self._pid is None:
            found = wait_for(
                lambda: children_of(self.proc.pid) or self.proc.poll() is not None,
                message=lambda: f"the child of unshare (pid {self.proc.pid})",
            )
            assert isinstance(found, list), f"unshare exited with {self.proc.returncode}: {self.stderr()}"
            self._pid = found[0]
        return self._pid

    def wait_exec(self) -> int:
        """trinit's pid, once the unshare child has exec'd trinit (it is no longer unshare).

        (Its cmdline names trinit already before the exec: it is unshare's own argv.)
        """
        pid = self.pid
        unshare = os.path.realpath(shutil.which("unshare") or "/usr/bin/unshare")

        def execd() -> bool:
            try:
                return os.readlink(f"/proc/{pid}/exe") != unshare
            except (FileNotFoundError, ProcessLookupError):
                return True  # already gone: the caller will see why

        wait_for(execd, message="trinit to be exec'd")
        return pid

    def wait_started(self, timeout: float = SLOW) -> None:
        """Until trinit has blocked the signals it handles (the first thing its CLI does)."""
        pid = self.wait_exec()

        def blocked() -> bool:
            if not self.running():
                pytest.fail(f"trinit exited ({self.proc.returncode}) while starting:\n{self.stderr()}")
            status = read_status(pid)
            # SIGUSR2: handled by trinit, and unlike TERM/INT never blocked by unshare itself
            return signal.SIGUSR2 in sig_mask(status.get("SigBlk", "0")) | sig_mask(status.get("SigCgt", "0"))

        wait_for(blocked, timeout, message="trinit to block its signals")

    def wait_handling(self, timeout: float = SLOW, *, logged: bool = True) -> None:
        """Until trinit is up: its signal handlers are installed and the main process is adopted
        (the "started" log line). Tests of anything but the start wait for this first."""
        pid = self.wait_exec()

        def up() -> bool:
            if not self.running():
                pytest.fail(f"trinit exited ({self.proc.returncode}) while starting:\n{self.stderr()}")
            status = read_status(pid)
            caught = signal.SIGTERM in sig_mask(status.get("SigCgt", "0"))
            return caught and (not logged or "started" in self.stderr())

        wait_for(up, timeout, message="trinit to handle signals")

    def send(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float = SLOW) -> int:
        """trinit's exit code (unshare passes it on); fails the test after ``timeout``."""
        if self.returncode is None:
            try:
                self.returncode = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pytest.fail(f"trinit did not exit within {timeout} s; its log:\n{self.stderr()}")
            self.ended_at = time.monotonic()
        return self.returncode

    def running(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        assert self.stdout_path is not None
        return self.stdout_path.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        return self.stderr().splitlines()

    def children(self) -> list[int]:
        return children_of(self.pid)

    def zombies(self) -> list[int]:
        """trinit's children that have exited but are not reaped yet."""
        return [p for p in self.children() if state(p) == "Z"]

    def kill(self) -> None:
        """Last resort: SIGKILL trinit and everything under it."""
        if self.proc.poll() is None:
            pids = ([self._pid] if self._pid else []) + descendants_of(self.proc.pid)
            if not self.pid1:
                pids.append(self.proc.pid)
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.kill()
                self.proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


def needs_own_socket(args: list[str], env: dict[str, str] | None) -> bool:
    """A config serves /run/trinit/control.sock by default: a test run gets one in its own folder
    instead, unless the test sets TRINIT_CONTROL_SOCKET or its config has a control_socket key."""
    if "TRINIT_CONTROL_SOCKET" in (env or {}):
        return False
    for i, arg in enumerate(args[:-1]):
        if arg in ("-c", "--config"):
            path = Path(args[i + 1])
            if not path.is_file():  # a FIFO: reading it here would take the config from trinit
                return True
            try:
                return "control_socket" not in path.read_text(errors="replace")
            except OSError:
                return True
    return True


def _config_mode(args: list[str]) -> bool:
    """Whether trinit's own options (before the command) include -c/--config."""
    with_value = {
        "-c",
        "--config",
        "-t",
        "--stop-timeout",
        "-p",
        "--pdeathsig",
        "-e",
        "--success-exit",
        "-r",
        "--rewrite",
        "--shutdown-timeout",
        "--log-format",
        "--control-socket",
    }
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--" or not a.startswith("-"):
            return False
        if a in ("-c", "--config") or a.startswith("--config="):
            return True
        i += 2 if a in with_value else 1
    return False


class Harness:
    """Starts trinit runs in ``tmp``; :meth:`close` kills whatever is left."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runs: list[Trinit] = []
        self.extra_pids: list[int] = []
        self._count = 0

    def start(
        self,
        args: Iterable[str],
        *,
        pid1: bool = True,
        env: dict[str, str] | None = None,
        stdin: Any = subprocess.DEVNULL,
        capture_stdout: bool = True,
        preexec_fn: Callable[[], None] | None = None,
        lifecycle: bool = True,
    ) -> Trinit:
        """Run trinit with ``args``. Zero-config runs get ``-v`` (trinit is as quiet as tini by
        default, and the harness waits on lifecycle lines) unless ``lifecycle=False``."""
        if pid1:
            require_namespaces()
        args = list(args)
        config_mode = _config_mode(args) or bool((env or {}).get("TRINIT_CONFIG"))
        if lifecycle and not config_mode:
            args.insert(0, "-v")
        self._count += 1
        if config_mode and needs_own_socket(args, env):
            env = {**(env or {}), "TRINIT_CONTROL_SOCKET": str(self.tmp / f"ctl-{self._count}.sock")}
        stderr_path = self.tmp / f"trinit-{self._count}.stderr"
        stdout_path = self.tmp / f"trinit-{self._count}.stdout" if capture_stdout else None
        argv = [TRINIT, *args]
        if pid1:
            argv = ["unshare", "--pid", "--fork", "--mount-proc", *argv]
        with open(stderr_path, "wb") as err, open(stdout_path or os.devnull, "wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=out,
                stderr=err,
                env=clean_env(env),
                cwd=self.tmp,
                preexec_fn=preexec_fn,
            )
        run = Trinit(proc, pid1=pid1, stderr_path=stderr_path, stdout_path=stdout_path)
        self.runs.append(run)
        return run

    def close(self) -> None:
        for run in self.runs:
            run.kill()
        for p in self.extra_pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- fixtures (module-level assignments in the test modules: `h = harness_fixture()`) ----


def harness_fixture() -> Any:
    """A fixture giving a :class:`Harness` in tmp_path that kills its leftovers afterwards."""

    @pytest.fixture
    def harness(tmp_path: Path) -> Any:
        h = Harness(tmp_path)
        try:
            yield h
        finally:
            h.close()

    return harness


def mode_fixture() -> Any:
    """A fixture parametrized over trinit as PID 1 (needs root + unshare) and as a plain child."""

    @pytest.fixture(params=[True, False], ids=["pid1", "child"])
    def as_pid1(request: pytest.FixtureRequest) -> bool:
        if request.param:
            request.getfixturevalue("pid1")  # tests/conftest.py: skip on a laptop, fail in CI
        return bool(request.param)

    return as_pid1


# --- what the recorder child reports -----------------------------------------------------


class Recorder:
    """Reads the files children/recorder.py writes for the process NAME in ``folder``."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name

    def argv(self, *options: str) -> list[str]:
        return child("recorder", self.folder, self.name, *options)

    def path(self, suffix: str) -> Path:
        return self.folder / f"{self.name}.{suffix}"

    def wait_ready(
        self, run: Trinit | None = None, timeout: float = SLOW, *, handling: bool = True
    ) -> dict[str, Any]:
        """Until this recorder listens (and, given ``run``, trinit is up too: see wait_handling)."""

        def ready() -> bool:
            if run is not None and not run.running():
                pytest.fail(
                    f"trinit exited ({run.proc.returncode}) before {self.name} was ready:\n{run.stderr()}"
                )
            return self.path("ready").exists()

        wait_for(ready, timeout, message=f"{self.name} to be ready")
        if run is not None and handling:
            run.wait_handling(timeout)
        return self.info()

    def info(self) -> dict[str, Any]:
        data = json.loads(self.path("info").read_text())
        assert isinstance(data, dict)
        return data

    def signals(self) -> list[str]:
        try:
            text = self.path("log").read_text()
        except FileNotFoundError:
            return []
        return [line.split()[0] for line in text.splitlines() if line.strip()]

    def times(self) -> list[tuple[str, int]]:
        text = self.path("log").read_text()
        return [(a, int(b)) for a, b in (line.split() for line in text.splitlines() if line.strip())]

    def wait_signals(self, count: int, timeout: float = SLOW) -> list[str]:
        """The signals recorded, once there are at least ``count``."""
        return list(
            wait_for(
                lambda: len(self.signals()) >= count and self.signals(),
                timeout,
                message=lambda: f"{count} signal(s) recorded by {self.name}; got {self.signals()}",
            )
        )

    def cleaned(self) -> bool:
        return self.path("cleaned").exists()


def signame(sig: int) -> str:
    if signal.SIGRTMIN <= sig <= signal.SIGRTMAX:
        return f"SIGRTMIN+{sig - signal.SIGRTMIN}"
    return signal.Signals(sig).name


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
