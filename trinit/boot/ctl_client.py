"""The client end of the control socket: one connection, JSON lines both ways (docs/control.md).

Stdlib only (socket, json, os): ``trinit ctl`` and ``trinit probe`` run in a few tens of
milliseconds because nothing here pulls in trio or attrs. Everything that means "no trinit is
there to answer" (nothing at the path, a refused or denied connect, a connection closed or
timed out before the reply, a reply that is not the protocol) is one exception, :class:`NoAnswer`,
which the CLI turns into exit 3 (``probe``: exit 1).
"""

from __future__ import annotations

import json
import os
import socket

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms, and a probe should be quick.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["PROTOCOL", "Connection", "NoAnswer", "check_socket_path"]

#: The protocol major version this client speaks (sent as ``"v"`` with every request).
PROTOCOL = 1
#: A reply line longer than this is not trinit's (a status of 10,000 processes is ~3 MiB).
MAX_LINE = 64 * 1024 * 1024
#: sun_path holds 108 bytes on Linux, the terminating NUL included.
MAX_PATH = 107


class NoAnswer(Exception):
    """No trinit answered on the socket; the message is the reason, for the parentheses."""


def check_socket_path(path: str) -> str | None:
    """Why ``path`` cannot name a unix socket, or None."""
    if not path:
        return "the socket path is empty"
    if "\0" in path:
        return "the socket path contains a NUL byte"
    if len(os.fsencode(path)) > MAX_PATH:
        return f"the socket path is longer than a unix socket allows ({MAX_PATH} bytes)"
    return None


def _reason(exc: OSError) -> str:
    """``No such file or directory`` → ``no such file or directory``: it goes in parentheses."""
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return text[:1].lower() + text[1:]


class Connection:
    """One connection to trinit's control socket; ``timeout`` bounds the connect and each read
    (None: wait as long as trinit takes, for ``--wait`` and ``wait``)."""

    def __init__(self, path: str, timeout: float | None) -> None:
        self.path = path
        self._buffer = b""
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except TimeoutError:
            self.close()
            raise NoAnswer(f"no connection within {timeout:g} s") from None
        except OSError as exc:
            self.close()
            raise NoAnswer(_reason(exc)) from None

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_timeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def send(self, request: dict[str, object]) -> None:
        line = json.dumps({**request, "v": PROTOCOL}, separators=(",", ":")) + "\n"
        try:
            self._sock.sendall(line.encode("utf-8"))
        except OSError as exc:
            raise NoAnswer(f"it closed the connection: {_reason(exc)}") from None

    def read_line(self) -> bytes | None:
        """The next line without its newline, or None when trinit closed the connection."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
                return line
            if len(self._buffer) > MAX_LINE:
                raise NoAnswer(f"a reply line is longer than {MAX_LINE // (1024 * 1024)} MiB")
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise NoAnswer(f"no reply within {self._sock.gettimeout():g} s") from None
            except OSError as exc:
                raise NoAnswer(f"the connection failed: {_reason(exc)}") from None
            if not chunk:
                if self._buffer:
                    raise NoAnswer("it closed the connection in the middle of a reply")
                return None
            self._buffer += chunk

    def reply(self) -> dict[str, object]:
        """The reply to the request just sent: an object with a boolean ``ok``."""
        line = self.read_line()
        if line is None:
            raise NoAnswer("it closed the connection without a reply")
        return decode(line)

    def lines(self) -> Iterator[tuple[bytes, dict[str, object]]]:
        """Each further line (raw, decoded) until trinit closes the connection: the event stream."""
        while (line := self.read_line()) is not None:
            yield line, decode(line, reply=False)


def decode(line: bytes, *, reply: bool = True) -> dict[str, object]:
    """One line of the protocol as an object; a reply must carry a boolean ``ok``."""
    try:
        obj = json.loads(line)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        raise NoAnswer("it answered something that is not JSON: not trinit's control protocol") from None
    if not isinstance(obj, dict) or (reply and not isinstance(obj.get("ok"), bool)):
        raise NoAnswer("it answered something that is not trinit's control protocol")
    return obj
