"""Readiness that the process announces itself (SPEC §9): sd_notify, or a newline on fd N.

``ready = { notify = true }``: each such process (and each with ``watchdog``) gets a
datagram socket of its own for all its runs, named in ``NOTIFY_SOCKET``; a task per
socket waits in the kernel for the next datagram, so an idle process costs no wakeup.
Only the current run's process and its own (descendants, its process group) are heard:
the kernel tells the sender's pid. ``ready = { fd = N }``: the process gets a pipe's write
end as fd N; trinit waits for the read end to turn readable, and a newline means ready
(s6's convention); the read end is closed then, as s6 does.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import attrs
import trio

from .._text import escape_controls
from ..system.notify_socket import MAX_MESSAGE, open_notify_socket, receive

if TYPE_CHECKING:
    from ..config.model import ProcessSpec
    from ..io.log import Logger
    from ..system.protocol import OSLayer


@attrs.frozen
class Prepared:
    """What one start of a process gets: variables, an fd to move, a variable set to its pid."""

    env: dict[str, str]
    move_fd: tuple[int, int] | None = None
    pid_env: str | None = None
    #: The read end of ``move_fd``'s pipe, trinit's.
    read_fd: int | None = None


@attrs.define(eq=False)
class Notifier:
    """The ``NOTIFY_SOCKET`` of one process, for all its runs."""

    name: str
    os: OSLayer
    log: Logger
    address: str = ""
    sock: trio.socket.SocketType | None = None
    #: The last ``STATUS=`` of this run (``ctl status``).
    status_text: str | None = None
    _root: int | None = None
    _ready: trio.Event = attrs.field(factory=trio.Event)
    _waiting: trio.CancelScope | None = None
    _dog: trio.CancelScope | None = None
    _period: float = 0.0
    _kick: trio.Event = attrs.field(factory=trio.Event)

    def open(self, nursery: trio.Nursery) -> None:
        """Make the socket (once) and start listening; datagrams queue in it until read."""
        if self.sock is None:
            self.sock, self.address = open_notify_socket()
            nursery.start_soon(self._listen, name=f"trinit notify {self.name}")

    def started(self, pid: int) -> None:
        """A new run: only ``pid`` and its own may speak now, and it is not ready yet."""
        self._root = pid
        self._ready = trio.Event()
        self.status_text = None

    async def wait_ready(self, timeout: float) -> bool:
        """Until ``READY=1`` (True) or the timeout, which ``EXTEND_TIMEOUT_USEC=`` may push back."""
        with trio.move_on_after(timeout) as self._waiting:
            await self._ready.wait()
            return True
        return False

    async def watchdog(self, period: float) -> None:
        """Return once the process misses its watchdog: no ``WATCHDOG=1`` for ``period``
        seconds (each one moves the deadline on: no timer ticks), or ``WATCHDOG=trigger``."""
        with trio.CancelScope(deadline=trio.current_time() + period) as self._dog:
            self._period = period
            try:
                await trio.sleep_forever()
            finally:
                self._dog = None

    async def next_ping(self) -> None:
        """Until the next ``WATCHDOG=1`` (an unready process is healthy again)."""
        await self._kick.wait()

    async def _listen(self) -> None:
        assert self.sock is not None
        with self.sock:
            while True:
                data, pid, cut = await receive(self.sock)
                self.handle(pid, data, cut=cut)

    def handle(self, pid: int | None, data: bytes, *, cut: bool = False) -> None:
        """One datagram from ``pid``: heard only from the current run's process and its own."""
        root = self._root
        if root is None or pid is None or not self.os.belongs_to(pid, root):
            self.log.debug(
                "notify",
                f"ignored a notification from pid {pid}: not {self.name}'s process (pid {root}) "
                "or one of its own",
                process=self.name,
                sender=pid,
            )
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        if cut or not text:
            why = f"longer than {MAX_MESSAGE} bytes" if cut else "not UTF-8 text"
            self.log.warning("notify", f"ignored a notification: {why}", process=self.name, pid=pid)
            return
        for line in text.split("\n"):
            key, sep, value = line.partition("=")
            if sep:
                self._apply(key, value, pid)

    def _apply(self, key: str, value: str, pid: int) -> None:
        shown = escape_controls(value)
        if key == "READY" and value == "1":
            self._ready.set()
        elif key == "STATUS":
            self.status_text = value
            self.log.debug("notify", f"status: {shown}", process=self.name, pid=pid, status=value)
        elif key == "WATCHDOG" and value in ("1", "trigger"):
            self._kick.set()
            self._kick = trio.Event()
            if self._dog is not None:
                now = trio.current_time()
                self._dog.deadline = now + self._period if value == "1" else -math.inf
        elif key in ("STOPPING", "RELOADING") and value == "1":
            what = "stopping" if key == "STOPPING" else "reloading"
            self.log.info("notify", f"says it is {what} ({key}=1)", process=self.name, pid=pid, what=what)
        elif key in ("MAINPID", "EXTEND_TIMEOUT_USEC"):
            self._numeric(key, value, pid)
        else:
            self.log.debug(
                "notify", f"ignored {escape_controls(key)}= (not used by trinit)", process=self.name
            )

    def _numeric(self, key: str, value: str, pid: int) -> None:
        if not (value.isascii() and value.isdigit()) or (key == "MAINPID" and int(value) == 0):
            self.log.warning(
                "notify", f"ignored {key}={escape_controls(value)}: not a number", process=self.name, pid=pid
            )
            return
        number = int(value)
        if key == "MAINPID":
            message = f"says its main pid is {number}; trinit keeps watching pid {self._root} (MAINPID= is not followed)"
            self.log.info("notify", message, process=self.name, pid=pid, mainpid=number)
            return
        seconds = number / 1e6
        waiting = self._waiting
        if waiting is not None and not self._ready.is_set():
            waiting.deadline = max(waiting.deadline, trio.current_time() + seconds)
        message = f"asks for {seconds:g} s more to become ready (EXTEND_TIMEOUT_USEC={number})"
        self.log.info("notify", message, process=self.name, pid=pid, extend=seconds)


class NotifyHub:
    """The notifiers and ready fds of one run; the spawner asks it what each start needs."""

    def __init__(self, os: OSLayer, log: Logger) -> None:
        self.os = os
        self.log = log
        self.nursery: trio.Nursery | None = None
        self.notifiers: dict[str, Notifier] = {}
        self._fds: dict[str, int] = {}

    def status_text(self, name: str) -> str | None:
        notifier = self.notifiers.get(name)
        return notifier.status_text if notifier is not None else None

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
