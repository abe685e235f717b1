"""flush: a stop-phase oneshot that flushes the app's spool into the cache (stdlib only).

trinit runs it during shutdown (`phase = "stop"`, `after = ["app"]`): once the app has stopped, and
while the cache is still up. It reads ${TRINIT_EXAMPLE_DIR:-/tmp/trinit-example}/spool.jsonl, stores a
summary in the cache under `spool:summary` (and counts the flushes in `spool:flushes`), then moves the
spool aside to spool.flushed.jsonl, so the next run starts afresh. Exits 0, or 1 with a message.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

NAME = "flush"


def data_dir() -> Path:
    path = Path(os.environ.get("TRINIT_EXAMPLE_DIR", "/tmp/trinit-example"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def record_event(what: str) -> None:
    """Append `EVENT <monotonic_ns> <program> <what> <pid>` to events.log (read by the tests)."""
    line = f"EVENT {time.monotonic_ns()} {NAME} {what} {os.getpid()}\n"
    with open(data_dir() / "events.log", "a", encoding="utf-8") as events:
        events.write(line)


def log(message: str) -> None:
    print(f"{NAME}: {message}", flush=True)


def fail(message: str) -> int:
    print(f"{NAME}: error: {message}", file=sys.stderr, flush=True)
    record_event("failed")
    return 1


def read_spool(path: Path) -> dict[str, Any]:
    records: list[dict[str, Any]] = []
    bad = 0
    try:
        with open(path, encoding="utf-8") as spool:
            for line in spool:
                try:
                    record = json.loads(line)
                except ValueError:
                    bad += 1  # e.g. a line cut short by a crash
                    continue
                if isinstance(record, dict):
                    records.append(record)
    except FileNotFoundError:
        pass
    return {
        "records": len(records),
        "unreadable": bad,
        "first_seq": records[0].get("seq") if records else None,
        "last_seq": records[-1].get("seq") if records else None,
        "clean_end": bool(records) and records[-1].get("final") is True,
        "flushed_at": round(time.time(), 3),
    }


def app_is_stopped(socket_path: Path) -> bool:
    """The app removes its socket when it stops; a socket nobody listens on also counts as stopped."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(socket_path))
    except OSError:
        return True
    finally:
        probe.close()
    return False


class Cache:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.replies = self.sock.makefile("rb")

    def call(self, request: str) -> str:
        self.sock.sendall(request.encode() + b"\n")
        reply = self.replies.readline().decode().rstrip("\n")
        if not reply:
            raise ConnectionError("the cache closed the connection")
        if reply.startswith("ERR"):
            raise RuntimeError(f"{request.split()[0]} failed: {reply}")
        return reply

    def close(self) -> None:
        self.replies.close()
        self.sock.close()


def main() -> int:
    record_event("start")
    directory = data_dir()
    spool_path = directory / "spool.jsonl"
    if not app_is_stopped(directory / "app.sock"):
        # trinit's stop order guarantees this; by hand, stop app.py first.
        return fail("the app is still running: refusing to flush a spool that is being written")
    summary = read_spool(spool_path)

    port = int(os.environ.get("CACHE_PORT", "6380"))
    try:
        cache = Cache(port)
    except OSError as exc:
        return fail(f"cannot reach the cache at 127.0.0.1:{port}: {exc}")
    try:
        cache.call("SET spool:summary " + json.dumps(summary, sort_keys=True))
        cache.call("INCR spool:flushes")
    except (OSError, RuntimeError) as exc:
        return fail(f"pushing the summary to the cache: {exc}")
    finally:
        cache.close()

    if spool_path.exists():
        os.replace(spool_path, directory / "spool.flushed.jsonl")
    log(f"flushed {summary['records']} records (last seq {summary['last_seq']}) into the cache")
    record_event("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
