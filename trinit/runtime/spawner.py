"""Starting children: environment, stdio, output pumps, exec probes, and adopting the fast start.

Every child goes through :meth:`Spawner.spawn` (or :meth:`Spawner.run_probe`,
:meth:`Spawner.spawn_hook`) on the OS
layer and is watched by the run's exit watcher before any checkpoint, so its exit is
never mistaken for an orphan's.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import attrs
import trio

from .._errors import TrinitError
from ..io.writer import stdio_writer
from ..system.environ import build_env, credentials_of
from .process import ProcessHandle, StartFailure
from .stopping import terminate

if TYPE_CHECKING:
    from ..config.model import Config, ProcessSpec
    from ..io.log import Logger
    from ..io.writer import FdWriter
    from ..system.environ import Credentials
    from ..system.protocol import OSLayer
    from ..system.reaper import ExitWatcher
    from .notifier import Notifier
    from .notify import NotifyHub
    from .runner import Runner

Stream = Literal["stdout", "stderr"]


_Send = Callable[[int, int], None]

#: The readiness kinds the process announces itself (through runtime/notify).
_SAID = frozenset({"notify", "fd"})

#: The drain's least time, even when the budget is spent: to read what the pipes already hold.
_DRAIN_FLOOR = 0.2


@attrs.define(eq=False)
class Spawner:
    config: Config
    os: OSLayer
    log: Logger
    #: The children's base environment.
    environ: Mapping[str, str]
    #: ``environ`` is trinit's own: a child that changes nothing in it inherits it as is
    #: (no copy to encode at each of 1000 starts).
    environ_is_ours: bool
    stdout: FdWriter | None = None
    stderr: FdWriter | None = None
    watcher: ExitWatcher | None = None
    #: Where the output pumps run (the run's outer nursery, so they outlive the processes).
    nursery: trio.Nursery | None = None
    #: What a start of a notify, fd or watchdog process needs (SPEC §9): made by the first one.
    hub: NotifyHub | None = None
    #: What the CLI's fast start spawned before trio: a pid, or the OSError of its exec.
    prestarted: dict[str, int | OSError] = attrs.field(factory=dict)
    _creds: dict[str, Credentials | None] = attrs.field(init=False)
    _pumps: int = 0
    _signals: tuple[_Send, _Send, _Send] | None = None
    _pumps_done: trio.Event = attrs.field(factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        self._creds = credentials_of(self.config)

    def use(self, config: Config, creds: dict[str, Credentials | None]) -> None:
        """Start children from ``config`` from now on (a reload, SPEC §10); ``creds`` from
        :func:`credentials_of`."""
        self.config, self._creds = config, creds

    def adopt_prestarted(self, runners: Mapping[str, Runner]) -> None:
        """Watch what the fast start spawned, before the first drain (so its exit is its own and not
        an "orphan's") and before the signals held since start-up are let through (so it is a
        forwarding target); an exec that failed is raised by the process's start."""
        for name, early in list(self.prestarted.items()):
            if isinstance(early, int):
                del self.prestarted[name]
                runners[name].adopt(self.handle(runners[name].spec, early))

    def notify_hub(self) -> NotifyHub:
        """The door of runtime/notify: made for the first process with notify or fd readiness or a
        watchdog; a run without one never loads it."""
        if self.hub is None:
            from .notify import NotifyHub

            self.hub = NotifyHub(self.os, self.log)
            self.hub.nursery = self.nursery
        return self.hub

    def notifier(self, name: str) -> Notifier | None:
        """The sd_notify socket of process ``name``, if it has one."""
        return self.hub.notifiers.get(name) if self.hub is not None else None

    def watcher_or_fail(self) -> ExitWatcher:
        if self.watcher is None:
            raise TrinitError("The supervisor is not running; start it with run() or open_supervisor().")
        return self.watcher

    def handle(self, spec: ProcessSpec, pid: int) -> ProcessHandle:
        """Watch ``pid`` right away (before any checkpoint) and wrap it in a handle.

        With ``signal_group``, when orphans are ours to reap, its stop waits for the whole group.
        """
        watcher = self.watcher_or_fail()
        groups = spec.signal_group and watcher.reaps_orphans
        signals = self._signals
        if signals is None:  # bound once: three bound methods per handle are 2 MB at 10,000
            signals = self._signals = (self.os.kill, self.os.killpg, self.os.pidfd_send_signal)
        return ProcessHandle(
            spec.name,
            pid,
            spec.signal_group,
            watcher.watch(pid),
            trio.current_time(),
            *signals,
            group_alive=self.os.group_alive if groups else None,
            wait_group=watcher.wait_group_gone if groups else None,
        )

    def spawn(self, runner: Runner, *, give_terminal: bool) -> ProcessHandle:
        """Start ``runner``'s process; raises OSError (exec) or StartFailure (anything before)."""
        spec = runner.spec
        if self.prestarted and isinstance(early := self.prestarted.pop(spec.name, None), OSError):
            raise early
        creds = self._creds.get(spec.name)
        try:
            env = build_env(spec, self.environ, creds)
        except (OSError, ValueError, TrinitError) as exc:
            raise StartFailure(str(exc)) from exc
        stdin = None if spec.main else self.os.devnull()
        read_fds: list[tuple[int, Stream]] = []
        write_fds: list[int] = []
        plain = self._takes_ours(spec)
        hub = self.hub
        if hub is None and (spec.watchdog is not None or (spec.ready is not None and spec.ready.kind in _SAID)):
            hub = self.notify_hub()
        try:
            extra = hub.prepare(spec) if hub is not None else None
        except OSError as exc:
            raise StartFailure(f"its notification socket or ready fd could not be made: {exc}") from exc
        if extra is not None and extra.env:
            env, plain = {**env, **extra.env}, False
        pid: int | None = None
        try:
            stdout, stderr = self._stdio(spec, read_fds, write_fds)
            pid = self.os.spawn(
                spec.command,
                env=env,
                cwd=spec.cwd,
                creds=creds,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                inherit_environ=plain and creds is None,
                hardening=spec.hardening,
                move_fd=extra.move_fd if extra is not None else None,
                pid_env=extra.pid_env if extra is not None else None,
            )
        except TrinitError as exc:  # a hardening helper is missing, say
            self._close_reads(read_fds)
            raise StartFailure(str(exc)) from exc
        except BaseException:
            self._close_reads(read_fds)
            raise
        finally:
            for fd in write_fds:
                self.os.close(fd)
            if extra is not None and hub is not None:
                hub.spawned(spec, extra, pid)
        handle = self.handle(spec, pid)
        on_line = runner.log_watch.feed if runner.log_watch is not None else None
        for fd, stream in read_fds:
            self._start_pump(spec, fd, stream, on_line)
        if give_terminal and self.os.give_terminal(pid):
            self._continue(pid)
        return handle

    def together(self, spec: ProcessSpec) -> bool:
        """True if :meth:`spawn_plain` can start it: what :meth:`spawn` would do for it is
        only the exec (trinit's environment, no user, folder, hardening, pipe or socket)."""
        return (
            not spec.main
            and self._takes_ours(spec)
            and spec.cwd is None
            and spec.output in ("inherit", "null")
            and spec.ready is None
            and spec.watchdog is None
            and self._creds.get(spec.name) is None
            and spec.hardening is None
        )

    def _takes_ours(self, spec: ProcessSpec) -> bool:
        """Its environment is trinit's own, unchanged: the child inherits it (no copy to encode)."""
        return self.environ_is_ours and spec.inherit_env and not spec.env and spec.env_file is None

    def spawn_plain(self, specs: Sequence[ProcessSpec]) -> list[ProcessHandle | OSError]:
        """Start these (each one :meth:`together` accepts) as :meth:`spawn` would, two at a time
        where the OS layer can; each one's handle or why it did not start, in order."""
        null = self.os.devnull()
        jobs = [(spec.command, (null, None, None) if spec.output == "inherit" else (null, null, null)) for spec in specs]
        pids = self.os.spawn_plain(jobs, env=self.environ)
        return [pid if isinstance(pid, OSError) else self.handle(spec, pid) for spec, pid in zip(specs, pids, strict=True)]

    def _close_reads(self, read_fds: list[tuple[int, Stream]]) -> None:
        """No child reads them: a failed start (EMFILE, say) must not leak a single fd."""
        for fd, _ in read_fds:
            self.os.close(fd)

    def _continue(self, pgid: int) -> None:
        """Wake a child that read the terminal before it was given the foreground (SIGTTIN)."""
        try:
            self.os.killpg(pgid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def _stdio(
        self,
        spec: ProcessSpec,
        read_fds: list[tuple[int, Stream]],
        write_fds: list[int],
        *,
        hook: bool = False,
    ) -> tuple[int | None, int | None]:
        """The child's stdout and stderr: inherited, /dev/null, or pipes that trinit reads
        (a hook's output never makes its process ready, so it is only read to be prefixed)."""
        reads_log = not hook and spec.ready is not None and spec.ready.kind == "log"
        if spec.output == "inherit" and not reads_log:
            return None, None
        if spec.output == "null" and not reads_log:
            return self.os.devnull(), self.os.devnull()
        streams: tuple[Stream, Stream] = ("stdout", "stderr")
        for stream in streams:
            r, w = self.os.pipe()
            read_fds.append((r, stream))
            write_fds.append(w)
        return write_fds[0], write_fds[1]

    def _writer(self, stream: Stream) -> FdWriter:
        """One writer per fd, shared with trinit's own log, so lines never interleave."""
        if stream == "stdout":
            if self.stdout is None:
                self.stdout = stdio_writer(1)
            return self.stdout
        if self.stderr is None:
            self.stderr = stdio_writer(2)
        return self.stderr

    def _start_pump(
        self, spec: ProcessSpec, fd: int, stream: Stream, on_line: Callable[[str], None] | None
    ) -> None:
        from ..io.output import pump_output  # the door: only a process whose output trinit reads

        writer = self._writer(stream)
        writer.start()
        assert self.nursery is not None
        if self._pumps == 0 and self._pumps_done.is_set():  # a start after every pump had ended
            self._pumps_done = trio.Event()
        self._pumps += 1
        pump = functools.partial(
            pump_output,
            fd,
            name=spec.name,
            stream=stream,
            mode=spec.output,
            log_format=self.config.log_format,
            writer=writer,
            on_line=on_line,
        )
        self.nursery.start_soon(self._pump, pump, name=f"trinit output {spec.name} {stream}")

    async def _pump(self, pump: Callable[[], Awaitable[None]]) -> None:
        try:
            await pump()
        finally:
            self._pumps -= 1
            if self._pumps == 0:
                self._pumps_done.set()

    async def drain(self, deadline: float, log: Logger) -> None:
        """Let the output pumps read to the end and the writers write it all, until ``deadline``
        (what is left of the shutdown budget; a grandchild may hold a pipe, a reader may stall).

        At the deadline the pumps are cancelled (what they hold is handed to the writers),
        and whatever is still unwritten is given up and counted in one log line per stream,
        never dropped silently; what the reader did get ends on a whole line.
        """
        deadline = max(deadline, trio.current_time() + _DRAIN_FLOOR)
        with trio.move_on_at(deadline):
            if self._pumps:
                await self._pumps_done.wait()
            async with trio.open_nursery() as flushing:  # together: one may stall, not the other
                for w in (self.stdout, self.stderr):
                    if w is not None:
                        flushing.start_soon(trio.to_thread.run_sync, w.close, deadline - trio.current_time())
        if self._pumps and self.nursery is not None:
            # The run's outer nursery is cancelled right after the drain anyway; doing it
            # here lets the pumps hand over what they hold before it is counted.
            self.nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                await self._pumps_done.wait()
        given_up = [
            (stream, *w.abandon())
            for stream, w in (("stdout", self.stdout), ("stderr", self.stderr))
            if w is not None and not w.flushed()
        ]
        for stream, lines, size in given_up:  # logged after: the log shares the stderr writer
            if size:
                log.warning(
                    "output_lost",
                    f"{lines} lines ({size} bytes) of process output could not be written to "
                    f"{stream} before the shutdown budget ran out: its reader was too slow "
                    "(raise shutdown_timeout, or read trinit's output faster)",
                    stream=stream,
                    lines=lines,
                    bytes=size,
                )

    def _spawn_helper(
        self, spec: ProcessSpec, argv: Sequence[str], env: Mapping[str, str], out: int | None, err: int | None
    ) -> ProcessHandle:
        """Start a short-lived helper of ``spec`` (an exec probe, a hook) as its process starts:
        its user, group, cwd and hardening (SPEC §12), stdin /dev/null; watched before any checkpoint.
        Raises TrinitError when a hardening helper program is missing."""
        creds = self._creds.get(spec.name)
        null = self.os.devnull()
        pid = self.os.spawn(
            argv, env=env, cwd=spec.cwd, creds=creds, stdin=null, stdout=out, stderr=err,
            hardening=spec.hardening,
        )  # fmt: skip
        watch = self.watcher_or_fail().watch(pid)
        # In their own process group: a stop reaches what they started too.
        return ProcessHandle(spec.name, pid, True, watch, trio.current_time(), self.os.kill, self.os.killpg)

    def spawn_hook(
        self, spec: ProcessSpec, argv: Sequence[str], extra_env: Mapping[str, str]
    ) -> ProcessHandle:
        """Start one lifecycle hook of ``spec`` (SPEC §9): its environment plus ``extra_env``, and
        its ``output`` mode. Raises OSError (exec) or StartFailure (its environment)."""
        try:
            env = build_env(spec, self.environ, self._creds.get(spec.name))
        except (OSError, ValueError, TrinitError) as exc:
            raise StartFailure(str(exc)) from exc
        env.update(extra_env)
        read_fds: list[tuple[int, Stream]] = []
        write_fds: list[int] = []
        try:
            out, err = self._stdio(spec, read_fds, write_fds, hook=True)
            handle = self._spawn_helper(spec, argv, env, out, err)
        except BaseException as exc:
            for fd, _ in read_fds:
                self.os.close(fd)
            if isinstance(exc, TrinitError):  # what the OS layer could not set up for it
                raise StartFailure(str(exc)) from exc
            raise
        finally:
            for fd in write_fds:
                self.os.close(fd)
        for fd, stream in read_fds:
            self._start_pump(spec, fd, stream, None)
        return handle

    async def run_probe(
        self, spec: ProcessSpec, argv: tuple[str, ...], timeout: float, force: trio.Event
    ) -> bool:
        """Run one exec probe through the same spawner and watcher as every other child."""
        env = build_env(spec, self.environ, self._creds.get(spec.name))
        null = self.os.devnull()
        try:
            handle = self._spawn_helper(spec, argv, env, null, null)
        except TrinitError:  # a hardening helper is missing: the process's own start said so already
            return False
        try:
            with trio.move_on_after(timeout):
                status = await handle.waiter.wait()
                return status.code == 0 and status.signal is None
            return False
        finally:
            with trio.CancelScope(shield=True):
                await terminate(handle, signal.SIGKILL, 0.0, force, None)
