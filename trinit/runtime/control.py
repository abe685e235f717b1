"""The control socket's server (SPEC §8): JSON lines over a unix socket, inside the trio run.

One task per connection, no threads and no timers while idle: an idle trinit with the
socket open sleeps in ``accept``. A client is served only with trinit's uid or root, within
the limits of :mod:`.conversation` (a request line's size, how long it may take to send it
and to read the replies, the clients served at once), which loads with the first connection.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import trio

from ..system.control_socket import BoundSocket, bind_control_socket, own_uid, remove_control_socket

if TYPE_CHECKING:
    from .supervisor import Runtime

#: At exit, how long followers of ``events`` get to read the last events.
FLUSH_TIMEOUT = 1.0


class ControlServer:
    """Serves the control protocol on ``path`` for one run."""

    def __init__(self, rt: Runtime, path: str) -> None:
        self.rt = rt
        self.path = path
        self._bound: BoundSocket | None = None
        self._scope = trio.CancelScope()
        #: Connections being served, ``events`` followers among them (:mod:`.conversation` counts).
        self.clients = 0
        self.uid = own_uid()
        self._served = trio.Event()
        self.following = 0
        self.unfollowed = trio.Event()

    def open(self, nursery: trio.Nursery) -> None:
        """Make the socket and serve it; a failure is a warning: trinit runs on without it."""
        log = self.rt.log
        try:
            self._bound = bind_control_socket(self.path)
        except OSError as exc:
            why = exc.strerror or str(exc)
            log.warning(
                "control_socket",
                f"no control socket at {self.path}: {why}; trinit runs on without it "
                "(set control_socket to another path, or to false)",
                path=self.path,
            )
            self._served.set()
            return
        log.debug("control_socket", f"control socket at {self.path}", path=self.path)
        nursery.start_soon(self._serve)

    async def close(self) -> None:
        """At exit: end the event streams, let followers read them briefly, remove the socket."""
        self.rt.events.close()
        with trio.move_on_after(FLUSH_TIMEOUT):
            while self.following:
                await self.unfollowed.wait()
                self.unfollowed = trio.Event()
        self._scope.cancel()
        await self._served.wait()

    async def _serve(self) -> None:
        assert self._bound is not None
        listener = trio.socket.from_stdlib_socket(self._bound.sock)
        try:
            with self._scope:
                async with trio.open_nursery() as clients:
                    while True:
                        try:
                            conn, _ = await listener.accept()
                        except OSError as exc:
                            await self._accept_failed(exc)
                            continue
                        # The door: a connection's code (json, the commands, steer) loads with the first.
                        from .conversation import serve_client

                        clients.start_soon(serve_client, self, conn)
        finally:
            remove_control_socket(self._bound)
            self._served.set()

    async def _accept_failed(self, exc: OSError) -> None:
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            self.rt.log.warning("control_socket", f"cannot accept a control connection: {exc.strerror}")
            await trio.sleep(0.1)  # only while out of fds: the next accept may succeed
