"""One supervised process's life: wait for its conditions, start, probe, exit, restart or retry.

A :class:`Runner` owns one ProcessSpec for the whole run; each start makes a
:class:`ProcessHandle` (one pid). The runner talks to the rest of the runtime only
through :class:`RunnerHost` (the supervisor), so its rules are tested against fakes.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, Protocol

import attrs
import trio

from ..boot.parse import signal_name
from ..system.status import ExitStatus

if TYPE_CHECKING:
    from ..config.model import Condition, ProcessSpec
    from ..io.log import Level, Logger
    from ..system.reaper import Waiter
    from .readiness import LogWatch

State = Literal["waiting", "starting", "running", "ready", "stopping", "exited", "failed", "skipped"]


class StartFailure(Exception):
    """A process could not be started for a reason other than exec (its env_file, say)."""


@attrs.frozen
class ProcessStatus:
    """What ``Supervisor.status()`` reports for one process."""

    name: str
    state: State
    pid: int | None
    restarts: int
    last_exit: ExitStatus | None


@attrs.define(eq=False)
class ProcessHandle:
    """One running instance of a process: its pid, and how to signal it safely.

    Signals go out only while the process has not been reaped, so a recycled pid is never
    hit; with ``group`` they go to its whole process group.
    """

    name: str
    pid: int
    group: bool
    waiter: Waiter
    started_at: float
    send: Callable[[int, int], None]
    sendpg: Callable[[int, int], None]
    sendfd: Callable[[int, int], None] | None = None

    @property
    def exited(self) -> bool:
        return self.waiter.status is not None

    def signal(self, sig: int) -> None:
        if self.waiter.status is not None:
            raise ProcessLookupError(f"process {self.name!r} (pid {self.pid}) has exited")
        if self.group:
            self.sendpg(self.pid, sig)
        elif self.waiter.pidfd is not None and self.sendfd is not None:
            self.sendfd(self.waiter.pidfd, sig)
        else:
            self.send(self.pid, sig)


class RunnerHost(Protocol):
    """What a runner needs from the supervisor."""

    log: Logger
    shutting_down: bool
    force: trio.Event

    def spawn(self, runner: Runner) -> ProcessHandle: ...

    def runner(self, name: str) -> Runner: ...

    def changed(self) -> trio.Event: ...

    def notify(self, runner: Runner) -> None: ...

    def process_failed(self, runner: Runner, code: int) -> None: ...

    def main_exited(self, runner: Runner, status: ExitStatus | None, failed_without_exit: bool) -> None: ...

    def probe(self, runner: Runner, handle: ProcessHandle) -> Awaitable[bool]: ...


@attrs.define(eq=False)
class Runner:
    spec: ProcessSpec
    host: RunnerHost
    start_after: tuple[tuple[str, Condition], ...] = ()
    state: State = "waiting"
    handle: ProcessHandle | None = None
    last_pid: int | None = None
    last_status: ExitStatus | None = None
    restarts: int = 0
    ever_started: bool = False
    ready: bool = False
    completed: bool = False
    final: bool = False
    failed: bool = False
    log_watch: LogWatch | None = None
    _consecutive: int = 0
    _stop_requested: bool = False
    _restart_requested: bool = False
    _probe_failed: bool = False
    _timed_out: bool = False
    _pending: trio.CancelScope | None = None
    _adopted: ProcessHandle | None = None
    done: trio.Event = attrs.field(factory=trio.Event)

    def adopt(self, handle: ProcessHandle) -> None:
        """Take over a process started before the runtime (the CLI's fast start).

        It is running whatever happens next (a shutdown may already be under way), so
        it is this runner's from now on: stopped in order and its status recorded.
        """
        self._adopted = self.handle = handle
        self.last_pid = handle.pid
        self.ever_started = True
        self.state = "running"

    @property
    def name(self) -> str:
        return self.spec.name

    def status(self) -> ProcessStatus:
        pid = self.handle.pid if self.handle is not None else None
        return ProcessStatus(self.name, self.state, pid, self.restarts, self.last_status)

    # -- conditions others wait for ----------------------------------------------------------

    def satisfies(self, condition: Condition) -> bool:
        if condition == "started":
            return self.ever_started
        if condition == "ready":
            return self.ready
        return self.completed

    def can_never_satisfy(self, condition: Condition) -> bool:
        if not self.final:
            return False
        if condition == "started":
            return not self.ever_started
        if condition == "ready":
            return not self.ready
        return not self.completed

    @property
    def up(self) -> bool:
        """Counts toward ``ready_file``: ready (oneshots: completed), or given up on under ``"ignore"``."""
        if self.completed or (self.ready and not self.spec.oneshot):
            return True
        if self.final:
            return not self.failed or self.spec.on_failure == "ignore"
        return False

    # -- the life ------------------------------------------------------------------------------

    async def lifecycle(self) -> None:
        """Run the process to its end under its policies; returns once it is final."""
        try:
            if await self._await_start():
                await self._attempts()
            elif not self.final:  # stopped, or the shutdown began, before it could start
                why = "it was stopped" if self._stop_requested else "the shutdown began"
                self.host.log.info(
                    "skipped", f"was not started: {why} before it could start", process=self.name
                )
                self._finish("skipped")
        finally:
            if self.handle is None:
                self._finish()

    def _set_state(self, state: State) -> None:
        self.state = state
        self.host.notify(self)

    def _finish(self, state: State | None = None) -> None:
        if state is not None:
            self.state = state
        self.final = True
        self.ready = False
        self.host.notify(self)
        self.done.set()

    async def _await_start(self) -> bool:
        if self._adopted is not None:
            return True
        while True:
            if self._stop_requested or (self.host.shutting_down and self.spec.phase == "run"):
                return False
            waiting_for: list[str] = []
            for dep, condition in self.start_after:
                other = self.host.runner(dep)
                if other.satisfies(condition):
                    continue
                if other.can_never_satisfy(condition):
                    self._skip(dep, condition)
                    return False
                waiting_for.append(f"{dep} ({condition})")
            if not waiting_for:
                return True
            if self.state != "waiting":
                self._set_state("waiting")
            changed = self.host.changed()
            with trio.CancelScope() as self._pending:
                await changed.wait()
            self._pending = None

    def _skip(self, dep: str, condition: Condition) -> None:
        self.host.log.warning(
            "skipped",
            f"was skipped: it waits for {dep} to be {condition}, which can no longer happen",
            process=self.name,
            dependency=dep,
            condition=condition,
        )
        self.failed = True
        # The failure first (it fixes the exit code), then the state change (which may end the run).
        if self.spec.on_failure == "shutdown":
            self.host.process_failed(self, 1)
        self._finish("skipped")

    async def _attempts(self) -> None:
        spec = self.spec
        attempt = 0
        while True:
            attempt += 1
            status, run_time = await self._run_once()
            failed_without_exit = self._probe_failed or self._timed_out or status is None
            if spec.main:
                self._finish("exited" if status is not None else "failed")
                self.host.main_exited(self, status, failed_without_exit)
                return
            if self._stop_requested:
                self._finish("exited")
                return
            if self._restart_requested:
                self._restart_requested = False
                self.restarts += 1
                self._log_restart(0.0, "on request")
                continue
            ok = not failed_without_exit and status is not None and self._success(status)
            if spec.oneshot:
                if ok:
                    self.completed = True
                    self._finish("exited")
                    return
                if attempt <= spec.retries:
                    delay = self._delay()
                    self._consecutive += 1
                    self.host.log.info(
                        "retrying",
                        f"failed; retrying in {delay:g} s (attempt {attempt + 1} of {spec.retries + 1})",
                        process=self.name,
                        delay=delay,
                    )
                    if await self._sleep(delay):
                        continue
                    self._finish("exited")
                    return
            else:
                if run_time >= spec.restart_reset_after:
                    self._consecutive = 0
                wants = spec.restart == "always" or (spec.restart == "on-failure" and not ok)
                limit = spec.max_restarts
                if wants and (limit is None or self._consecutive < limit):
                    delay = self._delay()
                    self._consecutive += 1
                    self.restarts += 1
                    self._log_restart(delay, f"restart {self._consecutive}")
                    if await self._sleep(delay):
                        continue
                    self._finish("exited")
                    return
                if wants:
                    self.host.log.error(
                        "failed",
                        f"restarted {self._consecutive} times in a row; giving up (max_restarts = {limit})",
                        process=self.name,
                    )
                    ok = False
                if ok:
                    self._finish("exited")
                    return
            code = 1 if failed_without_exit or status is None else status.exit_code
            self._fail(code or 1)
            return

    def _success(self, status: ExitStatus) -> bool:
        return status.signal is None and status.spawn_errno is None and status.code in self.spec.success_codes

    def _delay(self) -> float:
        spec = self.spec
        if spec.restart_delay <= 0:
            return 0.0
        exponent = min(self._consecutive, 64)
        return min(spec.restart_delay * math.pow(2, exponent), spec.restart_delay_max)

    def _log_restart(self, delay: float, why: str) -> None:
        self.host.log.info(
            "restarting",
            f"restarting in {delay:g} s ({why})",
            process=self.name,
            delay=delay,
            restarts=self.restarts,
        )

    async def _sleep(self, delay: float) -> bool:
        """Back off before the next attempt; False if a stop or the shutdown cancelled it.

        A stop job runs during the shutdown, so only a stop (or the budget) ends its back-off.
        """
        if self._cancelled():
            return False
        with trio.CancelScope() as self._pending:
            await trio.sleep(delay)
        self._pending = None
        return not self._cancelled()

    def _cancelled(self) -> bool:
        return self._stop_requested or (self.host.shutting_down and self.spec.phase == "run")

    def _fail(self, code: int) -> None:
        self.failed = True
        what = (
            "the shutdown begins"
            if self.spec.on_failure == "shutdown"
            else "carrying on (on_failure = ignore)"
        )
        self.host.log.error("failed", f"failed; {what}", process=self.name, code=code)
        # The failure first (it fixes the exit code), then the state change (which may end the run).
        if self.spec.on_failure == "shutdown":
            self.host.process_failed(self, code)
        self._finish("failed")

    async def _run_once(self) -> tuple[ExitStatus | None, float]:
        """Start once and wait for the exit: (status or None if it never started, run time)."""
        self._probe_failed = self._timed_out = False
        handle = self._adopted  # started before the runtime: already running, whatever comes next
        self._adopted = None
        if handle is None:
            if self._stop_requested or (self.host.shutting_down and self.spec.phase == "run"):
                return None, 0.0
            self._set_state("starting")
        try:
            if handle is None:
                handle = self.host.spawn(self)
        except OSError as exc:
            status = ExitStatus(spawn_errno=exc.errno or 2)
            self.last_status = status
            self.host.log.error(
                "failed",
                f"could not start {self.spec.command[0]!r}: {exc.strerror or exc}",
                process=self.name,
                code=status.exit_code,
            )
            return status, 0.0
        except StartFailure as exc:
            self.host.log.error("failed", f"could not start: {exc}", process=self.name)
            return None, 0.0
        command = self.spec.command
        self.host.log.info(
            "started", f"started: {' '.join(command)}", process=self.name, pid=handle.pid, argv=list(command)
        )
        self.handle = handle
        self.last_pid = handle.pid
        self.ever_started = True
        if self.log_watch is not None:
            self.log_watch.reset()
        self._set_state("running")
        async with trio.open_nursery() as nursery:
            if self.spec.ready is not None:
                nursery.start_soon(self._probe, handle)
            else:
                self._became_ready()
            if self.spec.timeout is not None:
                nursery.start_soon(self._watch_timeout, handle, self.spec.timeout)
            status = await handle.waiter.wait()
            nursery.cancel_scope.cancel()
        run_time = trio.current_time() - handle.started_at
        self.last_status = status
        self.handle = None
        self.ready = False
        caused_by_us = self._stop_requested or self._restart_requested
        level: Level = "info" if caused_by_us or self._success(status) else "warning"
        self.host.log.log(
            level,
            "exited",
            f"{status.describe()} after {run_time:.2f} s",
            process=self.name,
            pid=handle.pid,
            code=status.code,
            signal=signal_name(status.signal) if status.signal else None,
            run_time=round(run_time, 3),
        )
        self._set_state("exited")
        return status, run_time

    def _became_ready(self) -> None:
        self.ready = True
        self._set_state("ready")

    async def _probe(self, handle: ProcessHandle) -> None:
        ok = await self.host.probe(self, handle)
        if handle.exited:
            return
        if ok:
            self.host.log.info("ready", "is ready", process=self.name, pid=handle.pid)
            self._became_ready()
            return
        assert self.spec.ready is not None
        self.host.log.error(
            "failed",
            f"did not become ready within {self.spec.ready.timeout:g} s; stopping it",
            process=self.name,
            pid=handle.pid,
        )
        self._probe_failed = True
        await self.terminate(handle)

    async def _watch_timeout(self, handle: ProcessHandle, timeout: float) -> None:
        await trio.sleep(timeout)
        self.host.log.error(
            "failed",
            f"ran longer than its timeout of {timeout:g} s; stopping it",
            process=self.name,
            pid=handle.pid,
        )
        self._timed_out = True
        await self.terminate(handle)

    # -- stopping ------------------------------------------------------------------------------

    async def terminate(self, handle: ProcessHandle, sig: int | None = None) -> None:
        """Stop signal, at most ``stop_timeout`` of grace (cut short by a forced shutdown), SIGKILL."""
        sig = sig or self.spec.stop_signal or signal.SIGTERM
        grace = self.spec.stop_timeout
        if handle.exited:
            return
        self._set_state("stopping")
        self.host.log.info(
            "stopping",
            f"stopping with {signal_name(sig)} (grace {grace:g} s)",
            process=self.name,
            pid=handle.pid,
            signal=signal_name(sig),
            grace=grace,
        )
        try:
            handle.signal(sig)
        except ProcessLookupError:
            return
        if not self.host.force.is_set():
            with trio.move_on_after(grace):
                await _first(handle.waiter.event.wait, self.host.force.wait)
        if handle.exited:
            return
        if self.host.force.is_set():
            why = "the shutdown was forced"
        else:
            why = f"it ignored {signal_name(sig)} for {grace:g} s (raise stop_timeout if it needs longer)"
        self.host.log.warning(
            "killed", f"sending SIGKILL: {why}", process=self.name, pid=handle.pid, grace=grace
        )
        try:
            handle.signal(signal.SIGKILL)
        except ProcessLookupError:
            return
        await handle.waiter.wait()

    async def stop(self, sig: int | None = None) -> None:
        """Stop for good (shutdown or a library ``stop()``): cancel what is pending, end the process."""
        self._stop_requested = True
        if self._pending is not None:
            self._pending.cancel()
        handle = self.handle
        if handle is not None:
            await self.terminate(handle, sig)
            await self.done.wait()

    async def restart(self) -> None:
        """Stop the running process and start it again at once (a library ``restart()``)."""
        handle = self.handle
        if handle is None:
            return
        self._restart_requested = True
        await self.terminate(handle)


async def _first(*waits: Callable[[], Awaitable[object]]) -> None:
    """Return as soon as the first of ``waits`` returns."""
    async with trio.open_nursery() as nursery:

        async def one(wait: Callable[[], Awaitable[object]]) -> None:
            await wait()
            nursery.cancel_scope.cancel()

        for wait in waits:
            nursery.start_soon(one, wait)
