"""snapshot: a scheduled job that saves a copy of the cache's data (stdlib only).

trinit runs it on a schedule (`every = "5m"`, and once as soon as the cache is ready: `run_on_start`).
It asks the cache for all its keys (`DUMP`) and writes them to
${TRINIT_EXAMPLE_DIR:-/tmp/trinit-example}/snapshots/cache-<UTC time>.json (atomically: a temporary file
renamed into place), keeping the newest 5. Exits 0, or 1 with a message (trinit logs the failure and
runs it again at the next fire time).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

NAME = "snapshot"
KEEP = 5


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


def dump(port: int) -> dict[str, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, sock.makefile("rb") as replies:
        sock.sendall(b"DUMP\n")
        reply = replies.readline().decode().rstrip("\n")
    if not reply.startswith("VALUE "):
        raise RuntimeError(f"DUMP failed: {reply or 'the cache closed the connection'}")
    data = json.loads(reply[len("VALUE ") :])
    if not isinstance(data, dict):
        raise RuntimeError("DUMP did not return an object")
    return {str(k): str(v) for k, v in data.items()}


def main() -> int:
    record_event("start")
    port = int(os.environ.get("CACHE_PORT", "6380"))
    try:
        data = dump(port)
    except (OSError, ValueError, RuntimeError) as exc:
        return fail(f"cannot read the cache at 127.0.0.1:{port}: {exc}")
    folder = data_dir() / "snapshots"
    folder.mkdir(exist_ok=True)
    path = folder / time.strftime("cache-%Y%m%dT%H%M%SZ.json", time.gmtime())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    for old in sorted(folder.glob("cache-*.json"))[:-KEEP]:
        old.unlink(missing_ok=True)
    print(f"{NAME}: saved {len(data)} keys to {path.name}", flush=True)
    record_event("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
