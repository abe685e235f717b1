"""Readiness probes (SPEC §4, the ``ready`` key): decide when a started process counts as ready.

The runtime calls :func:`wait_ready` once per run of a process. Targets arrive parsed
(``ReadySpec.probe``, see ``trinit.config.probes``): nothing here parses or re-checks them.
Probes never spawn processes themselves: an ``exec`` probe goes through the ``run_exec``
callable the runtime provides, so every child is started by trinit's OS layer and reaped by
its single reaper.

Timing: one attempt right away, then one attempt every ``interval`` measured start to start
(an attempt that takes longer than ``interval`` is followed at once by the next one, so a slow
probe is not slowed down further). ``attempt_timeout`` bounds one exec/tcp/http attempt and
``timeout`` bounds the whole wait; on expiry the attempt in flight is cancelled.
"""

from __future__ import annotations

import os
import shlex
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import trio

from ..config.probes import ExecProbe, FileProbe, HttpProbe, LogProbe, Probe, ReadySpec, TcpProbe

if TYPE_CHECKING:
    from .log_watch import LogWatch

__all__ = [
    "MIN_INTERVAL",
    "RunExec",
    "attempt_for",
    "describe",
    "http_request",
    "wait_ready",
]

#: ``run_exec(argv, attempt_timeout)``: True iff the command exited 0 within ``attempt_timeout``.
RunExec = Callable[[tuple[str, ...], float], Awaitable[bool]]

#: Floor for ``interval``: an ``interval = 0`` probe that fails instantly would otherwise spin the CPU.
MIN_INTERVAL = 0.01

#: Longest HTTP status line we read before giving up on a response (a non-HTTP server, say).
_MAX_STATUS_LINE = 8192


def http_request(probe: HttpProbe) -> bytes:
    """The GET a probe sends; every part is ASCII already (the config encoded it)."""
    return (
        f"GET {probe.path_and_query} HTTP/1.1\r\n"
        f"Host: {probe.host_header}\r\n"
        "User-Agent: trinit-probe\r\n"
        "Accept: */*\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode("ascii")


class Probed(Protocol):
    """A readiness probe or a health check: what one attempt needs."""

    @property
    def kind(self) -> str | None: ...

    @property
    def target(self) -> tuple[str, ...] | str | None: ...

    @property
    def probe(self) -> Probe | None: ...

    @property
    def attempt_timeout(self) -> float: ...


def describe(spec: Probed) -> str:
    """One short human phrase for log lines, e.g. ``"tcp 127.0.0.1:8080"``."""
    if isinstance(spec.target, tuple):
        return f"{spec.kind} {shlex.join(spec.target)}"
    if spec.kind == "log":
        return f"log {spec.target!r}"
    return f"{spec.kind} {spec.target}"


async def wait_ready(
    spec: ReadySpec,
    *,
    run_exec: RunExec | None = None,
    log_watch: LogWatch | None = None,
) -> bool:
    """Wait until the probe passes (True) or ``spec.timeout`` runs out (False).

    Raises ValueError when the kind needs ``run_exec``/``log_watch`` and it was not given:
    that is a bug, not "not ready yet".
    """
    overall = spec.timeout
    if isinstance(spec.probe, LogProbe):
        if log_watch is None:
            raise ValueError("a log probe needs log_watch")
        # No polling: the runtime's output reader sets the Event.
        event = log_watch.matched
        if event.is_set():
            return True
        with trio.move_on_after(overall):
            await event.wait()
            return True
        return False

    attempt = attempt_for(spec, run_exec)
    interval = max(spec.interval, MIN_INTERVAL)
    with trio.move_on_after(overall):
        while True:
            started = trio.current_time()
            if await attempt():
                return True
            await trio.sleep_until(started + interval)
    return False


def attempt_for(spec: Probed, run_exec: RunExec | None) -> Callable[[], Awaitable[bool]]:
    """Build the single-attempt coroutine function for one probe (exec, tcp, http or file)."""
    probe = spec.probe
    attempt_timeout = spec.attempt_timeout
    if isinstance(probe, ExecProbe):
        if run_exec is None:
            raise ValueError("an exec probe needs run_exec")
        argv, runner = probe.argv, run_exec

        async def exec_attempt() -> bool:
            # run_exec enforces attempt_timeout itself (it must kill the command), so no scope here.
            try:
                return await runner(argv, attempt_timeout)
            except OSError:
                return False

        return exec_attempt

    if isinstance(probe, FileProbe):
        path = probe.path

        async def file_attempt() -> bool:
            return os.path.exists(path)

        return file_attempt

    if isinstance(probe, TcpProbe):
        tcp = probe

        async def tcp_attempt() -> bool:
            return await _bounded(_tcp_connects(tcp.host, tcp.port), attempt_timeout)

        return tcp_attempt

    assert isinstance(probe, HttpProbe), probe  # LogProbe is handled by wait_ready
    http, request = probe, http_request(probe)

    async def http_attempt() -> bool:
        return await _bounded(_http_ok(http, request), attempt_timeout)

    return http_attempt


async def _bounded(attempt: Awaitable[bool], seconds: float) -> bool:
    """Run one network attempt within ``seconds``; any network error means "not ready yet"."""
    with trio.move_on_after(seconds):
        try:
            return await attempt
        except (OSError, trio.BrokenResourceError):
            return False
    return False


async def _tcp_connects(host: str, port: int) -> bool:
    stream = await trio.open_tcp_stream(host, port)
    await trio.aclose_forcefully(stream)
    return True


async def _http_ok(target: HttpProbe, request: bytes) -> bool:
    """One GET; ready on a 2xx or 3xx status line. Only the status line is read."""
    stream: trio.abc.Stream
    if target.tls:
        stream = await trio.open_ssl_over_tcp_stream(
            target.host, target.port, ssl_context=_probe_ssl_context(), https_compatible=True
        )
    else:
        stream = await trio.open_tcp_stream(target.host, target.port)
    try:
        await stream.send_all(request)
        buf = bytearray()
        while b"\n" not in buf and len(buf) < _MAX_STATUS_LINE:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            buf += chunk
    finally:
        # Forcefully: a graceful TLS close could wait on a peer we no longer care about.
        await trio.aclose_forcefully(stream)
    status = _parse_status(bytes(buf))
    return status is not None and 200 <= status < 400


def _parse_status(data: bytes) -> int | None:
    """The code from ``HTTP/1.x NNN reason``, or None if this is not an HTTP response."""
    line, newline, _ = data.partition(b"\n")
    if not newline:
        return None
    fields = line.rstrip(b"\r").split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/"):
        return None
    code = fields[1]
    if len(code) != 3 or not code.isdigit():
        return None
    return int(code)


_ssl_context: ssl.SSLContext | None = None


def _probe_ssl_context() -> ssl.SSLContext:
    """A TLS context that does not verify the certificate.

    A probe asks "is it serving?", not "is it trusted?": services in containers often use
    self-signed or internal certificates, and Kubernetes' HTTPS probes skip verification too.
    Built on first use (ssl itself is already loaded by trio).
    """
    global _ssl_context
    if _ssl_context is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _ssl_context = ctx
    return _ssl_context
