"""A fake OS layer and a capturing log, for testing code that runs trinit's supervisor.

:class:`FakeOS` stands in for :class:`trinit.system.real.RealOS`: it spawns no processes and sends
no signals. Each "process" follows a small script (:class:`Behaviour`): exit with a code after
some time, react to signals, ignore SIGTERM, fail to spawn. Everything happens on trio's
clock, so with ``MockClock(autojump_threshold=0)`` (pytest-trio's ``autojump_clock``) a
backoff sequence or a shutdown with grace periods runs instantly and at exact times::

    fake = FakeOS(behaviours={"app": Behaviour(runs=1.0, code=3)})
    log = FakeLog()
    sup = make_supervisor(config, fake, log=log)
    code = await sup.run()
    assert code == 3 and fake.spawns_of("app")[0].time == 0.0

Exits reach the runtime the way SIGCHLD would bring them: when a fake process ends, its
(pid, raw wait status) is queued for :meth:`FakeOS.wait_any` and the reaper made by
:meth:`FakeOS.make_watcher` is asked to :meth:`~trinit.system.reaper.Reaper.reap`. Pass that
reaper to the supervisor (``watcher=``); the pidfd watcher of library mode needs real
file descriptors and does not work with the fake.
"""

from __future__ import annotations

import errno as _errno
import os
import signal as _signal
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import attrs
import trio

from ..io.log import Level, Logger
from ..system.real import RealOS
from ..system.reaper import Reaper

if TYPE_CHECKING:
    from ..config.model import Config
    from ..runtime.supervisor import Runtime, RuntimeOptions
    from ..system.environ import Credentials

__all__ = [
    "Behaviour",
    "Exit",
    "FakeLog",
    "FakeOS",
    "FakeProcess",
    "LogEvent",
    "Sent",
    "Spawn",
    "exit_status",
    "make_supervisor",
    "run_supervisor",
]

#: Signals whose default action is to do nothing (stops and continues are not modelled).
_DEFAULT_IGNORED = frozenset(
    {
        _signal.SIGCHLD,
        _signal.SIGCONT,
        _signal.SIGURG,
        _signal.SIGWINCH,
        _signal.SIGSTOP,
        _signal.SIGTSTP,
        _signal.SIGTTIN,
        _signal.SIGTTOU,
    }
)


def _now() -> float:
    return trio.current_time()


def exit_status(code: int | None = None, signal: int | None = None) -> int:
    """A raw wait status as ``os.waitpid`` gives it: ``code << 8``, or the killing signal."""
    if signal is not None:
        return signal & 0x7F
    return ((code or 0) & 0xFF) << 8


# ---------------------------------------------------------------------------------- scripts


@attrs.frozen
class Exit:
    """How a fake process ends when it receives a signal.

    ``code`` to exit with that code, ``signal`` to die of that signal; neither: die of the
    signal received. ``delay`` seconds after the signal arrived.
    """

    code: int | None = None
    signal: int | None = None
    delay: float = 0.0


def _signal_map(value: Mapping[int, Exit | None]) -> Mapping[int, Exit | None]:
    return dict(value)


def _signal_set(value: Collection[int]) -> frozenset[int]:
    return frozenset(value)


@attrs.frozen(kw_only=True)
class Behaviour:
    """The script of one start of a fake process.

    - ``runs``: seconds until it ends by itself (None: it runs until a signal ends it);
      it then exits with ``code``, or dies of ``signal`` if that is set.
    - ``on_signal``: per signal, an :class:`Exit` (how and when it ends) or None (ignored).
      A signal not listed does what its default action does: most kill at once; SIGCHLD,
      SIGCONT, SIGURG, SIGWINCH and the stop signals are ignored. ``ignore`` lists more
      signals to ignore (``ignore=[SIGTERM]``). SIGKILL always kills at once.
    - ``spawn_error``: the spawn fails with this errno (ENOENT, EACCES) and nothing runs.
    """

    runs: float | None = None
    code: int = 0
    signal: int | None = None
    on_signal: Mapping[int, Exit | None] = attrs.field(factory=dict, converter=_signal_map)
    ignore: frozenset[int] = attrs.field(default=frozenset(), converter=_signal_set)
    spawn_error: int | None = None

    @classmethod
    def exits(
        cls,
        code: int = 0,
        after: float = 0.0,
        *,
        on_signal: Mapping[int, Exit | None] | None = None,
        ignore: Collection[int] = (),
    ) -> Behaviour:
        """Ends by itself with ``code`` after ``after`` seconds."""
        return cls(runs=after, code=code, on_signal=on_signal or {}, ignore=frozenset(ignore))

    @classmethod
    def killed(cls, signal: int, after: float = 0.0) -> Behaviour:
        """Dies of ``signal`` (a crash, say) after ``after`` seconds."""
        return cls(runs=after, signal=signal)

    @classmethod
    def forever(
        cls, *, on_signal: Mapping[int, Exit | None] | None = None, ignore: Collection[int] = ()
    ) -> Behaviour:
        """Runs until a signal ends it."""
        return cls(on_signal=on_signal or {}, ignore=frozenset(ignore))

    @classmethod
    def stubborn(cls, runs: float | None = None, code: int = 0) -> Behaviour:
        """Ignores SIGTERM and SIGINT: only SIGKILL ends it early."""
        return cls(runs=runs, code=code, ignore=frozenset({_signal.SIGTERM, _signal.SIGINT}))

    @classmethod
    def not_found(cls) -> Behaviour:
        """The spawn fails with ENOENT (a shell's 127)."""
        return cls(spawn_error=_errno.ENOENT)

    @classmethod
    def not_executable(cls) -> Behaviour:
        """The spawn fails with EACCES (a shell's 126)."""
        return cls(spawn_error=_errno.EACCES)

    def reaction(self, sig: int) -> Exit | None:
        """What receiving ``sig`` does: how it ends, or None when it is ignored."""
        if sig == _signal.SIGKILL:
            return Exit()
        if sig in self.ignore:
            return None
        if sig in self.on_signal:
            return self.on_signal[sig]
        return None if sig in _DEFAULT_IGNORED else Exit()


