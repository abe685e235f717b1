"""app: the main program of the provisioner example (stdlib only).

- Serves HTTP on ${HOST:-127.0.0.1}:${PORT:-8080}: `/healthz` answers 200 once everything is listening, `/` says
  whether the app has been provisioned. Every request is counted in the cache sidecar (`INCR`).
- Waits for one provisioning message on the UNIX socket ${TRINIT_EXAMPLE_DIR:-/tmp/trinit-example}/app.sock
  (a JSON line from provision.py), acknowledges it with a JSON line, and from then on appends a record to
  spool.jsonl every ${RECORD_INTERVAL:-1} seconds.
- On SIGTERM (or SIGINT) it stops gracefully: it closes its listeners, writes a last record, closes the
  spool and exits 0, in well under a second. flush.py then pushes the spool into the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

NAME = "app"
# asyncio's timeouts are TimeoutError since Python 3.11, a class of their own in 3.10: catch both.
NET_ERRORS = (OSError, asyncio.TimeoutError)


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


class CacheClient:
    """One TCP connection to the cache sidecar, reconnected when it breaks."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.lock = asyncio.Lock()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), timeout=2
            )
        assert self.reader is not None and self.writer is not None
        return self.reader, self.writer

    async def call(self, request: str) -> str:
        async with self.lock:
            for attempt in (1, 2):  # a second try on a fresh connection
                try:
                    reader, writer = await self._connect()
                    writer.write(request.encode() + b"\n")
                    await writer.drain()
                    reply = await asyncio.wait_for(reader.readline(), timeout=2)
                    if not reply:
                        raise ConnectionError("cache closed the connection")
                    return reply.decode().rstrip("\n")
                except NET_ERRORS:
                    self.close()
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class App:
    def __init__(self) -> None:
        self.dir = data_dir()
        self.host = os.environ.get("HOST", "127.0.0.1")  # 0.0.0.0 to publish it from a container
        self.port = int(os.environ.get("PORT", "8080"))
        self.socket_path = self.dir / "app.sock"
        self.spool_path = self.dir / "spool.jsonl"
        self.interval = float(os.environ.get("RECORD_INTERVAL", "1"))
        self.cache = CacheClient("127.0.0.1", int(os.environ.get("CACHE_PORT", "6380")))
        self.listening = False
        self.provisioning: dict[str, Any] | None = None
        self.provisioned = asyncio.Event()
        self.records = 0

    # -- HTTP -------------------------------------------------------------------------------------------

    async def count_request(self) -> str:
        try:
            reply = await self.cache.call("INCR app:requests")
        except NET_ERRORS as exc:
            return f"unknown (cache unreachable: {exc})"
        return reply.removeprefix("VALUE ")

    async def handle_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass  # headers: not needed
            parts = request_line.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else ""
            if path == "/healthz":
                status, body = (
                    ("200 OK", "ok\n") if self.listening else ("503 Service Unavailable", "starting\n")
                )
            elif path == "/":
                requests = await self.count_request()
                if self.provisioning is None:
                    state = "not provisioned yet"
                else:
                    state = f"provisioned ({json.dumps(self.provisioning, sort_keys=True)})"
                body = f"app: {state}; {self.records} records spooled; requests served: {requests}\n"
                status = "200 OK"
            else:
                status, body = "404 Not Found", "not found\n"
            payload = body.encode()
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + payload)
            await writer.drain()
        except (*NET_ERRORS, UnicodeDecodeError):
            pass
        finally:
            writer.close()

    # -- provisioning -----------------------------------------------------------------------------------

    async def handle_provision(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await asyncio.wait_for(reader.readline(), timeout=5)
            try:
                message = json.loads(raw)
                if not isinstance(message, dict) or message.get("op") != "provision":
                    raise ValueError('expected {"op": "provision", ...}')
                settings = message.get("settings", {})
                if not isinstance(settings, dict):
                    raise ValueError("settings must be an object")
            except ValueError as exc:
                reply: dict[str, Any] = {"ok": False, "error": str(exc)}
            else:
                first = self.provisioning is None
                self.provisioning = settings
                self.provisioned.set()
                if first:
                    record_event("provisioned")
                log(f"provisioned with {json.dumps(settings, sort_keys=True)}; spooling to {self.spool_path}")
                reply = {"ok": True, "app_pid": os.getpid(), "settings": settings, "again": not first}
            writer.write(json.dumps(reply, sort_keys=True).encode() + b"\n")
            await writer.drain()
        except NET_ERRORS:
            pass
        finally:
            writer.close()

    # -- spool ------------------------------------------------------------------------------------------

    def write_record(self, spool: Any, final: bool = False) -> None:
        self.records += 1
        record = {"seq": self.records, "time": round(time.time(), 3), "final": final}
        spool.write(json.dumps(record) + "\n")
        spool.flush()

    async def spool_records(self, stopping: asyncio.Event) -> None:
        await self.provisioned.wait()
        with open(self.spool_path, "a", encoding="utf-8") as spool:
            try:
                while not stopping.is_set():
                    self.write_record(spool)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stopping.wait(), timeout=self.interval)
                self.write_record(spool, final=True)
                log(f"wrote the last record; {self.records} records in {self.spool_path.name}")
            except asyncio.CancelledError:
                self.write_record(spool, final=True)
                raise

    # -- main -------------------------------------------------------------------------------------------

    async def run(self) -> int:
        record_event("start")
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        received: list[str] = []

        def on_signal(signum: signal.Signals) -> None:
            received.append(signum.name)
            stopping.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)

        try:
            pong = await self.cache.call("PING")
        except NET_ERRORS as exc:
            log(f"cannot reach the cache at 127.0.0.1:{self.cache.port}: {exc}")
            return 1
        log(f"cache answered {pong}")

        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # a stale socket from an earlier run
        try:
            provision_server = await asyncio.start_unix_server(
                self.handle_provision, path=str(self.socket_path)
            )
            http_server = await asyncio.start_server(self.handle_http, self.host, self.port)
        except OSError as exc:
            log(f"cannot listen: {exc}")
            return 1
        record_event("listening")  # before /healthz can say 200
        self.listening = True
        log(f"listening on http://{self.host}:{self.port} and {self.socket_path}; waiting to be provisioned")

        spooler = asyncio.create_task(self.spool_records(stopping))
        await stopping.wait()

        record_event("sigterm")
        log(f"{received[0]} received: closing listeners, finishing the spool")
        self.listening = False
        http_server.close()
        provision_server.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        if self.provisioned.is_set():
            await spooler
        else:
            spooler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await spooler
            log("stopped before being provisioned: nothing spooled")
        self.cache.close()
        log("stopped cleanly")
        record_event("stopped")
        return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(App().run()))
