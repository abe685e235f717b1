"""The fake OS layer: scripted processes on trio's clock, every call recorded."""

from __future__ import annotations

import errno as _errno
import os
import signal as _signal
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import trio

from ..system.reaper import Reaper
from ._behaviour import Behaviour, Script, exit_status
from ._records import FakeProcess, Records, Sent, Spawn

if TYPE_CHECKING:
    from ..config.hardening import Hardening
    from ..config.model import Config
    from ..io.log import Logger
    from ..system.environ import Credentials
    from ..system.protocol import OSLayer


def _now() -> float:
    return trio.current_time()


class FakeOS(Records):
    """The :class:`~trinit.system.protocol.OSLayer`, faked: scripted processes on trio's clock.

    ``behaviours`` maps a key to a :class:`Behaviour`, or to a list of them used one per
    start (the last one repeats). A spawn's key is the first of these that is in
    ``behaviours``: the name of the process in ``config`` whose command it is, the whole
    command line joined by spaces, ``argv[0]``, and the basename of ``argv[0]``. Spawns
    with no key run ``default``.

    Every spawn is recorded in :attr:`spawns`, every signal in :attr:`signals`, and the
    process-wide calls (``set_subreaper`` ...) in :attr:`calls`. Nothing reaches the real
    OS except :meth:`pipe` and :meth:`close`: real pipes, so output pumps can read them.
    The ready file is only recorded, in :attr:`ready_files`.
    """

    def __init__(
        self,
        behaviours: Mapping[str, Script] | None = None,
        *,
        config: Config | None = None,
        default: Behaviour | None = None,
        pid1: bool = False,
        tty: bool = False,
        first_pid: int = 100,
    ) -> None:
        self.behaviours: dict[str, Script] = dict(behaviours or {})
        self.default = default or Behaviour()
        self.pid = 1 if pid1 else 4242
        self.tty = tty
        self.spawns: list[Spawn] = []
        #: The size of each batch :meth:`spawn_plain` was given, in order.
        self.batches: list[int] = []
        self.signals: list[Sent] = []
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.processes: dict[int, FakeProcess] = {}
        self.reaper: Reaper | None = None
        self.devnull_fd = 1_000_000
        #: The ready files that exist now (path -> content).
        self.ready_files: dict[str, bytes] = {}
        #: The fds :meth:`pipe` made that are not closed yet.
        self.open_fds: set[int] = set()
        self._names: dict[tuple[str, ...], str] = {}
        if config is not None:
            for spec in config.processes:
                self._names.setdefault(tuple(spec.command), spec.name)
        self._attempts: dict[str, int] = {}
        self._next_pid = first_pid
        self._exits: deque[tuple[int, int]] = deque()
        self._pidfds: dict[int, int] = {}
        self._next_fd = 2_000_000

    # -- set-up and queries ---------------------------------------------------------------

    def make_watcher(self, log: Logger | None = None) -> Reaper:
        """The reaper to give the supervisor (``watcher=``); the fake wakes it on every exit."""
        self.reaper = Reaper(self, log)
        return self.reaper

    def adopt(self, behaviour: Behaviour | None = None, *, name: str = "orphan") -> FakeProcess:
        """Add a process that is not ours but was re-parented to us (a daemon's child, say).

        It shows in :meth:`descendants`, gets ``kill_all``'s signals, and its exit reaches
        the reaper as an orphan's. Call it inside trio.
        """
        return self._start(name, (name,), behaviour or self.default, 1, adopted=True)

    # -- identity and process-wide settings ---------------------------------------------------

    @property
    def is_pid1(self) -> bool:
        return self.pid == 1

    def set_subreaper(self) -> None:
        self.calls.append(("set_subreaper", ()))

    def set_pdeathsig(self, sig: int) -> None:
        self.calls.append(("set_pdeathsig", (sig,)))

    def raise_nofile(self) -> None:
        self.calls.append(("raise_nofile", ()))

    def devnull(self) -> int:
        """A stand-in fd number; it is only passed back to :meth:`spawn`."""
        return self.devnull_fd

    # -- files and pipes ----------------------------------------------------------------------

    def pipe(self) -> tuple[int, int]:
        """A real close-on-exec pipe (a fake child never writes to it: the test may)."""
        r, w = os.pipe2(os.O_CLOEXEC)
        self.open_fds.update((r, w))
        return r, w

    def close(self, fd: int) -> None:
        """Close a real fd from :meth:`pipe`, or forget a stand-in pidfd."""
        if self._pidfds.pop(fd, None) is None:
            os.close(fd)
            self.open_fds.discard(fd)

    def write_ready_file(self, path: str, content: bytes) -> None:
        self.calls.append(("write_ready_file", (path,)))
        self.ready_files[path] = content

    def remove_ready_file(self, path: str) -> None:
        self.calls.append(("remove_ready_file", (path,)))
        self.ready_files.pop(path, None)

    # -- spawning -----------------------------------------------------------------------------

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None = None,
        creds: Credentials | None = None,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        inherit_environ: bool = False,
        hardening: Hardening | None = None,
        move_fd: tuple[int, int] | None = None,
        pid_env: str | None = None,
    ) -> int:
        """Start a scripted process; raises OSError like RealOS when its script says so.

        ``hardening`` is only recorded (in :attr:`Spawn.hardening`); ``move_fd``: the fake
        process keeps a copy of that fd as ``fds[N]`` (a test may write to it as the program
        would); ``pid_env``: set in the recorded ``env``.
        """
        args = tuple(argv)
        key = self._key(args)
        attempt = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempt
        behaviour = self._behaviour(key, attempt)
        error = behaviour.spawn_error
        proc = None if error is not None else self._start(key, args, behaviour, attempt)
        env = dict(env)
        if proc is not None and move_fd is not None:
            proc.fds[move_fd[1]] = os.dup(move_fd[0])
            self.open_fds.add(proc.fds[move_fd[1]])
        if proc is not None and pid_env is not None:
            env[pid_env] = str(proc.pid)
        self.spawns.append(
            Spawn(
                _now(),
                key,
                attempt,
                args,
                env,
                cwd,
                creds,
                stdin,
                stdout,
                stderr,
                pid=None if proc is None else proc.pid,
                error=error,
                hardening=hardening,
            )
        )
        if proc is None:
            assert error is not None
            raise OSError(error, os.strerror(error), args[0] if args else "")
        return proc.pid

    def spawn_plain(
        self,
        jobs: Sequence[tuple[Sequence[str], tuple[int | None, int | None, int | None]]],
        *,
        env: Mapping[str, str],
    ) -> list[int | OSError]:
        """:meth:`spawn` for each, in order (recorded as one batch in :attr:`batches`)."""
        self.batches.append(len(jobs))
        results: list[int | OSError] = []
        for argv, (stdin, stdout, stderr) in jobs:
            try:
                results.append(self.spawn(argv, env=env, stdin=stdin, stdout=stdout, stderr=stderr, inherit_environ=True))
            except OSError as exc:
                results.append(exc)
        return results

    def _key(self, argv: tuple[str, ...]) -> str:
        name = self._names.get(argv)
        candidates = [c for c in (name, " ".join(argv)) if c]
        if argv:
            candidates += [argv[0], os.path.basename(argv[0])]
        for candidate in candidates:
            if candidate in self.behaviours:
                return candidate
        return name or (argv[0] if argv else "?")

    def _behaviour(self, key: str, attempt: int) -> Behaviour:
        script = self.behaviours.get(key)
        if script is None:
            return self.default
        if isinstance(script, Behaviour):
            return script
        if not script:
            return self.default
        return script[min(attempt, len(script)) - 1]

    def _start(
        self, name: str, argv: tuple[str, ...], behaviour: Behaviour, attempt: int, *, adopted: bool = False
    ) -> FakeProcess:
        pid = self._next_pid
        self._next_pid += 1
        proc = FakeProcess(pid, name, argv, behaviour, attempt, _now(), pid, adopted=adopted)
        self.processes[pid] = proc
        if behaviour.runs is not None:
            self._schedule(proc, behaviour.runs, exit_status(behaviour.code, behaviour.signal))
        return proc

    def release(self, pid: int, status: int) -> None:
        """Nothing to release: there is no Popen object behind a fake pid."""

    # -- time and exits -----------------------------------------------------------------------

    def _schedule(self, proc: FakeProcess, delay: float, status: int) -> None:
        """End ``proc`` with ``status`` after ``delay`` seconds, unless it ends sooner."""
        when = _now() + max(delay, 0.0)
        if not proc.alive or (proc._due is not None and proc._due <= when):
            return
        proc._due = when
        proc._due_status = status
        proc._generation += 1
        trio.lowlevel.spawn_system_task(
            self._end_at, proc, proc._generation, when, name=f"fake process {proc.pid} ({proc.name})"
        )

    async def _end_at(self, proc: FakeProcess, generation: int, when: float) -> None:
        if when > _now():
            await trio.sleep_until(when)
        if proc.alive and proc._generation == generation:
            self._end(proc, proc._due_status)

    def _end(self, proc: FakeProcess, status: int) -> None:
        for fd in proc.fds.values():
            self.close(fd)
        proc.fds.clear()
        proc.status = status
        proc.exited_at = _now()
        self._exits.append((proc.pid, status))
        if self.reaper is not None:
            self.reaper.reap()

    # -- signals ------------------------------------------------------------------------------

    def _deliver(self, proc: FakeProcess, sent: Sent) -> None:
        proc.received.append(sent)
        if not proc.alive or sent.signal == 0:
            return
        how = proc.behaviour.reaction(sent.signal)
        if how is None:
            return
        if how.code is not None:
            status = exit_status(how.code)
        else:
            status = exit_status(signal=how.signal or sent.signal)
        self._schedule(proc, 0.0 if sent.signal == _signal.SIGKILL else how.delay, status)

    def _lookup(self, pid: int) -> FakeProcess:
        proc = self.processes.get(pid)
        if proc is None or proc.reaped:
            raise ProcessLookupError(_errno.ESRCH, os.strerror(_errno.ESRCH))
        return proc

    def kill(self, pid: int, sig: int) -> None:
        proc = self._lookup(pid)
        sent = Sent(_now(), pid, sig, name=proc.name, via="kill")
        if sig != 0:
            self.signals.append(sent)
        self._deliver(proc, sent)

    def killpg(self, pgid: int, sig: int) -> None:
        members = [p for p in self.processes.values() if p.pgid == pgid and not p.reaped]
        if not members:
            raise ProcessLookupError(_errno.ESRCH, os.strerror(_errno.ESRCH))
        leader = self.processes.get(pgid)
        sent = Sent(_now(), pgid, sig, group=True, name=leader.name if leader else None, via="killpg")
        if sig != 0:
            self.signals.append(sent)
        for proc in members:
            self._deliver(proc, sent)

    def group_alive(self, pgid: int) -> bool:
        """True while a process of group ``pgid`` is not reaped (set ``pgid`` on an adopted one to
        put it in a group, as a pre-fork server's workers are)."""
        return any(p.pgid == pgid and not p.reaped for p in self.processes.values())

    def last_resort_stop(self, pid: int | None, budget: float = 5.0) -> None:
        """Recorded only: the real one blocks outside trio, which a fake run never needs."""
        self.calls.append(("last_resort_stop", (pid,)))

    def describe(self, pid: int) -> str:
        proc = self.processes.get(pid)
        return f"pid {pid} ({proc.name})" if proc is not None else f"pid {pid}"

    def kill_all(self, sig: int, spare_groups: frozenset[int] = frozenset()) -> int:
        """Signal every process not yet reaped (but the ``spare_groups``); as PID 1 returns -1, like RealOS."""
        members = [p for p in self.processes.values() if not p.reaped and p.pgid not in spare_groups]
        sent = Sent(_now(), -1, sig, everyone=True, via="kill_all")
        self.signals.append(sent)
        for proc in members:
            self._deliver(proc, sent)
        if self.is_pid1:
            return -1 if members else 0
        return len(members)

    def descendants(self) -> list[int]:
        """Every process not yet reaped (a zombie still shows in /proc)."""
        return [p.pid for p in self.processes.values() if not p.reaped]

    def belongs_to(self, pid: int, root: int) -> bool:
        """``pid`` is ``root`` or in its process group (set ``pgid`` on an adopted process)."""
        proc = self.processes.get(pid)
        return pid == root or (proc is not None and not proc.reaped and proc.pgid == root)

    # -- waiting ------------------------------------------------------------------------------

    def wait_any(self) -> tuple[int, int] | None:
        """One ended process (pid, raw status); None while some run; ChildProcessError if none is left."""
        while self._exits:
            pid, status = self._exits.popleft()
            proc = self.processes[pid]
            if proc.reaped:  # taken through its pidfd already
                continue
            proc.reaped = True
            return pid, status
        if any(p.alive for p in self.processes.values()):
            return None
        raise ChildProcessError(_errno.ECHILD, os.strerror(_errno.ECHILD))

    def pidfd_open(self, pid: int) -> int:
        """A stand-in fd number (not a real fd: trio cannot wait on it)."""
        self._lookup(pid)
        fd = self._next_fd
        self._next_fd += 1
        self._pidfds[fd] = pid
        return fd

    def wait_pidfd(self, pidfd: int) -> int | None:
        proc = self.processes[self._pidfds[pidfd]]
        if proc.status is None or proc.reaped:
            return None
        proc.reaped = True
        return proc.status

    def pidfd_send_signal(self, pidfd: int, sig: int) -> None:
        proc = self._lookup(self._pidfds[pidfd])
        sent = Sent(_now(), proc.pid, sig, name=proc.name, via="pidfd")
        if sig != 0:
            self.signals.append(sent)
        self._deliver(proc, sent)

    # -- the terminal ---------------------------------------------------------------------------

    def give_terminal(self, pgid: int) -> bool:
        self.calls.append(("give_terminal", (pgid,)))
        return self.tty

    def take_terminal(self) -> None:
        self.calls.append(("take_terminal", ()))


#: mypy checks that FakeOS is an OSLayer (a missing or mistyped method fails the check).
_IS_OS_LAYER: type[OSLayer] = FakeOS
