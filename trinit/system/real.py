"""The thin layer over the operating system: spawn, signal, wait, prctl, the terminal.

Nothing outside ``trinit/system`` calls ``os.kill``, ``waitpid``, ``fork``/``exec``, ``prctl`` or
``tcsetpgrp``; the runtime takes an object with these methods as a parameter, so its logic
runs against :mod:`trinit.testing`'s fake in tests (both match
:class:`~trinit.system.protocol.OSLayer`). This module imports neither attrs nor trio, and
subprocess, resource and ctypes only inside the methods that need them: the fast start
builds a RealOS (subreaper, pdeathsig) before it spawns the main process.
"""

from __future__ import annotations

import errno
import os

from . import proc as tree
from .files import remove_if_ours, write_atomically
from .spawning import Spawning

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms before the main process starts.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal

    from .protocol import OSLayer
else:
    # The C module: `signal` builds enums (and imports enum, ~3.5 ms) before the main process starts,
    # and its pthread_sigmask makes a set of enums at each call (twice a spawn).
    import _signal

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


class RealOS(Spawning):
    """The real operating system, as the runtime sees it."""

    def __init__(self) -> None:
        super().__init__()
        self._devnull: int | None = None
        #: An open fd of each ready file trinit created: it removes only those.
        self._ready_made: dict[str, int] = {}
        self.pid = os.getpid()

    # -- identity and process-wide settings -------------------------------------------------

    @property
    def is_pid1(self) -> bool:
        return self.pid == 1

    def set_subreaper(self) -> None:
        """Adopt the orphans of our tree, as PID 1 would (PR_SET_CHILD_SUBREAPER)."""
        _prctl(PR_SET_CHILD_SUBREAPER, 1)

    def set_pdeathsig(self, sig: int) -> None:
        _prctl(PR_SET_PDEATHSIG, sig)

    def raise_nofile(self) -> None:
        """Raise our own soft limit of open files to the hard one; children keep the original."""
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            except (ValueError, OSError):
                return
            self._child_nofile = (soft, hard)

    def devnull(self) -> int:
        if self._devnull is None:
            self._devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        return self._devnull

    def pipe(self) -> tuple[int, int]:
        return os.pipe2(os.O_CLOEXEC)

    def close(self, fd: int) -> None:
        os.close(fd)

    def write_ready_file(self, path: str, content: bytes) -> None:
        fd = write_atomically(path, content)
        old = self._ready_made.pop(path, None)
        if old is not None:
            os.close(old)
        self._ready_made[path] = fd

    def remove_ready_file(self, path: str) -> None:
        """Remove ``path`` only if it is still the file trinit created (never what replaced it)."""
        fd = self._ready_made.pop(path, None)
        if fd is not None:
            remove_if_ours(path, fd)

    # -- signals ----------------------------------------------------------------------------

    def kill(self, pid: int, sig: int) -> None:
        os.kill(pid, sig)

    def killpg(self, pgid: int, sig: int) -> None:
        os.killpg(pgid, sig)

    def group_alive(self, pgid: int) -> bool:
        """True while any process (a zombie included) is in process group ``pgid`` (``killpg(pgid, 0)``)."""
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # a member runs as another user: it is there
            return True
        return True

    def kill_all(self, sig: int, spare_groups: frozenset[int] = frozenset()) -> int:
        """Signal every process left: the whole namespace as its PID 1, else our descendants only.

        ``kill(-1)`` from the host's root would hit every process of the machine, so it is
        used only when we are PID 1 of a PID namespace. Members of ``spare_groups`` (process
        groups that already had their stop signal as a group) are left out, one pid at a time.
        Returns how many were signalled (-1 for the namespace-wide kill).
        """
        pids = tree.namespace_pids(self.pid) if self.is_pid1 and spare_groups else None
        if self.is_pid1 and pids is None:
            try:
                os.kill(-1, sig)
            except ProcessLookupError:
                return 0
            return -1
        if pids is None:
            try:
                pids = self.descendants()
            except OSError:  # no /proc: nothing can be found (the sweep says so)
                return 0
        count = 0
        for pid in pids:
            try:
                if spare_groups and os.getpgid(pid) in spare_groups:
                    continue
                os.kill(pid, sig)
                count += 1
            except ProcessLookupError:
                pass
        return count

    def descendants(self) -> list[int]:
        """Our descendants (children, grandchildren, …), from /proc; OSError without /proc."""
        return tree.descendants(self.pid)

    def belongs_to(self, pid: int, root: int) -> bool:
        """``pid`` is ``root``, its descendant, or in its process group (from /proc)."""
        return tree.belongs_to(pid, root)

    def describe(self, pid: int) -> str:
        """``pid 7 (sleep 1000)``: a process for a log line, from /proc."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            return f"pid {pid}"
        text = " ".join(a.decode(errors="replace") for a in argv if a)
        return f"pid {pid} ({text[:60]}{'…' if len(text) > 60 else ''})" if text else f"pid {pid}"

    # -- waiting ----------------------------------------------------------------------------

    def wait_any(self) -> tuple[int, int] | None:
        """One exited child (pid, raw status), None if none has exited yet.

        Raises ChildProcessError when there are no children at all. Only the reaper of
        init mode calls this: it is the single owner of ``waitpid(-1)``.
        """
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except InterruptedError:  # pragma: no cover - PEP 475 retries already
                continue
            return None if pid == 0 else (pid, status)

    def pidfd_open(self, pid: int) -> int:
        return os.pidfd_open(pid)

    def wait_pidfd(self, pidfd: int) -> int | None:
        """Reap the child behind ``pidfd`` if it has exited: its raw wait status, else None."""
        result = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
        if result is None:
            return None
        if result.si_code == os.CLD_EXITED:
            return (result.si_status & 0xFF) << 8
        return result.si_status & 0x7F

    def pidfd_send_signal(self, pidfd: int, sig: int) -> None:
        _signal.pidfd_send_signal(pidfd, sig)

    def last_resort_stop(self, pid: int | None, budget: float = 5.0) -> None:
        """Outside trio, after trinit itself failed: TERM ``pid``, wait for every child (on
        SIGCHLD, bounded by ``budget``), then SIGKILL what is left, so nothing outlives us."""
        import time

        if pid is not None:
            try:
                os.kill(pid, _signal.SIGTERM)
            except ProcessLookupError:
                pass
        _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGCHLD})
        deadline = time.monotonic() + budget
        while True:
            try:
                while self.wait_any() is not None:
                    pass
            except ChildProcessError:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                break
            _signal.sigtimedwait({_signal.SIGCHLD}, left)
        self.kill_all(_signal.SIGKILL)

    # -- the terminal -----------------------------------------------------------------------

    def give_terminal(self, pgid: int) -> bool:
        """Make ``pgid`` the terminal's foreground group, so `docker run -it` shells get Ctrl-C."""
        return _tcsetpgrp(pgid)

    def take_terminal(self) -> None:
        _tcsetpgrp(os.getpgrp())


#: mypy checks that RealOS is an OSLayer (a missing or mistyped method fails the check).
_IS_OS_LAYER: type[OSLayer] = RealOS


def _tcsetpgrp(pgid: int) -> bool:
    try:
        if not os.isatty(0):
            return False
    except OSError:
        return False
    old = _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGTTOU})
    try:
        os.tcsetpgrp(0, pgid)
    except OSError as exc:
        if exc.errno in (errno.ENOTTY, errno.ENXIO, errno.EPERM, errno.EINVAL, errno.ESRCH):
            return False
        raise
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, old)
    return True


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere nothing):
    a config of 10,000 processes leaves ~15 MB of its parse free but resident."""
    import ctypes

    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def _prctl(option: int, value: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:  # pragma: no cover - needs a broken kernel
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
