"""sd_notify (SPEC §9): the ``NOTIFY_SOCKET`` of one process and what it says on it.

Loaded by :meth:`.notify.NotifyHub.prepare` the first time a process with ``ready = { notify =
true }`` or ``watchdog`` starts: a config without one never loads it (idle memory).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs
import trio

from .._text import escape_controls
from ..system.notify_socket import MAX_MESSAGE, open_notify_socket, receive

if TYPE_CHECKING:
    from ..io.log import Logger
    from ..system.protocol import OSLayer


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