Script = Behaviour | Sequence[Behaviour]

# ---------------------------------------------------------------------------------- records


@attrs.frozen
class Spawn:
    """One call of ``spawn``: what was asked, when, and the pid (or the errno it failed with)."""

    time: float
    name: str
    attempt: int
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None
    creds: Credentials | None
    stdin: int | None
    stdout: int | None
    stderr: int | None
    pid: int | None
    error: int | None = None


@attrs.frozen
class Sent:
    """One signal sent: to ``pid`` (a process), to a process group (``group``), or to
    everyone left (``everyone``, pid -1). ``name`` is the fake process it was aimed at."""

    time: float
    pid: int
    signal: int
    group: bool = False
    everyone: bool = False
    name: str | None = None
    via: Literal["kill", "killpg", "kill_all", "pidfd"] = "kill"


@attrs.define(eq=False)
class FakeProcess:
    """A fake process: its script and what happened to it."""

    pid: int
    name: str
    argv: tuple[str, ...]
    behaviour: Behaviour
    attempt: int
    started_at: float
    pgid: int
    adopted: bool = False
    #: Raw wait status once it has ended; ``exited_at`` says when.
    status: int | None = None
    exited_at: float | None = None
    reaped: bool = False
    received: list[Sent] = attrs.field(factory=list)
    _due: float | None = None
    _due_status: int = 0
    _generation: int = 0

    @property
    def alive(self) -> bool:
        return self.status is None


# ---------------------------------------------------------------------------------- FakeOS


