"""The runtime: one trio nursery per run, a runner per process, shutdown under deadlines.

The CLI and the library both drive :class:`Supervisor`; zero-config mode is a plan with
one main process. Everything that touches the OS goes through ``os_layer``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from .._errors import TrinitError
from ..boot.parse import signal_name
from ..boot.signals import FORWARDED, SHUTDOWN, SignalRouter
from ..system.reaper import PidfdWatcher, Reaper
from .runner import ProcessHandle, ProcessStatus, Runner, StartFailure

if TYPE_CHECKING:
    from ..config.model import ProcessSpec
    from ..config.plan import Plan
    from ..io.log import Logger
    from ..io.writer import FdWriter
    from ..system.protocol import OSLayer
    from ..system.reaper import ExitWatcher
    from ..system.status import ExitStatus

Stream = Literal["stdout", "stderr"]

#: trinit's own exit code when it hit an internal error (EX_SOFTWARE of sysexits.h).
INTERNAL_ERROR = 70
#: Extra time after the budget for SIGKILLed processes to be reaped.
_KILL_WAIT = 2.0


@attrs.frozen
class RuntimeOptions:
    """Settings of a run that are not part of the config file (mostly the command line's)."""

    #: -e: final exit codes that become 0.
    success_exits: frozenset[int] = frozenset()
    #: -r: a received signal is passed on as another one (0 drops it).
    rewrite: Mapping[int, int] = attrs.field(factory=dict)
    #: Install signal handlers (the CLI, or ``handle_signals=True``).
    handle_signals: bool = False
    #: Own waitpid(-1) and adopt orphans (the CLI, or ``reap_orphans=True``).
    reap_orphans: bool = False
    #: Extra signal treated as if sent by a user (-p).
    pdeathsig: int | None = None
    #: Leave the handlers installed after the run (the CLI exits right after; restoring
    #: them would let a late SIGTERM kill trinit before it reports its exit code).
    keep_handlers: bool = False


class Supervisor:
    """Runs a Plan: starts processes as their conditions hold and stops them in order."""

    def __init__(
        self,
        plan: Plan,
        *,
        os_layer: OSLayer,
        log: Logger,
        options: RuntimeOptions | None = None,
        environ: Mapping[str, str] | None = None,
        stdout: FdWriter | None = None,
        stderr: FdWriter | None = None,
        prestarted: Mapping[str, int | OSError] | None = None,
        watcher: ExitWatcher | None = None,
    ) -> None:
        from ..system.environ import resolve_credentials

        self.plan = plan
        self.config = plan.config
        self.os = os_layer
        self.log = log
        self.options = options or RuntimeOptions()
        self.environ = dict(os.environ if environ is None else environ)
        #: The children's base environment is trinit's own: a child that changes nothing
        #: in it inherits it as is (no copy to encode at each of 1000 starts).
        self._environ_is_ours = environ is None
        self._stdout = stdout
        self._stderr = stderr
        self._prestarted: dict[str, int | OSError] = dict(prestarted or {})
        self._creds = {p.name: resolve_credentials(p) for p in self.config.processes}
        self.shutting_down = False
        self.force = trio.Event()
        self.finished = trio.Event()
        self._shutdown_requested = trio.Event()
        self._changed = trio.Event()
        self._runners: dict[str, Runner] = {}
        for spec in self.config.processes:
            runner = Runner(spec, self, start_after=tuple(plan.start_after.get(spec.name, ())))
            if spec.ready is not None and spec.ready.kind == "log":
                from .readiness import LogWatch

                assert isinstance(spec.ready.target, str)
                runner.log_watch = LogWatch(spec.ready.target)
            self._runners[spec.name] = runner
        self._run_phase = [r for r in self._runners.values() if r.spec.phase == "run"]
        self._live = {r.name for r in self._run_phase}
        self._down = {r.name for r in self._run_phase}
        self._forwarders: dict[str, Any] = {}
        self._stopped = {name: trio.Event() for name in self._runners}
        self._stop_signal: int | None = None
        self._fixed_code: int | None = None
        self._main = next((r for r in self._run_phase if r.spec.main), None)
        self._ready_file_made = False
        self._pumps = 0
        self._pumps_done = trio.Event()
        self._router: SignalRouter | None = None
        #: Given (a fake in tests) or made by run(): Reaper with reap_orphans, else PidfdWatcher.
        self.watcher: ExitWatcher | None = watcher
        self._outer: trio.Nursery | None = None
        self._procs: trio.Nursery | None = None
        self.internal_error: BaseException | None = None
        self.exit_code: int | None = None

    # -- RunnerHost ------------------------------------------------------------------------------

    def runner(self, name: str) -> Runner:
        return self._runners[name]

    def changed(self) -> trio.Event:
        return self._changed

    def notify(self, runner: Runner) -> None:
        """A runner's state changed: wake waiters, keep forwarding, ``ready_file`` and the end in step."""
        self._changed.set()
        self._changed = trio.Event()
        name = runner.name
        if runner.spec.forward_signals and runner.handle is not None and not runner.handle.exited:
            self._forwarders[name] = runner.handle.signal
        else:
            self._forwarders.pop(name, None)
        if self._router is not None:
            self._router.targets = tuple(self._forwarders.values())
        if runner.spec.phase != "run":
            return
        if runner.up:
            self._down.discard(name)
        else:
            self._down.add(name)
        self._update_ready_file()
        if runner.final:
            self._live.discard(name)
            if not self._live and self._main is None and not self.shutting_down:
                self.request_shutdown("every process has finished")

    def process_failed(self, runner: Runner, code: int) -> None:
        if self.shutting_down:
            return
        if self._fixed_code is None:
            self._fixed_code = code
        self.request_shutdown(f"{runner.name} failed")

    def main_exited(self, runner: Runner, status: ExitStatus | None, failed_without_exit: bool) -> None:
        if self.options.handle_signals:
            self.os.take_terminal()  # the foreground group is gone: take the terminal back
        if (failed_without_exit or status is None) and self._fixed_code is None and not self.shutting_down:
            self._fixed_code = 1
        if not self.shutting_down:
            what = status.describe() if status is not None else "failed"
            self.request_shutdown(f"the main process {runner.name} {what}")

    def spawn(self, runner: Runner) -> ProcessHandle:
        spec = runner.spec
        early = self._prestarted.pop(spec.name, None)
        if isinstance(early, OSError):
            raise early
        read_fds: list[tuple[int, Stream]] = []
        close_after: list[int] = []
        from ..system.environ import build_env

        creds = self._creds.get(spec.name)
        try:
            env = build_env(spec, self.environ, creds)
        except (OSError, ValueError, TrinitError) as exc:
            raise StartFailure(str(exc)) from exc
        stdin = None if spec.main else self.os.devnull()
        stdout, stderr = self._stdio(spec, read_fds, close_after)
        plain = self._environ_is_ours and spec.inherit_env and not spec.env and spec.env_file is None
        try:
            pid = self.os.spawn(
                spec.command,
                env=env,
                cwd=spec.cwd,
                creds=creds,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                inherit_environ=plain and creds is None,
            )
        finally:
            for fd in close_after:
                os.close(fd)
        handle = self._handle(spec, pid)
        for fd, stream in read_fds:
            self._start_pump(runner, fd, stream)
        if spec.main and self.options.handle_signals and self.os.give_terminal(pid):
            self._continue(pid)
        return handle

    def _handle(self, spec: ProcessSpec, pid: int) -> ProcessHandle:
        """Watch ``pid`` right away (before any checkpoint) and wrap it in a handle."""
        return ProcessHandle(
            spec.name,
            pid,
            spec.signal_group,
            self.watcher_or_fail().watch(pid),
            trio.current_time(),
            self.os.kill,
            self.os.killpg,
            self.os.pidfd_send_signal,
        )

    def _continue(self, pgid: int) -> None:
        """Wake a child that read the terminal before it was given the foreground (SIGTTIN)."""
        try:
            self.os.killpg(pgid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def _stdio(
        self, spec: Any, read_fds: list[tuple[int, Stream]], close_after: list[int]
    ) -> tuple[int | None, int | None]:
        """The child's stdout and stderr: inherited, /dev/null, or pipes that trinit reads."""
        reads_log = spec.ready is not None and spec.ready.kind == "log"
        if spec.output == "inherit" and not reads_log:
            return None, None
        if spec.output == "null" and not reads_log:
            return self.os.devnull(), self.os.devnull()
        ends: list[int] = []
        streams: tuple[Stream, Stream] = ("stdout", "stderr")
        for stream in streams:
            r, w = os.pipe2(os.O_CLOEXEC)
            read_fds.append((r, stream))
            close_after.append(w)
            ends.append(w)
        return ends[0], ends[1]

    def _start_pump(self, runner: Runner, fd: int, stream: Stream) -> None:
        from ..io.output import pump_output
        from ..io.writer import stdio_writer

        spec = runner.spec
        # One writer per fd, shared with trinit's own log, so lines never interleave.
        if stream == "stdout":
            if self._stdout is None:
                self._stdout = stdio_writer(1)
            writer = self._stdout
        else:
            if self._stderr is None:
                self._stderr = stdio_writer(2)
            writer = self._stderr
        writer.start()
        on_line = runner.log_watch.feed if runner.log_watch is not None else None
        assert self._outer is not None
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
        self._outer.start_soon(self._pump, pump, name=f"trinit output {spec.name} {stream}")

    async def probe(self, runner: Runner, handle: ProcessHandle) -> bool:
        from .readiness import wait_ready

        spec = runner.spec
        assert spec.ready is not None

        async def run_exec(argv: tuple[str, ...], timeout: float) -> bool:
            return await self._run_probe_command(runner, argv, timeout)

        return await wait_ready(spec.ready, run_exec=run_exec, log_watch=runner.log_watch)

    async def _run_probe_command(self, runner: Runner, argv: tuple[str, ...], timeout: float) -> bool:
        """Run one exec probe through the same spawner and watcher as every other child."""
        from ..system.environ import build_env

        spec = runner.spec
        creds = self._creds.get(spec.name)
        env = build_env(spec, self.environ, creds)
        null = self.os.devnull()
        pid = self.os.spawn(argv, env=env, cwd=spec.cwd, creds=creds, stdin=null, stdout=null, stderr=null)
        waiter = self.watcher_or_fail().watch(pid)
        try:
            with trio.move_on_after(timeout):
                status = await waiter.wait()
                return status.code == 0 and status.signal is None
            return False
        finally:
            if waiter.status is None:
                try:
                    self.os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                with trio.CancelScope(shield=True):
                    await waiter.wait()

    def watcher_or_fail(self) -> ExitWatcher:
        if self.watcher is None:
            raise TrinitError("The supervisor is not running; start it with run() or open_supervisor().")
        return self.watcher

    # -- signals ----------------------------------------------------------------------------------

    def _on_signal(self, received: int, passed: int) -> None:
        # -p's signal comes here too, handled exactly as if a user had sent it.
        if received in SHUTDOWN:
            if not self.shutting_down:
                self._stop_signal = passed
                self.request_shutdown(f"received {signal_name(received)}")
            elif received == signal.SIGINT:
                self.log.warning(
                    "forced", "received SIGINT during the shutdown: skipping the remaining grace"
                )
                self.force_stop()
            else:
                for r in self._runners.values():
                    if r.state == "stopping" and r.handle is not None and not r.handle.exited:
                        try:
                            r.handle.signal(passed)
                        except ProcessLookupError:
                            pass
                self.log.info("signal", f"passed {signal_name(passed)} on to the processes still stopping")
        elif received in FORWARDED:
            names = ", ".join(self._forwarders) or "nobody (no process running)"
            self.log.debug(
                "forwarded", f"forwarded {signal_name(passed)} to {names}", signal=signal_name(passed)
            )
        else:
            self.log.debug("signal", f"ignored {signal_name(received)}", signal=signal_name(received))

    def _on_orphan(self, pid: int, raw: int) -> None:
        if self.log.enabled("debug"):
            from ..system.status import ExitStatus

            status = ExitStatus.from_wait_status(raw)
            self.log.debug("orphan_reaped", f"reaped orphan pid {pid} ({status.describe()})", pid=pid)

    # -- the run -----------------------------------------------------------------------------------

    def request_shutdown(self, reason: str) -> None:
        """Begin the graceful shutdown (idempotent); ``run()`` carries it out."""
        if self._shutdown_requested.is_set():
            return
        # From this moment nothing new starts, even before the shutdown task runs.
        self.shutting_down = True
        self._shutdown_reason = reason
        self._shutdown_requested.set()
        for r in self._runners.values():
            if r._pending is not None:
                r._pending.cancel()

    def force_stop(self) -> None:
        """Skip every remaining grace period: SIGKILL all that still runs."""
        self.force.set()
        for r in self._runners.values():
            if r.handle is not None and not r.handle.exited:
                try:
                    r.handle.signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.watcher is not None and self.watcher.reaps_orphans:
            self.os.kill_all(signal.SIGKILL)

    async def run(self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED) -> int:
        """Run everything until the shutdown has finished; returns trinit's exit code."""
        try:
            async with trio.open_nursery() as outer:
                self._outer = outer
                self._setup_watcher(outer)
                try:
                    async with trio.open_nursery() as procs:
                        self._procs = procs
                        for runner in self._run_phase:
                            procs.start_soon(runner.lifecycle, name=f"trinit {runner.name}")
                        task_status.started(self)
                        await self._shutdown_requested.wait()
                        await self._shutdown()
                        procs.cancel_scope.cancel()
                except BaseException as exc:
                    self.internal_error = exc
                    with trio.CancelScope(shield=True):
                        await self._emergency_stop(exc)
                    raise
                finally:
                    if self._router is not None and not self.options.keep_handlers:
                        self._router.restore()
                await self._drain_output()
                outer.cancel_scope.cancel()
        finally:
            self.finished.set()
        self.exit_code = self._final_code()
        return self.exit_code

    def _setup_watcher(self, nursery: trio.Nursery) -> None:
        opts = self.options
        token = trio.lowlevel.current_trio_token()
        reap: Callable[[], None] | None = None
        collect: Callable[[], None] | None = None
        if self.watcher is None:
            if opts.reap_orphans:
                reaper = Reaper(self.os, self.log)
                reaper.on_orphan = self._on_orphan
                self.watcher = reaper
                reap, collect = reaper.reap, reaper.collect
            else:
                self.watcher = PidfdWatcher(self.os, nursery)
        # Processes started before trio (the CLI's fast start) are watched before the
        # first drain, so their exit is theirs and not an "orphan", and they are forwarding
        # targets before the signals held since start-up are let through.
        for name, early in list(self._prestarted.items()):
            if isinstance(early, int):
                del self._prestarted[name]
                runner = self._runners[name]
                spec = runner.spec
                handle = self._handle(spec, early)
                runner.adopt(handle)
                if spec.forward_signals:
                    self._forwarders[name] = handle.signal
        if opts.handle_signals or reap is not None:
            extra = frozenset({opts.pdeathsig}) if opts.pdeathsig else frozenset()
            self._router = SignalRouter(
                token,
                on_signal=self._on_signal,
                on_child=reap,
                collect=collect,
                rewrite=opts.rewrite,
                extra=extra,
                handle_shutdown=opts.handle_signals,
            )
            self._router.targets = tuple(self._forwarders.values())
            self._router.install()

    async def _shutdown(self) -> None:
        budget = self.config.shutdown_timeout
        started = trio.current_time()
        self._remove_ready_file()
        self.log.info(
            "shutdown_begun",
            f"shutdown begun ({self._shutdown_reason}); budget {budget:g} s",
            reason=self._shutdown_reason,
            budget=budget,
        )
        with trio.move_on_at(started + budget) as scope:
            async with trio.open_nursery() as nursery:
                for r in self._run_phase:
                    nursery.start_soon(self._stop_in_order, r)
                for r in self._runners.values():
                    if r.spec.phase == "stop":
                        nursery.start_soon(self._run_stop_job, r)
            await self._sweep()
        if scope.cancelled_caught:
            holding = [
                f"{r.name} (pid {r.handle.pid})"
                for r in self._runners.values()
                if r.handle is not None and not r.handle.exited
            ]
            if not holding and self.watcher is not None and self.watcher.reaps_orphans:
                left = self.os.descendants()
                holding = [self.os.describe(pid) for pid in left[:10]] + (["…"] if len(left) > 10 else [])
            what = ", ".join(holding) or "processes left behind by the supervised ones"
            self.log.error(
                "shutdown_timeout",
                f"shutdown_timeout of {budget:g} s ran out; still running: {what}; sending SIGKILL",
                holding=holding,
            )
            self.force_stop()
            with trio.move_on_after(_KILL_WAIT):
                for r in self._runners.values():
                    if r.handle is not None:
                        await r.handle.waiter.wait()
                await self._wait_no_children()
        self.log.info(
            "shutdown_done",
            f"shutdown done in {trio.current_time() - started:.2f} s",
            took=round(trio.current_time() - started, 3),
        )

    async def _stop_in_order(self, runner: Runner) -> None:
        for name in self.plan.stop_waits_for.get(runner.name, ()):
            await self._stopped[name].wait()
        sig = runner.spec.stop_signal
        if sig is None and runner.spec.main:
            sig = self._stop_signal
        await runner.stop(sig)
        self._stopped[runner.name].set()

    async def _run_stop_job(self, job: Runner) -> None:
        after = self.plan.stop_job_after.get(job.name, frozenset())
        try:
            for name in after:
                await self._stopped[name].wait()
            if self.force.is_set():
                self.log.warning("skipped", "was skipped: the shutdown was forced", process=job.name)
                return
            if not any(self._runners[n].ever_started for n in after):
                self.log.info(
                    "skipped", "was not run: none of the processes it follows had started", process=job.name
                )
                return
            await job.lifecycle()
        except trio.Cancelled:
            if not job.ever_started:
                self.log.warning(
                    "skipped",
                    "was skipped: the shutdown budget ran out before it could run",
                    process=job.name,
                )
            raise
        finally:
            self._stopped[job.name].set()

    async def _sweep(self) -> None:
        """SIGTERM whatever is left in our tree (as PID 1: the namespace), wait until it is gone."""
        watcher = self.watcher
        if watcher is None or not watcher.reaps_orphans:
            return
        left = self.os.descendants()
        if not left:
            return
        self.log.info(
            "sweep",
            f"sending SIGTERM to {len(left)} process(es) left behind (pids {', '.join(map(str, left[:10]))}"
            f"{', …' if len(left) > 10 else ''})",
            pids=left[:100],
        )
        self.os.kill_all(signal.SIGTERM)
        if self.force.is_set():
            self.os.kill_all(signal.SIGKILL)
        await self._wait_no_children()

    async def _wait_no_children(self) -> None:
        if self.watcher is not None and self.watcher.reaps_orphans:
            await self.watcher.wait_no_children()

    async def _emergency_stop(self, exc: BaseException) -> None:
        """trinit itself failed: still stop every process within the budget, then re-raise."""
        if not isinstance(exc, (trio.Cancelled, KeyboardInterrupt)) and not _only_cancelled(exc):
            self.log.error(
                "internal_error",
                f"internal error: {describe_error(exc)}; stopping every process (please report this)",
            )
            if self.log.enabled("debug"):
                import traceback

                self.log.debug("traceback", "".join(traceback.format_exception(exc)).rstrip())
        self.shutting_down = True
        live = [r.handle for r in self._runners.values() if r.handle is not None and not r.handle.exited]
        for h in live:
            try:
                h.signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        with trio.move_on_after(self.config.shutdown_timeout):
            for h in live:
                await h.waiter.wait()
            await self._sweep()
        self.force_stop()
        with trio.move_on_after(_KILL_WAIT):
            for h in live:
                await h.waiter.wait()
            await self._wait_no_children()

    async def _pump(self, pump: Callable[[], Awaitable[None]]) -> None:
        try:
            await pump()
        finally:
            self._pumps -= 1
            if self._pumps == 0:
                self._pumps_done.set()

    async def _drain_output(self) -> None:
        """Let the output pumps read to the end (bounded: a grandchild may hold a pipe), then flush."""
        with trio.move_on_after(1.0):
            if self._pumps:
                await self._pumps_done.wait()
            for w in (self._stdout, self._stderr):
                if w is not None:
                    await trio.to_thread.run_sync(w.close, 1.0)

    def _final_code(self) -> int:
        if self.internal_error is not None and not _only_cancelled(self.internal_error):
            return INTERNAL_ERROR
        code: int
        if self._fixed_code is not None:
            code = self._fixed_code
        elif self._main is not None:
            status = self._main.last_status
            code = status.exit_code if status is not None else 1
            if (
                status is not None
                and status.code is not None
                and status.code in self._main.spec.success_codes
            ):
                code = 0
        else:
            code = 0
        if code in self.options.success_exits:
            code = 0
        return code

    # -- ready_file ------------------------------------------------------------------------------

    def _update_ready_file(self) -> None:
        path = self.config.ready_file
        if path is None:
            return
        if not self._down and not self.shutting_down:
            if not self._ready_file_made:
                try:
                    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                    with open(path, "w") as f:
                        f.write(f"{os.getpid()}\n")
                except OSError as exc:
                    self.log.warning(
                        "ready_file",
                        f"everything is up, but ready_file {path} could not be created ({exc.strerror}); "
                        "make its folder writable for trinit's user or change ready_file",
                    )
                    return
                self._ready_file_made = True
                self.log.info("all_ready", f"everything is up; created {path}")
        elif self._ready_file_made:
            self._remove_ready_file()

    def _remove_ready_file(self) -> None:
        path = self.config.ready_file
        if path is None or not self._ready_file_made:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._ready_file_made = False

    # -- the library's handle -----------------------------------------------------------------------

    def status(self) -> dict[str, ProcessStatus]:
        return {name: r.status() for name, r in self._runners.items()}

    def send_signal(self, name: str, sig: int) -> None:
        handle = self._lookup(name).handle
        if handle is None:
            raise ProcessLookupError(f"process {name!r} is not running")
        handle.signal(sig)

    async def wait_ready(self, name: str) -> None:
        runner = self._lookup(name)
        while not (runner.ready or runner.completed):
            if runner.final:
                raise TrinitError(f"process {name!r} will not become ready: it is {runner.state}")
            await self._changed.wait()

    async def stop(self, name: str) -> None:
        await self._lookup(name).stop()

    async def restart(self, name: str) -> None:
        runner = self._lookup(name)
        if runner.handle is not None:
            await runner.restart()
            return
        if runner.final and not self.shutting_down and self._procs is not None:
            runner.final = runner.failed = runner.completed = False
            runner._stop_requested = False
            runner.done = trio.Event()
            self._live.add(runner.name)
            self._procs.start_soon(runner.lifecycle, name=f"trinit {runner.name}")

    async def wait(self) -> int:
        await self.finished.wait()
        return self._final_code()

    def _lookup(self, name: str) -> Runner:
        try:
            return self._runners[name]
        except KeyError:
            raise KeyError(f"no process named {name!r}; known: {', '.join(self._runners)}") from None


def describe_error(exc: BaseException) -> str:
    """``RuntimeError: what`` for the real errors inside (possibly nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_error(e) for e in exc.exceptions if not _only_cancelled(e))
    return f"{type(exc).__name__}: {exc}"


def _only_cancelled(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_cancelled(e) for e in exc.exceptions)
    return False
