"""What a :class:`~trinit.runtime.runner.Runner` (and a scheduled job) needs from the runtime: the
seam that lets runners be tested on fakes, and the runtime change without them; what asking a
scheduled job to run did (:class:`Trigger`, shared by the scheduler and ``steer``)."""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import trio

    from ..io.log import Logger
    from ..system.status import ExitStatus
    from .hooks import Hooks
    from .process import ProcessHandle
    from .runner import Runner


class RunnerHost(Protocol):
    """What a runner needs from the supervisor."""

    log: Logger
    shutting_down: bool
    force: trio.Event

    @property
    def hooks(self) -> Hooks:
        """Runs lifecycle hooks; only asked for by a process that has one (its module loads then)."""
        ...

    def spawn(self, runner: Runner) -> ProcessHandle: ...

    def runner(self, name: str) -> Runner: ...

    def changed(self) -> trio.Event: ...

    def notify(self, runner: Runner) -> None: ...

    def process_failed(self, runner: Runner, code: int) -> None: ...

    def main_exited(self, runner: Runner, status: ExitStatus | None, failed_without_exit: bool) -> None: ...

    def probe(self, runner: Runner, handle: ProcessHandle) -> Awaitable[bool]: ...

    def before_restart(self, runner: Runner) -> Awaitable[None]:
        """``runner`` is about to restart: stop what restarts with it first (SPEC §10)."""
        ...

    def watch(self, runner: Runner, handle: ProcessHandle) -> Awaitable[None]:
        """Health checks and the watchdog of a ready run, until it ends (SPEC §9)."""
        ...


class Trigger(enum.Enum):
    """What asking a scheduled job to run now (``ctl start``) did."""

    STARTED = "started"  # a run starts now
    QUEUED = "queued"  # a run is going; this one follows it (overlap = "queue")
    SKIPPED = "skipped"  # a run is going, and overlap = "skip"
    WAITING = "waiting"  # its `after` does not hold yet: it runs as soon as it does
    REFUSED = "refused"  # the shutdown began, or it was skipped for good (its `after` can never hold)


class SchedulerHost(Protocol):
    log: Logger
    shutting_down: bool