class FakeOS(RealOS):
    """The OS layer of :mod:`trinit.system.real`, faked: scripted processes on trio's clock.

    ``behaviours`` maps a key to a :class:`Behaviour`, or to a list of them used one per
    start (the last one repeats). A spawn's key is the first of these that is in
    ``behaviours``: the name of the process in ``config`` whose command it is, the whole
    command line joined by spaces, ``argv[0]``, and the basename of ``argv[0]``. Spawns
    with no key run ``default``.

    Every spawn is recorded in :attr:`spawns`, every signal in :attr:`signals`, and the
    process-wide calls (``set_subreaper`` ...) in :attr:`calls`. It subclasses RealOS only
    for its type; every method is overridden, so nothing reaches the real OS.
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
        # RealOS.__init__ is not called: it looks at the real process.
        self.behaviours: dict[str, Script] = dict(behaviours or {})
        self.default = default or Behaviour()
        self.pid = 1 if pid1 else 4242
        self.tty = tty
        self.spawns: list[Spawn] = []
        self.signals: list[Sent] = []
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.processes: dict[int, FakeProcess] = {}
        self.reaper: Reaper | None = None
        self.devnull_fd = 1_000_000
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

    def spawns_of(self, name: str) -> list[Spawn]:
        """Spawns (successful or not) of the process or key ``name``, in order."""
        return [s for s in self.spawns if s.name == name]

    def start_times(self, name: str) -> list[float]:
        """When ``name`` was started successfully, in order."""
        return [s.time for s in self.spawns_of(name) if s.pid is not None]

    def signals_to(self, name: str) -> list[Sent]:
        """Signals aimed at the processes of ``name`` (by pid, group or pidfd; not kill_all)."""
        return [s for s in self.signals if s.name == name]

    def processes_named(self, name: str) -> list[FakeProcess]:
        return [p for p in self.processes.values() if p.name == name]

    def alive(self) -> list[FakeProcess]:
        """The fake processes that have not ended."""
        return [p for p in self.processes.values() if p.alive]

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
    ) -> int:
        """Start a scripted process; raises OSError like RealOS when its script says so."""
        args = tuple(argv)
        key = self._key(args)
        attempt = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempt
        behaviour = self._behaviour(key, attempt)
        error = behaviour.spawn_error
        proc = None if error is not None else self._start(key, args, behaviour, attempt)
        self.spawns.append(
            Spawn(
                _now(),
                key,
                attempt,
                args,
                dict(env),
                cwd,
                creds,
                stdin,
                stdout,
                stderr,
                pid=None if proc is None else proc.pid,
                error=error,
            )
        )
        if proc is None:
            assert error is not None
            raise OSError(error, os.strerror(error), args[0] if args else "")
        return proc.pid

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

    def last_resort_stop(self, pid: int | None, budget: float = 5.0) -> None:
        """Recorded only: the real one blocks outside trio, which a fake run never needs."""
        self.calls.append(("last_resort_stop", (pid,)))

    def describe(self, pid: int) -> str:
        proc = self.processes.get(pid)
        return f"pid {pid} ({proc.name})" if proc is not None else f"pid {pid}"

    def kill_all(self, sig: int) -> int:
        """Signal every process not yet reaped; as PID 1 returns -1, like RealOS."""
        members = [p for p in self.processes.values() if not p.reaped]
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


# ---------------------------------------------------------------------------------- the log


@attrs.frozen
class LogEvent:
    """One event trinit logged."""

    time: float | None
    level: Level
    event: str
    message: str
    process: str | None
    pid: int | None
    fields: Mapping[str, object]

    def __str__(self) -> str:
        who = f" {self.process}" if self.process else ""
        when = "-" if self.time is None else f"{self.time:g}"
        return f"[{when}] {self.level} {self.event}{who}: {self.message}"


class FakeLog(Logger):
    """A :class:`~trinit.io.log.Logger` that keeps every event (all levels) instead of writing.

    ``hooks`` (see :meth:`on`) run synchronously when a matching event is logged: a test
    can act at the exact moment something happens.
    """

    def __init__(self, *, verbosity: int = 1) -> None:
        super().__init__(log_format="text", verbosity=verbosity)
        self.events: list[LogEvent] = []
        self._hooks: list[tuple[str, str | None, Callable[[LogEvent], None]]] = []

    def enabled(self, level: Level) -> bool:
        return True

    def log(
        self,
        level: Level,
        event: str,
        message: str,
        *,
        process: str | None = None,
        pid: int | None = None,
        **fields: object,
    ) -> None:
        try:
            when: float | None = trio.current_time()
        except RuntimeError:
            when = None
        entry = LogEvent(when, level, event, message, process, pid, dict(fields))
        self.events.append(entry)
        for name, who, hook in list(self._hooks):
            if name == event and (who is None or who == process):
                hook(entry)

    def close(self, timeout: float = 1.0) -> None:
        """Nothing is queued."""

    def on(self, event: str, hook: Callable[[LogEvent], None], *, process: str | None = None) -> None:
        """Call ``hook(entry)`` whenever ``event`` (of ``process``, if given) is logged."""
        self._hooks.append((event, process, hook))

    def find(self, event: str | None = None, process: str | None = None) -> list[LogEvent]:
        """The events named ``event`` (any if None) about ``process`` (any if None)."""
        return [
            e
            for e in self.events
            if (event is None or e.event == event) and (process is None or e.process == process)
        ]

    def first(self, event: str, process: str | None = None) -> LogEvent:
        """The first matching event; AssertionError listing the log when there is none."""
        found = self.find(event, process)
        if not found:
            raise AssertionError(f"no {event!r} event for {process!r} in the log:\n{self.dump()}")
        return found[0]

    def dump(self) -> str:
        """The whole log, one event a line, for assertion messages."""
        return "\n".join(map(str, self.events))


# ---------------------------------------------------------------------------------- wiring


def make_supervisor(
    config: Config,
    fake: FakeOS,
    *,
    log: Logger | None = None,
    options: RuntimeOptions | None = None,
    environ: Mapping[str, str] | None = None,
) -> Runtime:
    """A Runtime for ``config`` on ``fake``, with the fake's reaper as its exit watcher.

    ``log`` defaults to a new :class:`FakeLog`; ``environ`` to a bare PATH, so spawn records
    do not depend on the test runner's environment.
    """
    from ..config.plan import make_plan
    from ..runtime.supervisor import Runtime, RuntimeOptions

    log = log if log is not None else FakeLog()
    return Runtime(
        make_plan(config),
        os_layer=fake,
        log=log,
        options=options or RuntimeOptions(),
        environ={"PATH": "/usr/bin:/bin"} if environ is None else environ,
        watcher=fake.make_watcher(log),
    )


async def run_supervisor(
    config: Config,
    fake: FakeOS,
    *,
    log: Logger | None = None,
    options: RuntimeOptions | None = None,
    environ: Mapping[str, str] | None = None,
    at: Sequence[tuple[float, Callable[[Runtime], object]]] = (),
) -> int:
    """Run ``config`` on ``fake`` to the end and return the exit code.

    ``at`` holds (time, action) pairs: ``action(supervisor)`` is called at that time of
    trio's clock (``lambda sup: sup.request_shutdown("test")``), unless the run is over.
    """
    sup = make_supervisor(config, fake, log=log, options=options, environ=environ)

    async def later(when: float, action: Callable[[Runtime], object]) -> None:
        await trio.sleep_until(when)
        action(sup)

    async with trio.open_nursery() as nursery:
        for when, action in at:
            nursery.start_soon(later, when, action)
        code = await sup.run()
        nursery.cancel_scope.cancel()
    return code
