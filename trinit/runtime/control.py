"""The control socket's server (SPEC §8): JSON lines over a unix socket, inside the trio run.

One task per connection, no threads and no timers while idle: an idle trinit with the
socket open sleeps in ``accept``. A client is served only with trinit's uid or root; it
must send its request within :data:`IDLE_TIMEOUT`, in one line of at most
:data:`MAX_LINE` bytes, and read its replies within :data:`SEND_TIMEOUT`, or it is
dropped. No request can crash the runtime or hold it up: the worst a client gets is an
error reply and a closed connection.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

import trio

from ..system.control_socket import (
    BoundSocket,
    bind_control_socket,
    own_uid,
    peer_uid,
    remove_control_socket,
)

if TYPE_CHECKING:
    from .supervisor import Runtime

#: The longest request line accepted (bytes, newline included).
MAX_LINE = 65536
#: How long a connection may wait before sending its (next) request.
IDLE_TIMEOUT = 10.0
#: How long a reply or event may wait for the client to read it.
SEND_TIMEOUT = 10.0
#: Connections served at once; more are answered "busy" and closed.
MAX_CLIENTS = 1024
#: At exit, how long followers of ``events`` get to read the last events.
FLUSH_TIMEOUT = 1.0


class _TooLong(Exception):
    pass


def _encode(obj: dict[str, Any]) -> bytes:
    import json  # the JSON codec loads with the first request: an idle trinit never needs it

    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str).encode() + b"\n"


def _decode(line: bytes) -> Any:
    import json

    return json.loads(line)


def _error(code: str, message: str) -> bytes:
    return _encode({"ok": False, "error": message, "code": code})


class ControlServer:
    """Serves the control protocol on ``path`` for one run."""

    def __init__(self, rt: Runtime, path: str) -> None:
        self.rt = rt
        self.path = path
        self._bound: BoundSocket | None = None
        self._scope = trio.CancelScope()
        self._clients = 0
        self._uid = own_uid()
        self._served = trio.Event()
        self._following = 0
        self._unfollowed = trio.Event()

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
            while self._following:
                await self._unfollowed.wait()
                self._unfollowed = trio.Event()
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
                        clients.start_soon(self._client, conn)
        finally:
            remove_control_socket(self._bound)
            self._served.set()

    async def _accept_failed(self, exc: OSError) -> None:
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            self.rt.log.warning("control_socket", f"cannot accept a control connection: {exc.strerror}")
            await trio.sleep(0.1)  # only while out of fds: the next accept may succeed

    async def _client(self, conn: trio.socket.SocketType) -> None:
        stream = trio.SocketStream(conn)
        self._clients += 1
        try:
            await self._converse(stream, conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError, _TooLong):
            pass  # the client went away, would not read, or sent too much: drop it
        finally:
            self._clients -= 1
            await trio.aclose_forcefully(stream)

    async def _converse(self, stream: trio.SocketStream, conn: trio.socket.SocketType) -> None:
        buffer = bytearray()
        refusal = None
        if self._clients > MAX_CLIENTS:
            refusal = _error("busy", f"more than {MAX_CLIENTS} clients at once; try again")
        elif (uid := peer_uid(conn)) not in (0, self._uid):
            refusal = _error(
                "denied", f"permission denied: uid {uid} is neither trinit's ({self._uid}) nor root"
            )
        if refusal is not None:
            # Read the request first, so the client is not cut off while it still sends.
            if await self._read_line(stream, buffer) is not None:
                await self._send(stream, refusal)
            return
        while True:
            line = await self._read_line(stream, buffer)
            if line is None:
                return
            try:
                request = _decode(line)
            except (ValueError, UnicodeDecodeError):
                await self._send(stream, _error("bad_request", "a request is one line of JSON"))
                return
            if isinstance(request, dict) and request.get("cmd") == "events":
                await self._follow(stream)
                return
            from .commands import answer  # the commands (and steer's work) load with the first request

            await self._send(stream, _encode(await answer(self.rt, request)))

    async def _read_line(self, stream: trio.SocketStream, buffer: bytearray) -> bytes | None:
        """The next line, or None when the client closed or went quiet for IDLE_TIMEOUT."""
        with trio.move_on_after(IDLE_TIMEOUT):
            while (end := buffer.find(b"\n")) < 0:
                if len(buffer) > MAX_LINE:
                    await self._send(
                        stream, _error("bad_request", f"a request line is at most {MAX_LINE} bytes")
                    )
                    raise _TooLong
                data = await stream.receive_some(MAX_LINE)
                if not data:
                    return None
                buffer += data
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            return line
        return None

    async def _send(self, stream: trio.SocketStream, data: bytes) -> None:
        with trio.fail_after(SEND_TIMEOUT):
            await stream.send_all(data)

    async def _follow(self, stream: trio.SocketStream) -> None:
        """``events``: the reply, then every event as it happens until either side ends it."""
        self._following += 1
        try:
            await self._stream_events(stream)
        finally:
            self._following -= 1
            self._unfollowed.set()

    async def _stream_events(self, stream: trio.SocketStream) -> None:
        with self.rt.events.follow() as events:
            await self._send(stream, _encode({"ok": True}))
            async with trio.open_nursery() as nursery:

                async def until_closed() -> None:
                    while await stream.receive_some(4096):
                        pass  # a follower has nothing to say; EOF ends the stream
                    nursery.cancel_scope.cancel()

                nursery.start_soon(until_closed)
                async for event in events:
                    await self._send(stream, _encode(event))
                nursery.cancel_scope.cancel()
