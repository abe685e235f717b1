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

#: Starts between two looks at signals and exits: a stop need not wait for 10,000 starts.
_BATCH = 64


async def start_run_phase(runners: Sequence[Runner], procs: trio.Nursery) -> None:
    """Start these (the run phase, in start order): most at once with no task, the rest in
    their own; all of them, whatever comes (a stop skips the rest through their lifecycle)."""
    for i, runner in enumerate(runners, 1):
        if not runner.start_at_once(procs):
            procs.start_soon(partial(runner.lifecycle, park_in=procs), name=f"trinit {runner.name}")
        if i % _BATCH == 0:
            await trio.lowlevel.cancel_shielded_checkpoint()


class Parking(RunnerFacts):
    """The task-less start and wait of a :class:`~.runner.Runner` (see the module's docstring)."""

    __slots__ = ()  # between two slotted attrs classes: no __dict__ per runner

    if TYPE_CHECKING:  # the life itself, which runner.Runner defines

        def _cancelled(self) -> bool: ...
        def _starting(self) -> None: ...
        def _spawn(self) -> ProcessHandle | tuple[ExitStatus | None, float]: ...
        def _running(self, handle: ProcessHandle) -> bool: ...
        async def _attempts(self, ended: tuple[ExitStatus | None, float] | None = None) -> None: ...
        async def _after_run(self, handle: ProcessHandle, status: ExitStatus) -> float: ...
        def _settle(self) -> None: ...

    def start_at_once(self, park_in: trio.Nursery) -> bool:
        """Start now, with no task, if it waits for nothing and nothing watches its run beside the
        exit; False (nothing done) if it needs its own task (:meth:`~.runner.Runner.lifecycle`)."""
        if self.start_after or not self.plain or self.spec.pre_start or self._adopted is not None:
            return False
        if self._cancelled():  # its lifecycle says why it was not started
            return False
        self.resume_in = park_in
        self._starting()
        started = self._spawn()
        if not isinstance(started, ProcessHandle):  # the attempts decide: retry, restart or fail
            park_in.start_soon(self._go_on, started, name=f"trinit {self.name}")
        elif self._running(started) and not self._park(started):  # it is gone already
            park_in.start_soon(self._resume, started, name=f"trinit {self.name}")
        return True

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
