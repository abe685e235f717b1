"""provision: a oneshot that provisions the app (stdlib only).

trinit starts it only once the app is ready (`after = { app = "ready" }`). It connects to the app's UNIX
socket ${TRINIT_EXAMPLE_DIR:-/tmp/trinit-example}/app.sock, sends one JSON line
`{"op": "provision", "settings": {...}}`, waits for the app's JSON acknowledgement, prints it and exits 0.
On any failure it says what went wrong on stderr and exits 1, so that trinit can retry it (`retries`).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

NAME = "provision"
CONNECT_FOR = 3.0  # seconds to keep trying to connect
REPLY_WITHIN = 5.0  # seconds to wait for the acknowledgement


def data_dir() -> Path:
    path = Path(os.environ.get("TRINIT_EXAMPLE_DIR", "/tmp/trinit-example"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def record_event(what: str) -> None:
    """Append `EVENT <monotonic_ns> <program> <what> <pid>` to events.log (read by the tests)."""
    line = f"EVENT {time.monotonic_ns()} {NAME} {what} {os.getpid()}\n"
    with open(data_dir() / "events.log", "a", encoding="utf-8") as events:
        events.write(line)


def fail(message: str) -> int:
    print(f"{NAME}: error: {message}", file=sys.stderr, flush=True)
    record_event("failed")
    return 1


def connect(path: Path) -> socket.socket:
    deadline = time.monotonic() + CONNECT_FOR
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
        except OSError:
            sock.close()
            raise


def main() -> int:
    record_event("start")
    path = data_dir() / "app.sock"
    settings = {
        "tenant": os.environ.get("TENANT", "demo"),
        "greeting": os.environ.get("GREETING", "hello from provision.py"),
    }
    try:
        sock = connect(path)
    except OSError as exc:
        return fail(f"cannot connect to the app at {path}: {exc}")
    with sock:
        sock.settimeout(REPLY_WITHIN)
        try:
            sock.sendall(json.dumps({"op": "provision", "settings": settings}).encode() + b"\n")
            reply = sock.makefile("rb").readline()
        except TimeoutError:
            return fail(f"no acknowledgement from the app within {REPLY_WITHIN:g}s")
        except OSError as exc:
            return fail(f"talking to the app at {path}: {exc}")
    if not reply:
        return fail("the app closed the connection without acknowledging")
    try:
        ack = json.loads(reply)
    except ValueError:
        return fail(f"unreadable acknowledgement: {reply[:100]!r}")
    if not isinstance(ack, dict) or ack.get("ok") is not True:
        return fail(f"the app refused the provisioning: {ack}")
    print(
        f"{NAME}: acknowledged by the app (pid {ack.get('app_pid')}): {json.dumps(ack, sort_keys=True)}",
        flush=True,
    )
    record_event("acked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
