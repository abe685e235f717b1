"""One running instance of a process, and what the library reports about one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import attrs

if TYPE_CHECKING:
    from ..system.reaper import Waiter
    from ..system.status import ExitStatus


#: The status strings of SPEC §7.
StatusName = Literal["waiting", "starting", "running", "ready", "stopping", "exited", "failed", "skipped"]


class StartFailure(Exception):
    """A process could not be started for a reason other than exec (its env_file, say)."""


@attrs.frozen
class ProcessStatus:
    """What ``Supervisor.status()`` reports for one process (``state`` as SPEC §7 lists)."""

    name: str
    state: StatusName
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
    #: How many :func:`~trinit.runtime.stopping.terminate` calls are under way (each reacts
    #: to a forced shutdown itself).
    stops: int = 0

    @property
    def stopping(self) -> bool:
        return self.stops > 0

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
