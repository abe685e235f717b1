"""Lifecycle hooks (SPEC §9): ``pre_start`` before each start, ``pre_stop`` and ``stop_delay``
before the stop signal, ``post_stop`` after each exit.

A hook is a short-lived child spawned like an exec probe (:meth:`.spawner.Spawner.spawn_hook`: the
process's user, group, environment, cwd and output mode), watched by the run's one exit watcher and
ended only through :func:`.stopping.terminate`. Each run is bounded by ``hook_timeout`` (then SIGKILL
to its process group) and by the shutdown budget: a forced shutdown kills it at once, and so does a
caller that the budget cancels. A hook cut short by a stop (a ``pre_start`` when its process is
stopped or the shutdown begins) gets SIGTERM and the process's ``stop_timeout`` before SIGKILL.
Every run logs one ``hook`` event naming the hook and its :class:`Result`.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import attrs
import trio

from ..boot.parse import signal_name
from .process import StartFailure, start_error
from .stopping import terminate, wait_first

if TYPE_CHECKING:
    from ..config.model import ProcessSpec
    from ..io.log import Logger
    from ..system.status import ExitStatus
    from .process import ProcessHandle
    from .runner import Runner
    from .spawner import Spawner

HookName = Literal["pre_start", "pre_stop", "post_stop"]


class Result(enum.Enum):
    """How one hook run ended: the ``result`` field of its ``hook`` event."""

    OK = "ok"
    #: It exited with a code other than 0, or a signal that trinit did not send killed it.
    FAILED = "failed"
    #: It ran longer than ``hook_timeout`` and was killed.
    TIMEOUT = "timeout"
    #: It could not be started (its program, its cwd, its env_file).
    ERROR = "error"
    #: A stop, the shutdown or the end of its budget ended it first.
    STOPPED = "stopped"


@attrs.define(eq=False)
class Hooks:
    """Runs the hooks of every process of a run, through the run's spawner."""

    spawner: Spawner
    log: Logger
    force: trio.Event

    async def pre_start(self, runner: Runner) -> bool:
        """Run the ``pre_start`` commands in order, up to the first that does not succeed; True
        when all did. A failure is a failed start (SPEC §2: code 1), logged here; a hook that a
        stop or the shutdown cut short is no failure (the runner sees that it was stopped)."""
        for argv in runner.spec.pre_start:
            result, how = await self._run(runner.spec, "pre_start", argv, {})
            if result is Result.STOPPED:
                return False
            if result is not Result.OK:
                message = f"could not start: its pre_start hook {how} ({' '.join(argv)})"
                self.log.error("failed", message, process=runner.name, code=1)
                return False
        return True

    async def before_stop(self, runner: Runner, handle: ProcessHandle) -> None:
        """``pre_stop``, then ``stop_delay``: what comes before the stop signal of ``handle``.

        Once per run: the first stop runs them and a later one (the shutdown's, after a
        ``ctl stop``) waits for them. Nothing happens once the process has exited or the
        shutdown is forced, and either cuts the delay short.
        """
        spec = runner.spec
        if (spec.pre_stop is None and not spec.stop_delay) or handle.exited or self.force.is_set():
            return
        if handle.pre_stop_done is not None:
            await wait_first(handle.pre_stop_done.wait, self.force.wait)
            return
        done = handle.pre_stop_done = trio.Event()
        try:
            if spec.pre_stop is not None:
                await self._run(spec, "pre_stop", spec.pre_stop, {"TRINIT_PID": str(handle.pid)})
            if spec.stop_delay and not handle.exited and not self.force.is_set():
                self.log.info(
                    "stop_delay",
                    f"waiting {spec.stop_delay:g} s (stop_delay) before its stop signal",
                    process=spec.name,
                    pid=handle.pid,
                    delay=spec.stop_delay,
                )
                with trio.move_on_after(spec.stop_delay):
                    await wait_first(handle.waiter.wait, self.force.wait)
        finally:
            done.set()

    async def post_stop(self, runner: Runner, status: ExitStatus) -> None:
        """Run ``post_stop`` after an exit, told how it ended; its failure is only logged."""
        spec = runner.spec
        assert spec.post_stop is not None
        env = {"TRINIT_RESTARTS": str(runner.restarts)}
        if status.signal is not None:
            env["TRINIT_EXIT_SIGNAL"] = signal_name(status.signal).removeprefix("SIG")
        else:
            env["TRINIT_EXIT_CODE"] = str(status.code)
        await self._run(spec, "post_stop", spec.post_stop, env)

    async def _run(
        self, spec: ProcessSpec, hook: HookName, argv: Sequence[str], extra: Mapping[str, str]
    ) -> tuple[Result, str]:
        """One hook run to its end: (its result, how it ended in words)."""
        # The deadline around this run: the shutdown budget's when a stop in the shutdown runs it.
        # If that deadline cancels the run, no time is left for a graceful stop of the hook.
        deadline = trio.current_effective_deadline()
        started = trio.current_time()
        env = {"TRINIT_PROCESS": spec.name, "TRINIT_HOOK": hook, **extra}
        try:
            handle = self.spawner.spawn_hook(spec, argv, env)
        except OSError as exc:
            how = start_error(exc, argv[0], spec.cwd)[1]
            self._log(spec, hook, argv, Result.ERROR, how, None, None)
            return Result.ERROR, how
        except StartFailure as exc:
            how = f"could not start: {exc}"
            self._log(spec, hook, argv, Result.ERROR, how, None, None)
            return Result.ERROR, how
        result = Result.STOPPED
        try:
            with trio.move_on_after(spec.hook_timeout) as timer:
                await wait_first(handle.waiter.wait, self.force.wait)
            status = handle.waiter.status
            if status is not None:
                result = Result.OK if status.code == 0 else Result.FAILED
            else:
                if timer.cancelled_caught:
                    result = Result.TIMEOUT
                await terminate(handle, signal.SIGKILL, 0.0, self.force, None)
        finally:
            if not handle.exited:  # cancelled: a stop of its process, or the budget ran out
                with trio.CancelScope(shield=True):
                    if trio.current_time() < deadline:
                        with trio.move_on_at(deadline):
                            await terminate(handle, signal.SIGTERM, spec.stop_timeout, self.force, None)
                    await terminate(handle, signal.SIGKILL, 0.0, self.force, None)
            how = self._how(spec, result, handle.waiter.status)
            self._log(spec, hook, argv, result, how, handle, trio.current_time() - started)
        return result, how

    def _how(self, spec: ProcessSpec, result: Result, status: ExitStatus | None) -> str:
        if result is Result.OK:
            return "succeeded"
        if result is Result.TIMEOUT:
            return f"ran longer than hook_timeout ({spec.hook_timeout:g} s) and was killed"
        if result is Result.STOPPED:
            return (
                "was killed: the shutdown was forced"
                if self.force.is_set()
                else "was stopped before it ended"
            )
        assert status is not None
        return status.describe()

    def _log(
        self,
        spec: ProcessSpec,
        hook: HookName,
        argv: Sequence[str],
        result: Result,
        how: str,
        handle: ProcessHandle | None,
        run_time: float | None,
    ) -> None:
        status = handle.waiter.status if handle is not None else None
        took = f" after {run_time:.2f} s" if run_time is not None else ""
        self.log.log(
            "info" if result in (Result.OK, Result.STOPPED) else "warning",
            "hook",
            f"{hook} hook {how}{took}: {' '.join(argv)}",
            process=spec.name,
            hook=hook,
            result=result.value,
            code=status.code if status is not None else None,
            signal=signal_name(status.signal) if status is not None and status.signal else None,
            run_time=round(run_time, 3) if run_time is not None else None,
            hook_pid=handle.pid if handle is not None else None,
            argv=list(argv),
        )
