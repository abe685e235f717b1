"""Readiness that the process announces itself (SPEC §9): sd_notify, or a newline on fd N.

``ready = { notify = true }``: each such process (and each with ``watchdog``) gets a
datagram socket of its own for all its runs, named in ``NOTIFY_SOCKET``; a task per
socket waits in the kernel for the next datagram, so an idle process costs no wakeup.
Only the current run's process and its own (descendants, its process group) are heard:
the kernel tells the sender's pid. ``ready = { fd = N }``: the process gets a pipe's write
end as fd N; trinit waits for the read end to turn readable, and a newline means ready
(s6's convention); the read end is closed then, as s6 does. The sd_notify socket itself is
:mod:`.notifier`'s, loaded only when a process needs one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import attrs
import trio

if TYPE_CHECKING:
    from ..config.model import ProcessSpec
    from ..io.log import Logger
    from ..system.protocol import OSLayer
    from .notifier import Notifier


@attrs.frozen
class Prepared:
    """What one start of a process gets: variables, an fd to move, a variable set to its pid."""

    env: dict[str, str]
    move_fd: tuple[int, int] | None = None
    pid_env: str | None = None
    #: The read end of ``move_fd``'s pipe, trinit's.
    read_fd: int | None = None


class NotifyHub:
    """The notifiers and ready fds of one run; the spawner asks it what each start needs."""

    def __init__(self, os: OSLayer, log: Logger) -> None:
        self.os = os
        self.log = log
        self.nursery: trio.Nursery | None = None
        self.notifiers: dict[str, Notifier] = {}
        self._fds: dict[str, int] = {}

    def prepare(self, spec: ProcessSpec) -> Prepared | None:
        """What a start of ``spec`` needs (None: nothing); OSError if a socket or pipe cannot be made."""
        kind = spec.ready.kind if spec.ready is not None else None
        if kind == "fd":
            assert spec.ready is not None and isinstance(spec.ready.target, str)
            read_fd, write_fd = self.os.pipe()
            return Prepared({}, (write_fd, int(spec.ready.target)), read_fd=read_fd)
        if kind != "notify" and spec.watchdog is None:
            return None
        notifier = self.notifiers.get(spec.name)
        if notifier is None:
            # sd_notify's door: only a process with notify readiness or a watchdog loads it.
            from .notifier import Notifier

            notifier = self.notifiers[spec.name] = Notifier(spec.name, self.os, self.log)
        assert self.nursery is not None
        notifier.open(self.nursery)
        env = {"NOTIFY_SOCKET": notifier.address}
        if spec.watchdog is None:
            return Prepared(env)
        env["WATCHDOG_USEC"] = str(max(1, round(spec.watchdog * 1e6)))
        return Prepared(env, pid_env="WATCHDOG_PID")

    def spawned(self, spec: ProcessSpec, prepared: Prepared, pid: int | None) -> None:
        """After the spawn (``pid`` None: it failed): close trinit's copies, note the new run."""
        if prepared.move_fd is not None:
            self.os.close(prepared.move_fd[0])
        old = self._fds.pop(spec.name, None)
        if old is not None:
            self.os.close(old)
        if prepared.read_fd is not None:
            if pid is None:
                self.os.close(prepared.read_fd)
            else:
                self._fds[spec.name] = prepared.read_fd
        notifier = self.notifiers.get(spec.name)
        if notifier is not None and pid is not None:
            notifier.started(pid)

    async def wait_ready(self, spec: ProcessSpec, timeout: float) -> bool:
        """Until the process says it is ready (True), or ``timeout``."""
        notifier = self.notifiers.get(spec.name)
        if notifier is not None:
            return await notifier.wait_ready(timeout)
        fd = self._fds.pop(spec.name, None)
        if fd is None:
            return False
        try:
            return await _newline(fd, timeout)
        finally:
            self.os.close(fd)  # as s6 does: the process's later writes get EPIPE


async def _newline(fd: int, timeout: float) -> bool:
    """Until a newline comes on ``fd`` (True), or ``timeout``.

    A process that closes its end without one never becomes ready: the wait goes on to the timeout.
    """
    os.set_blocking(fd, False)
    with trio.move_on_after(timeout):
        while True:
            await trio.lowlevel.wait_readable(fd)
            try:
                chunk = os.read(fd, 512)
            except BlockingIOError:
                continue
            if b"\n" in chunk:
                return True
            if not chunk:
                await trio.sleep_forever()
    return False
