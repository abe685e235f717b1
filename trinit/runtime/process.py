"""One running instance of a process, and what the library reports about one."""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Literal

import attrs

from ..boot.parse import signal_name
from ..system.status import ExitStatus

if TYPE_CHECKING:
    import trio

    from ..io.log import Logger
    from ..system.reaper import Waiter


#: The status strings of SPEC §7.
StatusName = Literal[
    "waiting", "starting", "running", "ready", "stopping", "exited", "failed", "skipped", "stopped"
]


class StartFailure(Exception):
    """A process could not be started for a reason other than exec (its env_file, say)."""


#: What to say when a spawn failed with this errno (the program is named before it).
_CAUSES = {
    errno.ENOENT: "no such command or file (check the command and PATH)",
    errno.EACCES: "it is not executable (permission denied); make it executable or fix the command",
    errno.ENOEXEC: "it is not an executable format (a script needs a #! line)",
    errno.ENOTDIR: "a part of its path is not a folder; fix the command",
    errno.EMFILE: "trinit has too many open files; raise the open-files limit (ulimit -n)",
    errno.ENFILE: "the system has too many open files",
    errno.EAGAIN: "the limit of processes was reached (ulimit -u, or the pids cgroup); raise it",
    errno.ENOMEM: "not enough memory",
    errno.E2BIG: "its arguments and environment are too long; shorten them",
}


def start_error(exc: OSError, program: str, cwd: str | None) -> tuple[ExitStatus | None, str]:
    """A failed spawn's status and message, naming the cause (SPEC §2: 127 for a program not found,
    126 not executable, 1 anything else). A missing ``cwd`` has no status: it fails with 1."""
    code = exc.errno or errno.ENOENT
    if cwd is not None and exc.filename == cwd:
        what = "does not exist" if code == errno.ENOENT else f"cannot be used ({exc.strerror})"
        return None, f"could not start {program!r}: its cwd {cwd} {what}; create it or fix cwd"
    cause = _CAUSES.get(code) or f"{exc.strerror or exc} ({errno.errorcode.get(code, code)})"
    return ExitStatus(spawn_errno=code), f"could not start {program!r}: {cause}"


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
    #: With ``group``, when exits of the group's other members are seen (init mode): whether
    #: the group has members, and waiting until it has none.
    group_alive: Callable[[int], bool] | None = None
    wait_group: Callable[[int], Awaitable[None]] | None = None
    #: How many :func:`~trinit.runtime.stopping.terminate` calls are under way (each reacts
    #: to a forced shutdown itself).
    stops: int = 0
    #: Set once its ``pre_stop`` hook and ``stop_delay`` are over (SPEC §9); None until a stop begins them.
    pre_stop_done: trio.Event | None = None

    @property
    def stopping(self) -> bool:
        return self.stops > 0

    @property
    def exited(self) -> bool:
        return self.waiter.status is not None

    @property
    def group_left(self) -> bool:
        """The leader is reaped but its process group still has members (SPEC §5.2)."""
        return self.exited and self.group and self.group_alive is not None and self.group_alive(self.pid)

    @property
    def gone(self) -> bool:
        """Reaped, and with ``group`` its whole process group gone too."""
        return self.exited and not self.group_left

    async def wait_gone(self) -> None:
        await self.waiter.wait()
        if self.group and self.wait_group is not None:
            await self.wait_group(self.pid)

    def signal(self, sig: int) -> None:
        """Signal the process (its group with ``group``); a group outlives its reaped leader, and
        its id cannot be reused while it has members."""
        if self.group_left:
            self.sendpg(self.pid, sig)
            return
        if self.waiter.status is not None:
            raise ProcessLookupError(f"process {self.name!r} (pid {self.pid}) has exited")
        if self.group:
            self.sendpg(self.pid, sig)
        elif self.waiter.pidfd is not None and self.sendfd is not None:
            self.sendfd(self.waiter.pidfd, sig)
        else:
            self.send(self.pid, sig)


def log_start(log: Logger, handle: ProcessHandle, command: Sequence[str]) -> None:
    """The "started" line of a run."""
    text = " ".join(command)
    log.info("started", f"started: {text}", process=handle.name, pid=handle.pid, argv=list(command))


def log_exit(log: Logger, handle: ProcessHandle, status: ExitStatus, run_time: float, *, quiet: bool) -> None:
    """The "exited" line of a run: a warning unless it succeeded or trinit ended it (``quiet``)."""
    log.log(
        "info" if quiet else "warning",
        "exited",
        f"{status.describe()} after {run_time:.2f} s",
        process=handle.name,
        pid=handle.pid,
        code=status.code,
        signal=signal_name(status.signal) if status.signal else None,
        run_time=round(run_time, 3),
    )
