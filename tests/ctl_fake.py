"""A fake trinit control socket for the client's tests: canned replies, every request recorded.

A plain thread with a unix socket (no trio): it accepts one connection at a time, reads one
request line, records it, and sends what the test's handler returns for it, then closes the
connection. A handler returns a list of steps: bytes are sent as they are, a dict is sent as one
JSON line, a ``threading.Event`` is waited for (so a test can hold the stream at a point).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Step = bytes | dict[str, Any] | threading.Event
Handler = Callable[[dict[str, Any]], Sequence[Step]]

#: How long a held step waits at most before the fake gives up (the test has failed by then).
HOLD_TIMEOUT = 30.0


def line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def canned(replies: dict[str, dict[str, Any]]) -> Handler:
    """Answer each ``cmd`` with its reply (``{"ok": true}`` for commands not listed)."""
    return lambda request: [replies.get(request.get("cmd", ""), {"ok": True})]


class FakeServer:
    """Listens on ``path`` until closed; ``requests`` lists every request it read, in order."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = str(path)
        self.handler = handler
        self.requests: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._closed = threading.Event()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(8)
        self._sock.settimeout(0.05)  # so close() is seen by the accept loop
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self._answer(conn)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away: a test of exactly that
            except BaseException as exc:
                self.errors.append(exc)
            finally:
                conn.close()

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(HOLD_TIMEOUT)
        with conn.makefile("rb") as reader:
            request_line = reader.readline()
        if not request_line:
            return
        request = json.loads(request_line)
        self.requests.append(request)
        for step in self.handler(request):
            if isinstance(step, threading.Event):
                if not step.wait(HOLD_TIMEOUT):
                    raise TimeoutError("the test never released a held step")
            elif isinstance(step, dict):
                conn.sendall(line(step))
            else:
                conn.sendall(step)

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        self._thread.join(5)
        assert not self.errors, self.errors
