"""One supervised process's life: wait for its conditions, start, probe, exit, restart or retry.

A :class:`Runner` owns one ProcessSpec for the whole run; each start makes a
:class:`ProcessHandle` (one pid). Its :class:`State` moves only along :mod:`.state`'s
table; after a run :func:`.policy.decide` says what next, and :func:`.stopping.terminate`
stops it. It sees the runtime only through :class:`RunnerHost`, so it is tested on fakes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import attrs
import trio

from ..system.status import ExitStatus
from .parking import Parking
from .policy import Kind, decide
from .process import ProcessHandle, StartFailure, log_exit, log_start, start_error
from .state import STOPS, EndReason, State, check_transition
from .stopping import stop_signal_for, terminate

if TYPE_CHECKING:
    from ..config.model import Condition

#: A run that trinit ended for one of these failed, whatever its exit status.
_FAILED_BY_US = frozenset({EndReason.NOT_READY, EndReason.TIMED_OUT, EndReason.UNHEALTHY})


@attrs.define(eq=False)
class Runner(Parking):
    """One process's life, driven by the state machine (see the module's docstring)."""

    def adopt(self, handle: ProcessHandle) -> None:
        """Take over a process started before the runtime (the CLI's fast start): it is
        running whatever happens next, so it is this runner's, stopped in order."""
        self._adopted = self.handle = handle
        self.last_pid = handle.pid
        self._move(State.RUNNING)

    def wake(self) -> None:
        """Stop waiting (for conditions or a back-off): the shutdown began."""
        if self._pending is not None:
            self._pending.cancel()

    async def stop(
        self, sig: int | None = None, *, hold: bool = False, why: EndReason = EndReason.STOP
    ) -> None:
        """Stop for good: cancel what is pending, end the process. ``hold``: a user's stop (it
        ends ``stopped`` and stays so; the shutdown's stop does not undo that); ``why``: FOLLOW."""
        handle = self._begin_stop(hold, why)
        if handle is not None:
            await self._terminate(handle, sig)
        if handle is not None or self.state is State.STARTING:  # STARTING: its pre_start hooks end first
            await self.done.wait()

    def _begin_stop(self, hold: bool, why: EndReason) -> ProcessHandle | None:
        if hold or self._end is not EndReason.HOLD:
            self._end = EndReason.HOLD if hold else why
        self.wake()
        return self.handle or self._left

    def stop_quickly(self) -> ProcessHandle:
        """The shutdown's stop of a running process with no ``pre_stop`` or ``stop_delay``, up to
        its stop signal, which the caller sends (to many at once: ``terminate_all``); then ``done``."""
        handle = self._begin_stop(False, EndReason.STOP)
        assert handle is not None and not handle.exited
        self._move(State.STOPPING)
        return handle

    async def restart(self) -> None:
        """Stop the running process and start it again at once (a library ``restart()``)."""
        handle = self.handle
        if handle is None:
            return
        if self._end not in STOPS:
            self._end = EndReason.RESTART
            await self.host.before_restart(self)
        await self._terminate(handle)

    def revive(self) -> None:
        """Make a finished runner wait for its conditions again (a start or restart)."""
        self._move(State.WAITING)
        self._end = None
        self._done = None

    async def lifecycle(
        self, *, wait: bool = True, run: bool = True, park_in: trio.Nursery | None = None
    ) -> bool:
        """Wait for its ``after``, then run it to its end under its policies; False (and final) if a stop,
        the shutdown or a dependency that can never hold came first (a scheduled job: §11, scheduler).
        ``park_in``: return once it runs with nothing to watch; its exit goes on there (:meth:`_park`)."""
        self.resume_in = park_in
        try:
            if not wait or await self._await_start():
                if run:
                    await self._attempts()
                return True
            if not self.final:  # stopped, or the shutdown began, before it could start
                why = "it was stopped" if self._end in STOPS else "the shutdown began"
                self.host.log.info(
                    "skipped", f"was not started: {why} before it could start", process=self.name
                )
                self._finish(State.STOPPED if self.held else State.SKIPPED)
            return False
        finally:
            if run:
                self._settle()

    def _settle(self) -> None:
        """However its task ended (cancelled, say): finished, unless its process still runs."""
        if not self.final and (self.handle is None or self.handle.exited):
            self.handle = None
            self._finish(State.SKIPPED if self.state is State.WAITING else State.EXITED)

    def _move(self, state: State) -> None:
        check_transition(self.state, state)
        self.state = state
        self.since = time.time()
        self.host.notify(self)

    def _finish(self, state: State) -> None:
        self._move(state)
        if self._done is not None:
            self._done.set()

    def _cancelled(self) -> bool:
        return self._end in STOPS or (self.host.shutting_down and self.spec.phase == "run")

    def _ended(self) -> State:
        """How a run that trinit cut short (a stop, the shutdown) ends."""
        return State.STOPPED if self.held else State.EXITED

    async def _await_start(self) -> bool:
        if self._adopted is not None:
            return True
        while True:
            if self._cancelled():
                return False
            waiting = False
            for dep, condition in self.start_after:
                other = self.host.runner(dep)
                if other.satisfies(condition):
                    continue
                if other.can_never_satisfy(condition):
                    self._skip(dep, condition)
                    return False
                waiting = True
            if not waiting:
                return True
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
        self._end = EndReason.DEPENDENCY
        if self.spec.on_failure == "shutdown":  # first: it fixes the exit code
            self.host.process_failed(self, 1)
        self._finish(State.SKIPPED)

    async def _attempts(self, ended: tuple[ExitStatus | None, float] | None = None) -> None:
        spec = self.spec
        while True:
            if ended is None:
                if self.state is State.BACKOFF and self._cancelled():
                    self._finish(self._ended())
                    return
                result = await self._run_once()
                if result is None:  # parked: its exit goes on in _resume
                    return
                status, run_time = result
            else:
                (status, run_time), ended = ended, None
            self._left, self.handle = self.handle, None
            end = self._end
            failed_without_exit = end in _FAILED_BY_US or status is None
            if spec.main:
                self._finish(State.EXITED if status is not None or end in STOPS else State.FAILED)
                self.host.main_exited(self, status, failed_without_exit)
                return
            if end in STOPS or (end is EndReason.RESTART and self._cancelled()):
                self._finish(self._ended())
                return
            if end is EndReason.RESTART:
                self._end = None
                self.restarts += 1
                self._log_restart(0.0, "on request")
                self._move(State.BACKOFF)
                continue
            ok = not failed_without_exit and status is not None and self._success(status)
            unhealthy = spec.health_action if end is EndReason.UNHEALTHY else None
            decision = decide(spec, ok, self._consecutive, run_time, unhealthy=unhealthy)
            self._consecutive = decision.consecutive
            if decision.kind is Kind.DONE:
                self._finish(State.COMPLETED if spec.oneshot else State.EXITED)
                return
            if decision.kind is Kind.FAIL:
                if decision.gave_up:
                    self.host.log.error(
                        "failed",
                        f"restarted {decision.consecutive} times in a row; giving up "
                        f"(max_restarts = {spec.max_restarts})",
                        process=self.name,
                    )
                code = 1 if status is None or failed_without_exit else status.exit_code
                self._fail(code or 1)
                return
            if self._cancelled():  # the shutdown began: no restart or retry, and none announced
                self._finish(self._ended())
                return
            if decision.kind is Kind.RETRY:
                attempt = f"attempt {decision.consecutive + 1} of {spec.retries + 1}"
                message = f"failed; retrying in {decision.delay:g} s ({attempt})"
                self.host.log.info("retrying", message, process=self.name, delay=decision.delay)
            else:
                self.restarts += 1
                self._log_restart(decision.delay, f"restart {decision.consecutive}")
            self._move(State.BACKOFF)
            if decision.kind is Kind.RESTART:
                await self.host.before_restart(self)
            if not await self._sleep(decision.delay):
                self._finish(self._ended())
                return

    def _success(self, status: ExitStatus) -> bool:
        return status.signal is None and status.spawn_errno is None and status.code in self.spec.success_codes

    def _log_restart(self, delay: float, why: str) -> None:
        message, n = f"restarting in {delay:g} s ({why})", self.restarts
        self.host.log.info("restarting", message, process=self.name, delay=delay, restarts=n)

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

    def _fail(self, code: int) -> None:
        shutdown = self.spec.on_failure == "shutdown"
        what = "the shutdown begins" if shutdown else "carrying on (on_failure = ignore)"
        if self.host.shutting_down:  # a stop job, say: the exit code is not changed by it
            what = "the shutdown was already under way and goes on"
        self.host.log.error("failed", f"failed; {what}", process=self.name, code=code)
        # The failure first (it fixes the exit code), then the state change (which may end the run).
        if shutdown:
            self.host.process_failed(self, code)
        self._finish(State.FAILED)

    async def _run_once(self) -> tuple[ExitStatus | None, float] | None:
        """Start once and wait for the exit: (status or None if it never started, run time);
        None if it parked (see :meth:`_park`)."""
        handle = self._adopted  # started before the runtime: already running, whatever comes next
        self._adopted = None
        if handle is None:
            self._starting()
            if self.spec.pre_start and not await self._pre_start():
                return None, 0.0
            started = self._spawn()
            if not isinstance(started, ProcessHandle):
                return started
            handle = started
        if self._running(handle) and self._park(handle):
            return None
        if self.plain:
            status = await handle.waiter.wait()
        else:
            status = await self._watch_run(handle)
        return status, await self._after_run(handle, status)

    def _starting(self) -> None:
        if self._end not in STOPS:
            self._end = None
        self._move(State.STARTING)

    def _spawn(self) -> ProcessHandle | tuple[ExitStatus | None, float]:
        """Its process, or how the spawn failed (logged): (status or None, run time 0)."""
        try:
            return self.host.spawn(self)
        except OSError as exc:
            return self._failed(exc)
        except StartFailure as exc:
            self.host.log.error("failed", f"could not start: {exc}", process=self.name)
            return None, 0.0

    def _failed(self, exc: OSError) -> tuple[ExitStatus | None, float]:
        """A spawn that raised ``exc``: logged; (its status or None, run time 0)."""
        status, message = start_error(exc, self.spec.command[0], self.spec.cwd)
        self.last_status = status
        code = 1 if status is None else status.exit_code
        self.host.log.error("failed", message, process=self.name, code=code)
        return status, 0.0

    def _running(self, handle: ProcessHandle) -> bool:
        """It runs: log it and move on; True if nothing watches the run beside its exit."""
        log_start(self.host.log, handle, self.spec.command)
        self.handle = handle
        self.last_pid = handle.pid
        if self.log_watch is not None:
            self.log_watch.reset()
        if self.state is State.STARTING:  # an adopted one is running already, or stopping
            self._move(State.RUNNING)
        if not self.plain:
            return False
        if self.state is State.RUNNING:  # nothing runs beside the wait: no nursery (10,000 of them)
            self._move(State.READY)
        return True

    async def _watch_run(self, handle: ProcessHandle) -> ExitStatus:
        """Wait for the exit, with what watches the run beside: readiness, health, ``timeout``."""
        async with trio.open_nursery() as nursery:
            if self.spec.ready is not None:
                nursery.start_soon(self._probe, handle)
            elif self.state is State.RUNNING:
                self._move(State.READY)
                nursery.start_soon(self.host.watch, self, handle)
            if self.spec.timeout is not None:
                nursery.start_soon(self._watch_timeout, handle, self.spec.timeout)
            status = await handle.waiter.wait()
            nursery.cancel_scope.cancel()
        return status

    async def _after_run(self, handle: ProcessHandle, status: ExitStatus) -> float:
        """Log the exit and run ``post_stop``; the run time (``post_stop`` not counted)."""
        run_time = trio.current_time() - handle.started_at
        self.last_status = status
        caused_by_us = self._end in STOPS or self._end in (EndReason.RESTART, EndReason.UNHEALTHY)
        log_exit(self.host.log, handle, status, run_time, quiet=caused_by_us or self._success(status))
        if self.spec.post_stop is not None:  # part of its stop: it counts as stopped after it
            self._move(State.STOPPING)
            await self.host.hooks.post_stop(self, status)
        return run_time

    async def _pre_start(self) -> bool:
        """Its pre_start hooks (SPEC §9): False after a failed one (a failed start), or when a stop
        or the shutdown cut them short (then nothing was started, and nothing failed)."""
        ok = False
        with trio.CancelScope() as self._pending:
            ok = await self.host.hooks.pre_start(self)
        self._pending = None
        if self._cancelled():
            self._end = self._end if self._end in STOPS else EndReason.STOP
        return ok and not self._cancelled()

    async def _probe(self, handle: ProcessHandle) -> None:
        ok = await self.host.probe(self, handle)
        if handle.exited:
            return
        if ok:
            self.host.log.info("ready", "is ready", process=self.name, pid=handle.pid)
            if self.state is State.RUNNING:
                self._move(State.READY)
                await self.host.watch(self, handle)
            return
        assert self.spec.ready is not None
        why = f"did not become ready within {self.spec.ready.timeout:g} s"
        await self._cut_short(handle, EndReason.NOT_READY, why)

    async def end_unhealthy(self, handle: ProcessHandle) -> None:
        """Its health action restarts or fails it (SPEC §9): end the run; ``_attempts`` does the rest."""
        if self._end is None:
            self._end = EndReason.UNHEALTHY
        await self._terminate(handle)

    async def _watch_timeout(self, handle: ProcessHandle, timeout: float) -> None:
        await trio.sleep(timeout)
        await self._cut_short(handle, EndReason.TIMED_OUT, f"ran longer than its timeout of {timeout:g} s")

    async def _cut_short(self, handle: ProcessHandle, reason: EndReason, why: str) -> None:
        """End a run that failed without an exit of its own (it counts as a failure)."""
        self.host.log.error("failed", f"{why}; stopping it", process=self.name, pid=handle.pid)
        if self._end is None:
            self._end = reason
        await self._terminate(handle)

    async def _terminate(self, handle: ProcessHandle, sig: int | None = None) -> None:
        if handle.gone:
            return
        if not handle.exited:  # else only its process group is left
            self._move(State.STOPPING)
        if self.spec.pre_stop is not None or self.spec.stop_delay:  # else runtime/hooks never loads
            await self.host.hooks.before_stop(self, handle)
        sig = sig or stop_signal_for(self.spec)
        await terminate(handle, sig, self.spec.stop_timeout, self.host.force, self.host.log)
