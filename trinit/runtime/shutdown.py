"""The ordered shutdown: stop in reverse dependency order, run stop jobs, sweep, all under a budget.

Its deadlines are the only ones of a run: ``shutdown_timeout`` for the whole, then a
short wait for what SIGKILL still has to bring down. A forced shutdown (a second SIGINT,
the budget running out, trinit's own failure) sets ``force``; every stop under way
reacts in :func:`.stopping.terminate` and :meth:`Shutdown.kill_on_force` ends the rest.
"""

from __future__ import annotations

import traceback
from collections import defaultdict
from typing import TYPE_CHECKING

import attrs
import trio

from .state import State
from .stopping import kill_everything, stop_signal_for, sweep, terminate, terminate_all

if TYPE_CHECKING:
    from .runner import Runner
    from .supervisor import Runtime

#: Extra time after the budget for SIGKILLed processes to be reaped.
KILL_WAIT = 2.0


@attrs.define(eq=False)
class Shutdown:
    rt: Runtime
    #: One event per process, set once it has stopped (made on first use: a reload adds processes).
    _stopped: defaultdict[str, trio.Event] = attrs.field(init=False, factory=lambda: defaultdict(trio.Event))
    #: Process groups that had their stop signal as a group: the sweep spares them (SPEC §3).
    _group_stopped: set[int] = attrs.field(init=False, factory=set)

    async def run(self, reason: str) -> None:
        rt = self.rt
        budget = rt.config.shutdown_timeout
        started = trio.current_time()
        rt.retire_ready_file()
        rt.log.info(
            "shutdown_begun",
            f"shutdown begun ({reason}); budget {budget:g} s",
            reason=reason,
            budget=budget,
        )
        async with trio.open_nursery() as guard:
            guard.start_soon(self.kill_on_force)
            with trio.move_on_at(started + budget) as scope:
                async with trio.open_nursery() as nursery:
                    batches: defaultdict[tuple[int, float], list[Runner]] = defaultdict(list)
                    waited_on = self._waited_on()
                    for r in rt.run_phase:
                        if self._stops_plainly(r, waited_on):
                            sig = stop_signal_for(r.spec, rt.stop_signal)
                            batches[sig, r.spec.stop_timeout].append(r)
                        else:
                            nursery.start_soon(self._stop_in_order, r)
                    for (sig, grace), runners in batches.items():
                        nursery.start_soon(self._stop_together, runners, sig, grace)
                    for r in rt.runners.values():
                        if r.spec.phase == "stop":
                            nursery.start_soon(self._run_stop_job, r)
                await self._sweep()
            if scope.cancelled_caught:
                self._log_timeout(budget)
                rt.force.set()
                with trio.move_on_after(KILL_WAIT):
                    await self._gone()
            guard.cancel_scope.cancel()
        took = trio.current_time() - started
        rt.log.info("shutdown_done", f"shutdown done in {took:.2f} s", took=round(took, 3))

    def _log_timeout(self, budget: float) -> None:
        rt = self.rt
        holding = [f"{r.name} (pid {r.last_pid})" for r in self._live()]
        if not holding and rt.boot.reaps_orphans:
            try:
                left = rt.os.descendants()
            except OSError:  # no /proc (the sweep said so)
                left = []
            holding = [rt.os.describe(pid) for pid in left[:10]] + (["…"] if len(left) > 10 else [])
        what = ", ".join(holding) or "processes left behind by the supervised ones"
        rt.log.error(
            "shutdown_timeout",
            f"shutdown_timeout of {budget:g} s ran out; still running: {what}; sending SIGKILL",
            holding=holding,
        )

    def _live(self) -> list[Runner]:
        return [r for r in self.rt.runners.values() if r.handle is not None and not r.handle.exited]

    async def kill_on_force(self) -> None:
        """Once ``force`` is set, SIGKILL what no stop under way covers: processes waiting for
        their turn, running stop jobs, stops the budget cut off, and orphans."""
        rt = self.rt
        await rt.force.wait()
        async with trio.open_nursery() as nursery:
            for r in self._live():
                assert r.handle is not None
                if r.handle.stopping:  # that stop reacts to force itself
                    nursery.start_soon(r.handle.waiter.wait)
                else:  # a stop, so its SIGKILL is trinit's doing, never a failure of it
                    nursery.start_soon(r.stop, stop_signal_for(r.spec))
        # The supervised processes first, so each is told why; then what they left behind.
        if rt.boot.reaps_orphans:
            await kill_everything(rt.os, rt.spawner.watcher_or_fail())

    async def _gone(self) -> None:
        for r in self.rt.runners.values():
            if r.handle is not None:
                await r.handle.waiter.wait()
        if self.rt.boot.reaps_orphans:
            await self.rt.spawner.watcher_or_fail().wait_no_children()

    async def _stop_in_order(self, runner: Runner) -> None:
        for name in self.rt.plan.stop_waits_for.get(runner.name, ()):
            await self._stopped[name].wait()
        handle = runner.handle
        if handle is not None and handle.group and not handle.exited and not self.rt.force.is_set():
            self._group_stopped.add(handle.pid)  # runner.stop signals its group (after its pre_stop, if any)
        await runner.stop(stop_signal_for(runner.spec, self.rt.stop_signal))
        self._stopped[runner.name].set()

    def _waited_on(self) -> set[str]:
        """The processes whose stop another stop or a stop job waits for."""
        plan = self.rt.plan
        names = {n for deps in plan.stop_waits_for.values() for n in deps}
        return names.union(*plan.stop_job_after.values())

    def _stops_plainly(self, runner: Runner, waited_on: set[str]) -> bool:
        """Running, with nothing before its stop signal and no order to keep: it can be stopped
        together with the others alike (one task, one wait, one deadline for thousands)."""
        handle, spec = runner.handle, runner.spec
        return (
            handle is not None
            and not handle.exited
            and not handle.group
            and not handle.stopping
            and runner.state in (State.RUNNING, State.READY)
            and spec.pre_stop is None
            and not spec.stop_delay
            and runner.name not in waited_on
            and not self.rt.plan.stop_waits_for.get(runner.name)
            and not self.rt.force.is_set()
        )

    async def _stop_together(self, runners: list[Runner], sig: int, grace: float) -> None:
        """The stop of processes that nothing waits for and that wait for nothing (no ``_stopped``
        event is set: none is awaited), as each would be stopped alone. This task starts after
        they were picked: one that exited meanwhile (its restart pending, say) is stopped alone."""
        together: list[Runner] = []
        async with trio.open_nursery() as alone:
            for r in runners:
                if self._stops_plainly(r, set()):  # nothing waits on a picked one: no order to keep
                    together.append(r)
                else:
                    alone.start_soon(self._stop_in_order, r)
            handles = [r.stop_quickly() for r in together]
            await terminate_all(handles, sig, grace, self.rt.force, self.rt.log)
            for r in together:
                if not r.done.is_set():
                    await r.done.wait()

    async def _run_stop_job(self, job: Runner) -> None:
        rt = self.rt
        after = rt.plan.stop_job_after.get(job.name, frozenset())
        try:
            for name in after:
                await self._stopped[name].wait()
            if rt.force.is_set():
                rt.log.warning("skipped", "was skipped: the shutdown was forced", process=job.name)
                return
            # An empty ``after`` runs first, while everything is still up (SPEC §5.3).
            if after and not any(rt.runners[n].ever_started for n in after):
                rt.log.info(
                    "skipped", "was not run: none of the processes it follows had started", process=job.name
                )
                return
            await job.lifecycle()
        except trio.Cancelled:
            if not job.ever_started:
                rt.log.warning(
                    "skipped",
                    "was skipped: the shutdown budget ran out before it could run",
                    process=job.name,
                )
            raise
        finally:
            self._stopped[job.name].set()

    async def _sweep(self) -> None:
        if self.rt.boot.reaps_orphans:
            spare = frozenset(self._group_stopped)
            await sweep(self.rt.os, self.rt.spawner.watcher_or_fail(), self.rt.force, self.rt.log, spare)

    async def emergency(self, exc: BaseException) -> None:
        """trinit itself failed: still stop every process within the budget (then SIGKILL)."""
        rt = self.rt
        if not isinstance(exc, (trio.Cancelled, KeyboardInterrupt)) and not only_cancelled(exc):
            rt.log.error(
                "internal_error",
                f"internal error: {describe_error(exc)}; stopping every process (please report this)",
            )
            if rt.log.enabled("debug"):
                rt.log.debug("traceback", "".join(traceback.format_exception(exc)).rstrip())
        rt.shutting_down = True
        rt.retire_ready_file()
        budget = rt.config.shutdown_timeout
        with trio.move_on_after(budget + KILL_WAIT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._force_after, budget)
                nursery.start_soon(self.kill_on_force)
                async with trio.open_nursery() as stops:
                    for r in self._live():
                        assert r.handle is not None
                        sig = stop_signal_for(r.spec)
                        stops.start_soon(terminate, r.handle, sig, budget, rt.force, rt.log)
                await self._sweep()
                nursery.cancel_scope.cancel()

    async def _force_after(self, delay: float) -> None:
        await trio.sleep(delay)
        self.rt.force.set()


def describe_error(exc: BaseException) -> str:
    """``RuntimeError: what`` for the real errors inside (possibly nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_error(e) for e in exc.exceptions if not only_cancelled(e))
    return f"{type(exc).__name__}: {exc}"


def only_cancelled(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(only_cancelled(e) for e in exc.exceptions)
    return False
