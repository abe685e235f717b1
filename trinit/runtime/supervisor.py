"""The runtime of one run: the runners, what their changes mean for the run, and the run itself.

The CLI, ``trinit.run`` and ``open_supervisor`` all drive a :class:`Runtime`; zero-config
mode is a plan with one main process. Everything that touches the OS goes through
``os_layer``; starting children is :mod:`.spawner`'s job, stopping them :mod:`.shutdown`'s
and :mod:`.stopping`'s, signals :mod:`.signal_policy`'s, process-wide effects :mod:`.bootstrap`'s.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import trio

from ..system.status import ExitStatus
from .bootstrap import Bootstrap
from .events import EventHub
from .exit_code import exit_code
from .log_watch import log_watch_for
from .options import RuntimeOptions
from .parking import start_run_phase
from .process import ProcessStatus
from .runner import Runner
from .shutdown import Shutdown, only_cancelled
from .signal_policy import on_signal
from .spawner import Spawner
from .state import FINAL, State

if TYPE_CHECKING:
    from ..config.model import Config, ProcessSpec
    from ..config.plan import Plan
    from ..io.log import Logger
    from ..io.writer import FdWriter
    from ..system.protocol import OSLayer
    from ..system.reaper import ExitWatcher
    from ..system.wallclock import WallClock
    from .control import ControlServer
    from .health import HealthWatch
    from .hooks import Hooks
    from .process import ProcessHandle
    from .ready_file import ReadyFile
    from .reload import Reloader
    from .scheduled_job import ScheduledJob
    from .scheduler import Scheduler


class Runtime:
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
        wall_clock: WallClock | None = None,
        reload_source: Callable[[], Config] | None = None,
    ) -> None:
        """``reload_source`` reads the config again for a reload (SPEC §10): None when there is no file."""
        self.plan = plan
        self.config = plan.config
        self.os = os_layer
        self.log = log
        self.options = options or RuntimeOptions()
        self.spawner = Spawner(
            config=self.config,
            os=os_layer,
            log=log,
            environ=dict(os.environ if environ is None else environ),
            environ_is_ours=environ is None,
            stdout=stdout,
            stderr=stderr,
            prestarted=dict(prestarted or {}),
        )
        self.boot = Bootstrap(os=os_layer, log=log, options=self.options, watcher=watcher)
        self.ready_file: ReadyFile | None = None  # made only with one (a reload may set one)
        self.ready_retired = False
        if self.config.ready_file:
            from .ready_file import ReadyFile
            self.ready_file = ReadyFile(self.config.ready_file, os_layer, log)
        self.shutting_down = False
        self.force = trio.Event()
        self.finished = trio.Event()
        self.stop_signal: int | None = None
        self._shutdown_reason: str | None = None
        self._shutdown_requested = trio.Event()
        self._changed: trio.Event | None = None
        self.events = EventHub(log)
        self.runners = {spec.name: self.make_runner(spec) for spec in self.config.processes}
        self.run_phase = [r for r in self.runners.values() if r.spec.phase == "run"]
        #: Where each process comes in the start order (several names are applied in it).
        self.start_rank = {name: i for i, name in enumerate(plan.order)}
        # Scheduled jobs run until the shutdown, and do not count toward ready_file (SPEC §11).
        self.jobs: dict[str, ScheduledJob] = {}  # by name; kept by the scheduler, made at the first
        self._wall_clock = wall_clock
        if any(r.spec.scheduled for r in self.runners.values()):
            self.scheduler.schedule(self.runners.values())
        self._live = {r.name for r in self.run_phase if r.name not in self.jobs}
        self._down = set(self._live)
        self._forwarders: dict[str, Any] = {}
        self._fixed_code: int | None = None
        self._main = next((r for r in self.run_phase if r.spec.main), None)
        self._shutdown = Shutdown(self)
        self._procs: trio.Nursery | None = None
        self.control: ControlServer | None = None
        if self.config.control_socket:  # the door: runtime/control only when a socket is served
            from .control import ControlServer
            self.control = ControlServer(self, self.config.control_socket)
        self._reload_source = reload_source
        self.internal_error: BaseException | None = None
        self.exit_code: int | None = None

    # A feature's module loads at its first use (idle RSS): hooks, health checks, reloads, scheduled jobs.
    @cached_property
    def hooks(self) -> Hooks:
        from .hooks import Hooks
        return Hooks(self.spawner, self.log, self.force)

    @cached_property
    def health(self) -> HealthWatch:
        from .health import HealthWatch
        return HealthWatch(self.log, self.health_changed)

    @cached_property
    def scheduler(self) -> Scheduler:
        from .scheduler import Scheduler
        return Scheduler(self, self._wall_clock, self.spawner.environ, self.jobs)

    @cached_property
    def reloader(self) -> Reloader:
        from .reload import Reloader
        return Reloader(self, self._reload_source)

    def make_runner(self, spec: ProcessSpec) -> Runner:
        after = tuple(self.plan.start_after.get(spec.name, ()))
        return Runner(spec, self, start_after=after, log_watch=log_watch_for(spec))

    def track(self, runner: Runner | str) -> None:
        """Count a runner a reload added or changed toward the end of the run and ``ready_file``
        as its state says (a name: one a reload removed, counted no more)."""
        name = runner if isinstance(runner, str) else runner.name
        self._live.discard(name)
        self._down.discard(name)
        if isinstance(runner, str):
            self._forwarders.pop(name, None)
        elif runner.spec.phase == "run" and not runner.spec.scheduled:
            if not runner.final or runner.state is State.STOPPED:
                self._live.add(name)
            if not runner.up:
                self._down.add(name)

    def forwarded_to(self) -> list[str]:
        return list(self._forwarders)

    @property
    def all_up(self) -> bool:
        """The ``ready_file`` condition (SPEC §4), which ``probe ready`` answers too."""
        return not self._down and not self.shutting_down

    # -- RunnerHost ------------------------------------------------------------------------------

    def runner(self, name: str) -> Runner:
        return self.runners[name]

    def changed(self) -> trio.Event:
        if self._changed is None:  # made when asked for: 10,000 state changes need no 10,000 events
            self._changed = trio.Event()
        return self._changed

    def notify(self, runner: Runner) -> None:
        """A runner's state changed: wake waiters, keep forwarding, ``ready_file`` and the end in step."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        if self.events.followed:
            self.events.state_changed(runner)
        spec, handle = runner.spec, runner.handle
        name = spec.name
        if spec.forward_signals and handle is not None and not handle.exited:
            if self._forwarders.get(name) != handle.signal:
                self._forwarders[name] = handle.signal
                self.boot.set_targets(tuple(self._forwarders.values()))
        elif name in self._forwarders:
            del self._forwarders[name]
            self.boot.set_targets(tuple(self._forwarders.values()))
        if spec.phase != "run" or name in self.jobs:
            return
        state = runner.state
        if state in FINAL:
            if state is not State.STOPPED:  # a stopped one may be started again
                self._live.discard(name)
                self.end_if_nothing_left()
            if runner.gone_for_good:  # the main process exited, or a service with no restart to come
                self.retire_ready_file()
        (self._down.discard if runner.up else self._down.add)(name)
        if self.ready_file is not None:
            self.ready_file.update(self.all_up)

    def end_if_nothing_left(self) -> None:
        """Without a main process, the run ends once every process has finished."""
        if not self._live and self._main is None and not self.shutting_down and not self.jobs:
            self.request_shutdown("every process has finished")

    def health_changed(self, runner: Runner) -> None:
        """Its health verdict changed (SPEC §9): ``ready_file`` follows; its state did not change."""
        (self._down.discard if runner.up else self._down.add)(runner.name)
        if self.ready_file is not None:
            self.ready_file.update(self.all_up)

    def retire_ready_file(self) -> None:
        """The run is ending: ``ready_file`` goes for good, one a reload sets later too (SPEC §4)."""
        self.ready_retired = True
        if self.ready_file is not None:
            self.ready_file.retire()

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
        return self.spawner.spawn(runner, give_terminal=runner.spec.main and self.options.handle_signals)

    async def probe(self, runner: Runner, handle: ProcessHandle) -> bool:
        spec = runner.spec
        assert spec.ready is not None
        if spec.ready.kind in ("notify", "fd"):  # the process says so itself (SPEC §9)
            return await self.spawner.notify_hub().wait_ready(spec, spec.ready.timeout)
        from .readiness import wait_ready  # the door: a run without probes never loads them
        return await wait_ready(spec.ready, run_exec=self._run_exec(spec), log_watch=runner.log_watch)

    async def watch(self, runner: Runner, handle: ProcessHandle) -> None:
        spec = runner.spec
        if spec.health is not None or spec.watchdog is not None:
            notifier = self.spawner.notifier(spec.name)
            await self.health.watch(runner, handle, notifier, self._run_exec(spec))

    def _run_exec(self, spec: ProcessSpec) -> Callable[[tuple[str, ...], float], Awaitable[bool]]:
        async def run_exec(argv: tuple[str, ...], timeout: float) -> bool:
            return await self.spawner.run_probe(spec, argv, timeout, self.force)

        return run_exec

    async def before_restart(self, runner: Runner) -> None:
        from . import cascade  # the first restart loads it (its followers, SPEC §10)
        await cascade.before_restart(self, runner)

    # -- the run -----------------------------------------------------------------------------------

    def on_signal(self, received: int, passed: int) -> None:
        on_signal(self, received, passed)

    def request_shutdown(self, reason: str, *, stop_signal: int | None = None) -> None:
        """Begin the graceful shutdown (idempotent); ``run()`` carries it out.

        ``stop_signal``: the signal that asked for it, passed on to the main process.
        """
        if self._shutdown_requested.is_set():
            return
        # From this moment nothing new starts, even before the shutdown task runs.
        self.shutting_down = True
        self.retire_ready_file()
        self.stop_signal = stop_signal
        self._shutdown_reason = reason
        self._shutdown_requested.set()
        for r in self.runners.values():
            r.wake()

    def force_stop(self) -> None:
        """Skip every remaining grace period: SIGKILL all that still runs."""
        self.force.set()

    async def run(self, *, task_status: trio.TaskStatus[Runtime] = trio.TASK_STATUS_IGNORED) -> int:
        """Run everything until the shutdown has finished; returns trinit's exit code."""
        try:
            async with trio.open_nursery() as outer:
                self.spawner.nursery = outer
                self._start(outer)
                try:
                    async with trio.open_nursery() as procs:
                        self._procs = procs
                        starts = [r for r in self.run_phase if r.name not in self.jobs]
                        procs.start_soon(start_run_phase, starts, procs, self.spawner, name="trinit start")
                        if self.jobs:
                            self.scheduler.start(procs)
                        if self.jobs and not self._down and self.ready_file:  # only scheduled jobs: all up
                            self.ready_file.update(True)
                        task_status.started(self)
                        if not self.run_phase:  # nothing would ever end the run: stop jobs, then exit
                            self.request_shutdown("there is no run-phase process")
                        await self._shutdown_requested.wait()
                        drain_by = trio.current_time() + self.config.shutdown_timeout
                        assert self._shutdown_reason is not None
                        await self._shutdown.run(self._shutdown_reason)
                        procs.cancel_scope.cancel()
                    self._procs = None
                except BaseException as exc:
                    self.internal_error = exc
                    with trio.CancelScope(shield=True):
                        await self._shutdown.emergency(exc)
                    raise
                finally:
                    self.boot.restore()
                await self.spawner.drain(drain_by, self.log)
                if self.control is not None:
                    await self.control.close()
                outer.cancel_scope.cancel()
        finally:
            self.events.close()
            self.finished.set()
        self.exit_code = self._final_code()
        return self.exit_code

    def _start(self, nursery: trio.Nursery) -> None:
        self.spawner.watcher = self.boot.start_watcher(nursery)
        if self.control is not None:
            self.control.open(nursery)
        self.spawner.adopt_prestarted(self.runners)  # before the first drain and the signals
        reload_signal = self.config.reload_signal  # fixed for the run: a reload cannot change it
        consumed = frozenset({reload_signal}) if reload_signal else frozenset()
        self.boot.install_signals(self.on_signal, tuple(self._forwarders.values()), consumed=consumed)

    def _final_code(self) -> int:
        crashed = self.internal_error is not None and not only_cancelled(self.internal_error)
        return exit_code(crashed, self._fixed_code, self._main, self.options.success_exits)

    # -- what steering (ctl, the library handle) needs -------------------------------------------

    def status(self) -> dict[str, ProcessStatus]:
        return {
            name: ProcessStatus(
                name, r.state.public, r.handle.pid if r.handle else None, r.restarts, r.last_status
            )
            for name, r in self.runners.items()
        }

    def launch(self, runner: Runner) -> None:
        """Run a finished (or new) process's life again: it waits for its conditions, then starts."""
        assert self._procs is not None
        if runner.final:
            runner.revive()
        if runner.spec.scheduled:
            self.scheduler.add(runner, self._procs)
            return
        self._live.add(runner.name)
        self._procs.start_soon(partial(runner.lifecycle, park_in=self._procs), name=f"trinit {runner.name}")

    def in_background(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Carry out a request after its reply (a ``ctl stop`` without ``--wait``); once the
        processes' nursery has closed there is nothing left to carry it out on."""
        if self._procs is not None:
            self._procs.start_soon(fn, *args)

    # The operations of the public handle and of trinit.testing's make_supervisor (steer loads at the first).

    def send_signal(self, name: str, sig: int) -> None:
        from . import steer
        steer.send_signal(self, name, sig)

    async def wait_ready(self, name: str) -> None:
        from . import steer
        await steer.wait_for(self, [name], "ready")

    async def start(self, name: str, *, wait: bool = False) -> None:
        from . import steer
        await steer.start(self, [name], wait=wait)

    async def stop(self, name: str) -> None:
        from . import steer
        await steer.stop(self, [name], wait=True)

    async def restart(self, name: str) -> None:
        from . import steer
        await steer.restart(self, [name], background=False)

    async def wait(self) -> int:
        await self.finished.wait()
        return self._final_code()
