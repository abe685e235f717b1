"""What a supervised process *is* at any moment: its data and the facts derived from its state.

:class:`~trinit.runtime.runner.Runner` (what it *does*) builds on this; the runtime, the
shutdown, ``ctl`` and the scheduler read these facts, so they live apart from the life itself.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import attrs
import trio

from .state import STOPS, EndReason, Health, State

if TYPE_CHECKING:
    from ..config.model import Condition, ProcessSpec
    from ..system.status import ExitStatus
    from .host import RunnerHost
    from .log_watch import LogWatch
    from .process import ProcessHandle


@attrs.define(eq=False)
class RunnerFacts:
    """A runner's data, and what it *is* (derived from its state, never stored twice)."""

    spec: ProcessSpec
    host: RunnerHost
    start_after: tuple[tuple[str, Condition], ...] = ()
    state: State = State.WAITING
    handle: ProcessHandle | None = None
    last_pid: int | None = None
    last_status: ExitStatus | None = None
    restarts: int = 0
    log_watch: LogWatch | None = None
    health: Health | None = None
    #: Why trinit is ending the current run (or the runner), if it is.
    _end: EndReason | None = None
    _consecutive: int = 0
    _pending: trio.CancelScope | None = None
    _adopted: ProcessHandle | None = None
    _left: ProcessHandle | None = None  # the last run's, while its process group may outlive it
    _done: trio.Event | None = None
    #: Where its life goes on after a parked wait for an exit (the runtime's process nursery).
    resume_in: trio.Nursery | None = None
    #: Wall-clock time of the last state change (``since`` of ``ctl status``).
    since: float = attrs.field(factory=time.time)

    @property
    def done(self) -> trio.Event:
        """Set once it has finished (a final state), until a start or restart revives it. Made
        when first asked for: most of 10,000 runners are never waited on."""
        if self._done is None:
            self._done = trio.Event()
            if self.final:
                self._done.set()
        return self._done

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def plain(self) -> bool:
        """Nothing watches its run beside the exit: no readiness, health, watchdog or timeout."""
        spec = self.spec
        return spec.ready is None and spec.timeout is None and spec.health is None and spec.watchdog is None

    @property
    def ever_started(self) -> bool:
        return self.last_pid is not None

    @property
    def ready(self) -> bool:
        return self.state is State.READY

    @property
    def completed(self) -> bool:
        return self.state is State.COMPLETED

    @property
    def final(self) -> bool:
        return self.state.final

    @property
    def failed(self) -> bool:
        return self.state is State.FAILED or (
            self.state is State.SKIPPED and self._end is EndReason.DEPENDENCY
        )

    @property
    def up(self) -> bool:
        """Counts toward ``ready_file``: ready; a oneshot completed, or failed under ``"ignore"``."""
        if not self.spec.oneshot:
            return self.ready and self.health is not Health.UNHEALTHY
        return self.completed or (self.failed and self.spec.on_failure == "ignore")

    @property
    def stopped(self) -> bool:  # by a library or ``ctl`` stop, or the shutdown
        return self._end in STOPS

    @property
    def gone_for_good(self) -> bool:
        """A long-running process ended with no restart to come (a user's stop aside)."""
        return self.final and not self.spec.oneshot and self._end not in STOPS

    @property
    def held(self) -> bool:
        """Stopped by a user (or about to be): stays stopped until started again."""
        return self._end is EndReason.HOLD

    # -- conditions others wait for ----------------------------------------------------------

    def satisfies(self, condition: Condition) -> bool:
        if condition == "started":  # in this life: a revived one waits to start again
            return self.ever_started and self.state is not State.WAITING
        if condition == "ready":
            return self.ready
        return self.completed

    def can_never_satisfy(self, condition: Condition) -> bool:
        # A stopped process may be started again: what waits for it waits on.
        return self.final and self.state is not State.STOPPED and not self.satisfies(condition)
