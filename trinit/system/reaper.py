"""Learning of exits: one owner of ``waitpid`` in init mode, per-child pidfds in library mode.

Both watchers hand out a :class:`Waiter` right after a spawn (synchronously, before the
next checkpoint), and both set its status exactly once.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from .status import ExitStatus

if TYPE_CHECKING:
    from ..io.log import Logger
    from .protocol import OSLayer

#: How many exits of pids nobody has asked about yet we remember (orphans are counted, not kept).
_UNCLAIMED_MAX = 1024
#: Up to this many watched children, the SIGCHLD handler reaps at once. ``waitpid(-1)`` scans
#: every child in the kernel, and its last, empty call scans them all: with thousands of live
#: children, reaping on each SIGCHLD costs O(children) per exit (10,000 stops took seconds).
#: Above it, reaping waits for the run loop (one drain per loop iteration: the exits of a
#: whole batch share one full scan).
HANDLER_REAP_MAX = 256


@attrs.define(eq=False)
class Waiter:
    """The exit of one child: ``status`` once known; then ``event`` is set and ``on_exit`` called.

    The event is made only when asked for, and ``on_exit`` lets a runner wait with no task
    at all: at 10,000 processes each trio.Event costs ~270 bytes, a parked task ~2 KB.
    """

    pid: int
    status: ExitStatus | None = None
    pidfd: int | None = None
    _event: trio.Event | None = None
    #: Called once with the status, from the reaper's dispatch (it must not raise).
    on_exit: Callable[[ExitStatus], None] | None = None

    @property
    def event(self) -> trio.Event:
        if self._event is None:
            self._event = trio.Event()
            if self.status is not None:
                self._event.set()
        return self._event

    def _set(self, status: ExitStatus) -> None:
        self.status = status
        if self._event is not None:
            self._event.set()
        callback, self.on_exit = self.on_exit, None
        if callback is not None:
            callback(status)

    async def wait(self) -> ExitStatus:
        await self.event.wait()
        assert self.status is not None
        return self.status


class ExitWatcher(Protocol):
    """How the runtime learns of exits; see :class:`Reaper` and :class:`PidfdWatcher`."""

    reaps_orphans: bool

    def watch(self, pid: int) -> Waiter: ...

    def next_exit(self) -> trio.Event:
        """Set once the next child is reaped (the sweep's rounds wait on it, never polling)."""
        ...

    async def wait_no_children(self) -> None: ...

    async def wait_group_gone(self, pgid: int) -> None: ...


class Reaper:
    """Init mode: the single owner of ``waitpid(-1)``, woken by SIGCHLD.

    It reaps every child, adopted orphans included. SIGCHLD coalesces, so each wake-up
    drains ``waitpid(-1, WNOHANG)`` until nothing is left. An exit of a pid nobody watches
    yet is buffered (a watch can come after the exit), up to a bound; the rest are orphans.
    """

    reaps_orphans = True

    def __init__(self, os_layer: OSLayer, log: Logger | None = None) -> None:
        self._os = os_layer
        self._log = log
        self._waiters: dict[int, Waiter] = {}
        self._unclaimed: OrderedDict[int, int] = OrderedDict()  # pid -> raw status
        self._found: deque[tuple[int, int]] = deque()  # collected, not yet dispatched
        self._childless = False  # waitpid said ECHILD, and nothing was spawned since
        self._no_children = trio.Event()
        self._reaped = trio.Event()  # set after each batch of exits is dispatched
        #: Called for each reaped pid nobody watches (with its raw status); keep it cheap.
        self.on_orphan: Callable[[int, int], None] | None = None

    def watch(self, pid: int) -> Waiter:
        waiter = Waiter(pid)
        raw = self._unclaimed.pop(pid, None)
        if raw is not None:
            waiter._set(ExitStatus.from_wait_status(raw))
        else:
            self._waiters[pid] = waiter
            self._childless = False
            if self._no_children.is_set():
                self._no_children = trio.Event()
        return waiter

    def collect(self) -> None:
        """Reap every exited child now, keeping the statuses for :meth:`dispatch`.

        Only syscalls and list appends: it runs inside the SIGCHLD handler, so zombies are
        released the moment the loop wakes, even in a storm of exits.
        """
        found_list = self._found
        while True:
            try:
                found = self._os.wait_any()
            except ChildProcessError:
                self._childless = True
                return
            if found is None:
                return
            found_list.append(found)

    def collect_if_cheap(self) -> None:
        """From the SIGCHLD handler: :meth:`collect` now while few children make it cheap."""
        if len(self._waiters) <= HANDLER_REAP_MAX:
            self.collect()

    def reap(self) -> None:
        """Collect and dispatch every exited child; call on each SIGCHLD (and once at start)."""
        self.collect()
        self.dispatch()

    def dispatch(self) -> None:
        """Hand the collected statuses to their waiters (in trio's context: it sets events)."""
        found_list = self._found
        reaped_any = bool(found_list)
        while found_list:
            pid, raw = found_list.popleft()
            self._os.release(pid, raw)
            waiter = self._waiters.pop(pid, None)
            if waiter is not None:
                waiter._set(ExitStatus.from_wait_status(raw))
                continue
            # An orphan (or, rarely, a child whose watch comes later): keep it cheap, as
            # thousands can exit at once.
            unclaimed = self._unclaimed
            unclaimed[pid] = raw
            if len(unclaimed) > _UNCLAIMED_MAX:
                unclaimed.popitem(last=False)
            if self.on_orphan is not None:
                self.on_orphan(pid, raw)
        if self._childless:
            self._no_children.set()
        if reaped_any:
            self._reaped.set()
            self._reaped = trio.Event()

    def next_exit(self) -> trio.Event:
        return self._reaped

    async def wait_no_children(self) -> None:
        """Return once we have no child left at all (everything was reaped)."""
        self.reap()
        await self._no_children.wait()

    async def wait_group_gone(self, pgid: int) -> None:
        """Return once process group ``pgid`` is empty; checked again after each batch of exits
        (its members are all ours to reap once their leader is gone: no polling)."""
        while self._os.group_alive(pgid):
            reaped = self._reaped
            await reaped.wait()


class PidfdWatcher:
    """Library mode: waits for each of our own children on its pidfd, never ``waitpid(-1)``.

    So other code in the same program (``trio.run_process``) keeps seeing true statuses.
    """

    reaps_orphans = False

    def __init__(self, os_layer: OSLayer, nursery: trio.Nursery) -> None:
        self._os = os_layer
        self._nursery = nursery
        self._live: set[Waiter] = set()
        self._changed = trio.Event()

    def watch(self, pid: int) -> Waiter:
        waiter = Waiter(pid, pidfd=self._os.pidfd_open(pid))
        self._live.add(waiter)
        self._nursery.start_soon(self._wait, waiter, name=f"trinit watch {pid}")
        return waiter

    async def _wait(self, waiter: Waiter) -> None:
        pidfd = waiter.pidfd
        assert pidfd is not None
        try:
            while True:
                raw = self._os.wait_pidfd(pidfd)
                if raw is not None:
                    break
                await trio.lowlevel.wait_readable(pidfd)
            self._os.release(waiter.pid, raw)
            waiter.pidfd = None
            waiter._set(ExitStatus.from_wait_status(raw))
        finally:
            trio.lowlevel.notify_closing(pidfd)
            self._os.close(pidfd)
            waiter.pidfd = None
            self._live.discard(waiter)
            self._changed.set()
            self._changed = trio.Event()

    def next_exit(self) -> trio.Event:
        return self._changed

    async def wait_no_children(self) -> None:
        while self._live:
            await self._changed.wait()

    async def wait_group_gone(self, pgid: int) -> None:
        """Not known here: a group's other members are not our children (no orphans are reaped)."""
