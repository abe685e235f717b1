"""Shared helpers for trinit's benchmarks: PID namespaces, /proc readings, the probe, output tables.

Every init under test runs as PID 1 of a fresh PID namespace (``unshare --pid --fork --mount-proc``), watched
from outside through /proc and a pidfd.  Every wait here is bounded; a namespace that is still alive when the
benchmark ends (or is interrupted) is killed through its init, which takes the whole namespace with it.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import math
import os
import platform
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

HERE = Path(__file__).resolve().parent
PROBE_SOURCE = HERE / "probe.c"
CLK_TCK = os.sysconf("SC_CLK_TCK")

T = TypeVar("T")


class BenchError(RuntimeError):
    """A measurement could not be taken (the init misbehaved, a wait ran out, a tool is missing)."""


# --------------------------------------------------------------------------------------------------- waiting


def poll_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.001) -> T:
    """Call ``check`` until it returns something other than None/False; raise BenchError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def wait_pidfd(pidfd: int, timeout: float) -> bool:
    """Wait until the process behind ``pidfd`` has exited; False if it still runs after ``timeout`` s."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(max(0, math.ceil(timeout * 1000))))


# --------------------------------------------------------------------------------------------------- /proc


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None


def thread_ids(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except (FileNotFoundError, ProcessLookupError):
        return []


def children(pid: int) -> list[int]:
    """Direct children of every thread of ``pid``, zombies included (they stay until reaped)."""
    kids: list[int] = []
    for tid in thread_ids(pid):
        text = _read(f"/proc/{pid}/task/{tid}/children")
        if text:
            kids.extend(int(k) for k in text.split())
    return kids


def comm(pid: int) -> str | None:
    text = _read(f"/proc/{pid}/comm")
    return text.strip() if text is not None else None


def proc_state(pid: int) -> str | None:
    text = _read(f"/proc/{pid}/stat")
    return text.rsplit(")", 1)[1].split()[0] if text else None


def rss_kb(pid: int) -> int | None:
    text = _read(f"/proc/{pid}/status")
    for line in (text or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the whole process (all threads, live and exited)."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def context_switches(pid: int) -> dict[int, int]:
    """Voluntary + involuntary context switches per live thread of ``pid``."""
    counts: dict[int, int] = {}
    for tid in thread_ids(pid):
        text = _read(f"/proc/{pid}/task/{tid}/status")
        if text is None:
            continue
        total = 0
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                total += int(value)
        counts[tid] = total
    return counts


@dataclass
class IdleCost:
    context_switches: int
    cpu_ms: float
    threads: int


def idle_cost(pid: int, seconds: float) -> IdleCost:
    """Context switches (all threads; a thread born in the window counts from 0) and CPU over ``seconds``."""
    before, cpu_before = context_switches(pid), cpu_seconds(pid)
    time.sleep(seconds)
    after, cpu_after = context_switches(pid), cpu_seconds(pid)
    if cpu_before is None or cpu_after is None:
        raise BenchError(f"pid {pid} exited during the idle window")
    switches = sum(n - before.get(tid, 0) for tid, n in after.items())
    return IdleCost(switches, (cpu_after - cpu_before) * 1000, len(after))


# --------------------------------------------------------------------------------------------------- namespaces

_live: set[Namespace] = set()


@dataclass(eq=False)
class Namespace:
    """``argv`` running as PID 1 of a new PID namespace; ``init_pid`` is its pid as seen from here."""

    argv: Sequence[str]
    log_dir: Path
    started_ns: int = 0
    init_pid: int = 0
    _unshare: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _pidfd: int = -1
    _log: Path | None = None

    def start(self, timeout: float = 10.0) -> Namespace:
        fd, log = tempfile.mkstemp(prefix="init-", suffix=".log", dir=self.log_dir)
        self._log = Path(log)
        self.started_ns = time.monotonic_ns()
        self._unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *self.argv],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
        )
        os.close(fd)
        _live.add(self)
        unshare = self._unshare

        def forked() -> int | None:
            if unshare.poll() is not None:
                raise BenchError(
                    f"{shlex.join(self.argv)} exited at once ({unshare.returncode}): {self.log_tail()}"
                )
            kids = children(unshare.pid)
            return kids[0] if kids else None

        self.init_pid = poll_until(forked, timeout, "unshare to fork the init", 0.0002)
        self._pidfd = os.pidfd_open(self.init_pid)
        return self

    def __enter__(self) -> Namespace:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()

    @property
    def pidfd(self) -> int:
        return self._pidfd

    def alive(self) -> bool:
        return self._pidfd >= 0 and not wait_pidfd(self._pidfd, 0)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, sig)

    def wait_exit(self, timeout: float) -> bool:
        """Wait for the init to exit (not for unshare); True if it did within ``timeout`` s."""
        return wait_pidfd(self._pidfd, timeout)

    def stop_ms(self, timeout: float = 10.0) -> float:
        """SIGTERM the init; ms until it has exited, or NaN if it had not after ``timeout`` s (then killed)."""
        sent = time.monotonic_ns()
        self.signal(signal.SIGTERM)
        if not self.wait_exit(timeout):
            self.kill()
            return math.nan
        took = (time.monotonic_ns() - sent) / 1e6
        self.kill()
        return took

    def exit_status(self, timeout: float = 10.0) -> int | None:
        """The status unshare passed on from the init (it exits with the init's code), or None on timeout."""
        assert self._unshare is not None
        try:
            return self._unshare.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """Make sure nothing of this namespace is left: killing its init kills every process in it."""
        if self._unshare is None:
            return
        if self._pidfd >= 0:
            if self.alive():
                self.signal(signal.SIGKILL)
                wait_pidfd(self._pidfd, 5)
            os.close(self._pidfd)
            self._pidfd = -1
        try:
            self._unshare.wait(5)
        except subprocess.TimeoutExpired:
            self._unshare.kill()
            self._unshare.wait(5)
        _live.discard(self)

    def log_tail(self, lines: int = 5) -> str:
        if self._log is None or not self._log.exists():
            return ""
        text = self._log.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(no output)"


def _kill_leftovers() -> None:
    for ns in list(_live):
        with contextlib.suppress(Exception):
            ns.kill()


atexit.register(_kill_leftovers)


def exit_on_sigterm() -> None:
    """Turn SIGTERM/SIGHUP to the benchmark into SystemExit, so leftovers get killed on the way out."""

    def handler(sig: int, _frame: object) -> None:
        raise SystemExit(128 + sig)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def require_root() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root: each init runs as PID 1 of a new PID namespace (unshare --pid). Try sudo.")
    if shutil.which("unshare") is None:
        sys.exit("unshare not found: run `sudo bash bench/setup.sh` (util-linux)")


# --------------------------------------------------------------------------------------------------- the probe


def build_probe() -> Path:
    """Compile bench/probe.c once per source version into a cache dir; return the binary."""
    source = PROBE_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for cache in (cache_root / "trinit-bench", Path(tempfile.gettempdir()) / "trinit-bench"):
        binary = cache / f"probe-{digest}"
        if binary.exists():
            return binary
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            sys.exit("no C compiler: run `sudo bash bench/setup.sh` (gcc)")
        partial = cache / f".probe-{digest}.{os.getpid()}"
        subprocess.run([cc, "-O2", "-Wall", "-o", str(partial), str(PROBE_SOURCE)], check=True)
        partial.replace(binary)
        return binary
    raise BenchError("no writable cache directory for the probe")


class Reports:
    """The read side of the FIFO the probe reports to: lines of ``<event> <monotonic ns>``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        # Opened before the probe exists, non-blocking: the probe's open for writing then never blocks.
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._buffer = b""
        self._events: list[tuple[str, int]] = []

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Reports:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self, timeout: float, pidfd: int = -1) -> bool:
        """Read what has arrived, waiting up to ``timeout`` s; False if the process behind ``pidfd`` is gone."""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        ready = dict(poller.poll(max(0, math.ceil(timeout * 1000))))
        if pidfd in ready and self._fd not in ready:
            return False
        if not ready:
            return True
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return True
        if not chunk:  # every writer has gone: nothing more will come
            time.sleep(min(timeout, 0.01))
            return True
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            event, _, stamp = line.decode().partition(" ")
            self._events.append((event, int(stamp)))
        return True

    def drain(self) -> list[tuple[str, int]]:
        """Every event that has arrived so far, without waiting."""
        self._fill(0)
        events, self._events = self._events, []
        return events

    def expect(self, event: str, timeout: float, ns: Namespace | None = None) -> int | None:
        """The time stamp of the next ``event`` (others are dropped), or None after ``timeout`` s.

        With ``ns``, give up as soon as that namespace's init has exited.
        """
        pidfd = ns.pidfd if ns is not None else -1
        deadline = time.monotonic() + timeout
        while True:
            while self._events:
                name, stamp = self._events.pop(0)
                if name == event:
                    return stamp
            left = deadline - time.monotonic()
            if left <= 0 or not self._fill(left, pidfd):
                return None


# --------------------------------------------------------------------------------------------------- reporting


def machine() -> dict[str, str]:
    model = "unknown CPU"
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith(("model name", "Hardware", "cpu model")):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpus": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def describe_machine(info: dict[str, str]) -> str:
    return f"{info['cpus']} CPUs ({info['cpu']}), Linux {info['kernel']}, Python {info['python']}"


def resolve_command(spec: str | None, name: str, suffix: Sequence[str] = ()) -> list[str] | None:
    """``spec`` split like a shell would, or ``name`` from PATH (or next to this Python) plus ``suffix``."""
    if spec:
        return shlex.split(spec)
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    return [found, *suffix] if found else None


def fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "timeout"
        if math.isinf(value):
            return "never"
        return f"{value:.{digits}f}"
    return str(value)


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])


def render_verdicts(verdicts: Sequence[tuple[str, str, bool | None]], markdown: bool) -> Iterator[str]:
    """Lines for ``(target, measured, met)`` triples; ``met`` None means not measured."""
    for target, measured, met in verdicts:
        mark = "n/a" if met is None else ("ok" if met else "MISSED")
        yield (
            f"- {mark}: {target} (measured {measured})" if markdown else f"  [{mark:>6}] {target}: {measured}"
        )
