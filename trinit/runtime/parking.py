"""A run with no trio task: how 10,000 plain processes start and run at the cost of a few.

Most processes wait for nothing before they start and have nothing to watch beside their exit
(no readiness, health, watchdog or timeout). For those a task per process is pure cost: ~2 KB
while it waits (20 MB at 10,000) and ~6 µs of CPU to make and end. :class:`Parking` starts such a
process from the supervisor's start loop and parks its run on the reaper's exit callback; the
exit starts a task in the process nursery for the rest of its life (the exit line, ``post_stop``,
the restart decision). A :class:`~.runner.Runner` is a Parking; the methods are apart to keep
the life itself readable.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import TYPE_CHECKING

import trio

from .facts import RunnerFacts
from .process import ProcessHandle

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..system.status import ExitStatus
    from .runner import Runner
    from .spawner import Spawner

#: Starts between two looks at signals and exits: a stop need not wait for 10,000 starts.
#: Also the most plain processes the OS layer is given at once (two threads start them).
_BATCH = 64


async def start_run_phase(runners: Sequence[Runner], procs: trio.Nursery, spawner: Spawner) -> None:
    """Start these (the run phase, in start order): most at once with no task, the rest in
    their own; all of them, whatever comes (a stop skips the rest through their lifecycle).
    Runs of plain ones go to the OS layer together (:meth:`~.spawner.Spawner.spawn_plain`)."""
    together: list[Runner] = []
    for i, runner in enumerate(runners, 1):
        if runner.at_once() and spawner.together(runner.spec) and not runner._cancelled():
            together.append(runner)
        else:
            _start_together(together, procs, spawner)  # those before it first: the order holds
            if not runner.start_at_once(procs):
                procs.start_soon(partial(runner.lifecycle, park_in=procs), name=f"trinit {runner.name}")
        if i % _BATCH == 0:
            _start_together(together, procs, spawner)
            await trio.lowlevel.cancel_shielded_checkpoint()
    _start_together(together, procs, spawner)


def _start_together(runners: list[Runner], procs: trio.Nursery, spawner: Spawner) -> None:
    """Start ``runners`` with one call to the OS layer, then go on with each as
    :meth:`Parking.start_at_once` would; no checkpoint in between, so the reaper cannot see
    an exit before its process is watched. Empties ``runners``."""
    if not runners:
        return
    for runner in runners:
        runner.resume_in = procs
        runner._starting()
    for runner, started in zip(runners, spawner.spawn_plain([r.spec for r in runners]), strict=True):
        runner._go(started if isinstance(started, ProcessHandle) else runner._failed(started), procs)
    runners.clear()


class Parking(RunnerFacts):
    """The task-less start and wait of a :class:`~.runner.Runner` (see the module's docstring)."""

    __slots__ = ()  # between two slotted attrs classes: no __dict__ per runner

    if TYPE_CHECKING:  # the life itself, which runner.Runner defines

        def _cancelled(self) -> bool: ...
        def _starting(self) -> None: ...
        def _spawn(self) -> ProcessHandle | tuple[ExitStatus | None, float]: ...
        def _failed(self, exc: OSError) -> tuple[ExitStatus | None, float]: ...
        def _running(self, handle: ProcessHandle) -> bool: ...
        async def _attempts(self, ended: tuple[ExitStatus | None, float] | None = None) -> None: ...
        async def _after_run(self, handle: ProcessHandle, status: ExitStatus) -> float: ...
        def _settle(self) -> None: ...

    def at_once(self) -> bool:
        """True if it can start with no task: it waits for nothing, and nothing watches its
        run beside the exit."""
        return not (self.start_after or not self.plain or self.spec.pre_start or self._adopted is not None)

    def start_at_once(self, park_in: trio.Nursery) -> bool:
        """Start now, with no task, if :meth:`at_once` can; False (nothing done) if it needs
        its own task (:meth:`~.runner.Runner.lifecycle`)."""
        if not self.at_once() or self._cancelled():  # the lifecycle says why it was not started
            return False
        self.resume_in = park_in
        self._starting()
        self._go(self._spawn(), park_in)
        return True

    def _go(self, started: ProcessHandle | tuple[ExitStatus | None, float], park_in: trio.Nursery) -> None:
        """After the spawn: parked, or a task for what comes next."""
        if not isinstance(started, ProcessHandle):  # the attempts decide: retry, restart or fail
            park_in.start_soon(self._go_on, started, name=f"trinit {self.name}")
        elif self._running(started) and not self._park(started):  # it is gone already
            park_in.start_soon(self._resume, started, name=f"trinit {self.name}")

    def _park(self, handle: ProcessHandle) -> bool:
        """Wait for the exit with no task at all: the exit starts :meth:`_resume` in
        ``resume_in``. False if that cannot be."""
        if self.resume_in is None or handle.exited:
            return False
        handle.waiter.on_exit = self._exited  # a bound method: no closure (cells) per process
        return True

    def _exited(self, status: ExitStatus) -> None:
        assert self.resume_in is not None and self.handle is not None
        with contextlib.suppress(RuntimeError):  # the run is over (its nursery closed)
            self.resume_in.start_soon(self._resume, self.handle, name=f"trinit {self.name}")

    async def _resume(self, handle: ProcessHandle) -> None:
        """The rest of a parked run, from the exit on: what its task would have done."""
        status = handle.waiter.status
        assert status is not None
        try:
            await self._attempts((status, await self._after_run(handle, status)))
        finally:
            self._settle()

    async def _go_on(self, ended: tuple[ExitStatus | None, float]) -> None:
        """After a start that failed at once: what its task would have done."""
        try:
            await self._attempts(ended)
        finally:
            self._settle()
