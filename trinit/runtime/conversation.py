"""One control connection (SPEC §8): its request lines, its limits, its replies, an ``events`` stream.

Loaded by :class:`.control.ControlServer` at the first connection: an idle trinit serving the
socket has only the listener loaded. The client must send its request within
:data:`IDLE_TIMEOUT`, in one line of at most :data:`MAX_LINE` bytes, and read its replies within
:data:`SEND_TIMEOUT`, or it is dropped. No request can crash the runtime or hold it up: the worst a
client gets is an error reply and a closed connection.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import trio

from ..system.control_socket import peer_uid
from .commands import answer

if TYPE_CHECKING:
    from .control import ControlServer

#: The longest request line accepted (bytes, newline included).
MAX_LINE = 65536
#: How long a connection may wait before sending its (next) request.
IDLE_TIMEOUT = 10.0
#: How long a reply or event may wait for the client to read it.
SEND_TIMEOUT = 10.0
#: Connections served at once; more are answered "busy" and closed.
MAX_CLIENTS = 1024


class _TooLong(Exception):
    pass


def _encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str).encode() + b"\n"


def _error(code: str, message: str) -> bytes:
    return _encode({"ok": False, "error": message, "code": code})


async def serve_client(server: ControlServer, conn: trio.socket.SocketType) -> None:
    """Serve one connection to its end; whatever the client does, it only loses its connection."""
    stream = trio.SocketStream(conn)
    server.clients += 1
    try:
        await _converse(server, stream, conn)
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError, _TooLong):
        pass  # the client went away, would not read, or sent too much: drop it
    finally:
        server.clients -= 1
        await trio.aclose_forcefully(stream)


async def _converse(server: ControlServer, stream: trio.SocketStream, conn: trio.socket.SocketType) -> None:
    buffer = bytearray()
    refusal = None
    if server.clients > MAX_CLIENTS:
        refusal = _error("busy", f"more than {MAX_CLIENTS} clients at once; try again")
    elif (uid := peer_uid(conn)) not in (0, server.uid):
        refusal = _error(
            "denied", f"permission denied: uid {uid} is neither trinit's ({server.uid}) nor root"
        )
    if refusal is not None:
        # Read the request first, so the client is not cut off while it still sends.
        if await _read_line(stream, buffer) is not None:
            await _send(stream, refusal)
        return
    while True:
        line = await _read_line(stream, buffer)
        if line is None:
            return
        try:
            request = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            await _send(stream, _error("bad_request", "a request is one line of JSON"))
            return
        if isinstance(request, dict) and request.get("cmd") == "events":
            await _follow(server, stream)
            return
        await _send(stream, _encode(await answer(server.rt, request)))


async def _read_line(stream: trio.SocketStream, buffer: bytearray) -> bytes | None:
    """The next line, or None when the client closed or went quiet for IDLE_TIMEOUT."""
    with trio.move_on_after(IDLE_TIMEOUT):
        while (end := buffer.find(b"\n")) < 0:
            if len(buffer) > MAX_LINE:
                await _send(stream, _error("bad_request", f"a request line is at most {MAX_LINE} bytes"))
                raise _TooLong
            data = await stream.receive_some(MAX_LINE)
            if not data:
                return None
            buffer += data
        line = bytes(buffer[:end])
        del buffer[: end + 1]
        return line
    return None


async def _send(stream: trio.SocketStream, data: bytes) -> None:
    with trio.fail_after(SEND_TIMEOUT):
        await stream.send_all(data)


async def _follow(server: ControlServer, stream: trio.SocketStream) -> None:
    """``events``: the reply, then every event as it happens until either side ends it."""
    server.following += 1
    try:
        await _stream_events(server, stream)
    finally:
        server.following -= 1
        server.unfollowed.set()


async def _stream_events(server: ControlServer, stream: trio.SocketStream) -> None:
    with server.rt.events.follow() as events:
        await _send(stream, _encode({"ok": True}))
        async with trio.open_nursery() as nursery:

            async def until_closed() -> None:
                while await stream.receive_some(4096):
                    pass  # a follower has nothing to say; EOF ends the stream
                nursery.cancel_scope.cancel()

            nursery.start_soon(until_closed)
            async for event in events:
                await _send(stream, _encode(event))
            nursery.cancel_scope.cancel()
