"""cache: a tiny key-value sidecar (stdlib only).

A line protocol over TCP on 127.0.0.1:${CACHE_PORT:-6380}; one request a line, one reply a line:

    PING          -> PONG
    SET key value -> OK              (value: the rest of the line)
    GET key       -> VALUE value | NIL
    INCR key      -> VALUE n         (ERR when the value is not an integer)
    DUMP          -> VALUE {...}     (every key, as one JSON object: what snapshot.py saves)
    anything else -> ERR message

It loads ${TRINIT_EXAMPLE_DIR:-/tmp/trinit-example}/cache.json at start and saves its data there on
SIGTERM (or SIGINT), then exits 0. Under trinit it must outlive the app's shutdown: the flush job
writes into it after the app has stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

NAME = "cache"


def data_dir() -> Path:
    path = Path(os.environ.get("TRINIT_EXAMPLE_DIR", "/tmp/trinit-example"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def log(message: str) -> None:
    print(f"{NAME}: {message}", flush=True)


def record_event(what: str) -> None:
    """Append `EVENT <monotonic_ns> <program> <what> <pid>` to events.log (read by the tests)."""
    line = f"EVENT {time.monotonic_ns()} {NAME} {what} {os.getpid()}\n"
    with open(data_dir() / "events.log", "a", encoding="utf-8") as events:
        events.write(line)


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, str] = {}

    def load(self) -> None:
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log(f"ignoring unreadable {self.path}: {exc}")
            return
        if isinstance(loaded, dict):
            self.data = {str(k): str(v) for k, v in loaded.items()}
            log(f"loaded {len(self.data)} keys from {self.path}")

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)  # atomic: a reader never sees half a file

    def execute(self, line: str) -> str:
        parts = line.split(" ", 2)
        command = parts[0].upper()
        if command == "PING" and len(parts) == 1:
            return "PONG"
        if command == "GET" and len(parts) == 2:
            value = self.data.get(parts[1])
            return "NIL" if value is None else f"VALUE {value}"
        if command == "SET" and len(parts) == 3:
            self.data[parts[1]] = parts[2]
            return "OK"
        if command == "DUMP" and len(parts) == 1:
            return "VALUE " + json.dumps(self.data, sort_keys=True)
        if command == "INCR" and len(parts) == 2:
            try:
                number = int(self.data.get(parts[1], "0")) + 1
            except ValueError:
                return "ERR value is not an integer"
            self.data[parts[1]] = str(number)
            return f"VALUE {number}"
        return f"ERR bad request: {line[:60]!r}"


async def serve_client(store: Store, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            raw = await reader.readline()
            if not raw:
                break
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.upper() == "QUIT":
                break
            writer.write(store.execute(line).encode() + b"\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main() -> int:
    port = int(os.environ.get("CACHE_PORT", "6380"))
    store = Store(data_dir() / "cache.json")
    store.load()
    record_event("start")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_client(store, reader, writer)

    try:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
    except OSError as exc:
        log(f"cannot listen on 127.0.0.1:{port}: {exc}")
        return 1
    record_event("listening")
    log(f"listening on 127.0.0.1:{port}")

    await stop.wait()
    record_event("sigterm")
    log("stop signal received: closing the listener")
    server.close()
    store.save()
    log(f"saved {len(store.data)} keys to {store.path}; bye")
    record_event("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
