"""Tests for trinit.runtime.readiness: the probes and their timing.

Target parsing is the config's job (trinit.config.probes): see tests/test_probes.py.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from trinit.config.model import ReadySpec
from trinit.config.probes import HttpProbe
from trinit.runtime import readiness as _readiness
from trinit.runtime.readiness import LogWatch, describe, http_request, wait_ready


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _ipv6_available()


# ---------------------------------------------------------------- helpers


class FakeExec:
    """A run_exec stand-in: fails ``failures`` times, then succeeds; records calls and start times."""

    def __init__(self, failures: int = 0, duration: float = 0.0, hang: bool = False) -> None:
        self.failures = failures
        self.duration = duration
        self.hang = hang
        self.calls: list[tuple[tuple[str, ...], float]] = []
        self.starts: list[float] = []

    async def __call__(self, argv: tuple[str, ...], attempt_timeout: float) -> bool:
        self.calls.append((argv, attempt_timeout))
        self.starts.append(trio.current_time())
        if self.hang:
            await trio.sleep_forever()
        await trio.sleep(self.duration)
        return len(self.calls) > self.failures


async def start_listener(
    nursery: trio.Nursery, handler: Callable[[trio.SocketStream], Awaitable[None]], host: str = "127.0.0.1"
) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host=host))
    return int(listeners[0].socket.getsockname()[1])


def http_handler(
    statuses: list[bytes], requests: list[bytes], hang_first: int = 0
) -> Callable[[trio.abc.Stream], Awaitable[None]]:
    """A tiny HTTP responder: answers with the next status (the last one repeats).

    The first ``hang_first`` connections are accepted and then never answered.
    """
    connections = 0

    async def handler(stream: trio.abc.Stream) -> None:
        nonlocal connections
        connections += 1
        if connections <= hang_first:
            await trio.sleep_forever()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        requests.append(data)
        status = statuses[min(len(requests), len(statuses)) - 1]
        await stream.send_all(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
        await stream.aclose()

    return handler


# ---------------------------------------------------------------- parsing and describe


async def test_missing_collaborators_raise() -> None:
    with pytest.raises(ValueError, match="run_exec"):
        await wait_ready(ReadySpec("exec", ("true",)))
    with pytest.raises(ValueError, match="log_watch"):
        await wait_ready(ReadySpec("log", "ready"))


def test_http_request_format() -> None:
    t = ReadySpec("http", "http://[::1]:8080/health check?x=1#frag").probe
    assert isinstance(t, HttpProbe)
    assert (t.host, t.port, t.tls) == ("::1", 8080, False)
    head = http_request(t).decode()
    assert head.startswith("GET /health%20check?x=1 HTTP/1.1\r\n")
    assert "\r\nHost: [::1]:8080\r\n" in head
    assert "\r\nConnection: close\r\n" in head
    assert head.endswith("\r\n\r\n")
    t = ReadySpec("http", "https://Example.com").probe
    assert isinstance(t, HttpProbe)
    assert (t.host, t.port, t.tls) == ("example.com", 443, True)
    assert http_request(t).startswith(b"GET / HTTP/1.1\r\nHost: example.com\r\n")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"HTTP/1.1 200 OK\r\n", 200),
        (b"HTTP/1.0 302\n", 302),
        (b"HTTP/1.1 200 OK", None),  # no line end yet
        (b"SSH-2.0-OpenSSH\r\n", None),
        (b"HTTP/1.1 2000 x\r\n", None),
        (b"", None),
    ],
)
def test_parse_status(data: bytes, code: int | None) -> None:
    assert _readiness._parse_status(data) == code


def test_describe() -> None:
    assert describe(ReadySpec("tcp", "127.0.0.1:8080")) == "tcp 127.0.0.1:8080"
    assert describe(ReadySpec("http", "http://localhost/h")) == "http http://localhost/h"
    assert describe(ReadySpec("exec", ("redis-cli", "ping"))) == "exec redis-cli ping"
    assert describe(ReadySpec("exec", ("sh", "-c", "a b"))) == "exec sh -c 'a b'"
    assert describe(ReadySpec("file", "/run/x")) == "file /run/x"
    assert describe(ReadySpec("log", "Ready to accept")) == "log 'Ready to accept'"


# ---------------------------------------------------------------- exec (fake run_exec, virtual time)


async def test_exec_success_first_try(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeExec()
    assert await wait_ready(ReadySpec("exec", ("redis-cli", "ping"), attempt_timeout=2.5), run_exec=fake)
    assert fake.calls == [(("redis-cli", "ping"), 2.5)]


async def test_exec_fails_then_succeeds_at_interval(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeExec(failures=3)
    t0 = trio.current_time()
    assert await wait_ready(ReadySpec("exec", ("x",), interval=0.5), run_exec=fake)
    assert len(fake.calls) == 4
    assert [round(t - t0, 6) for t in fake.starts] == [0, 0.5, 1.0, 1.5]


async def test_interval_is_start_to_start(autojump_clock: trio.testing.MockClock) -> None:
    # An attempt shorter than the interval does not push the next start back...
    fake = FakeExec(failures=2, duration=0.2)
    t0 = trio.current_time()
    assert await wait_ready(ReadySpec("exec", ("x",), interval=0.5), run_exec=fake)
    assert [round(t - t0, 6) for t in fake.starts] == [0, 0.5, 1.0]
    # ...and one longer than the interval is followed at once.
    fake = FakeExec(failures=2, duration=0.8)
    t0 = trio.current_time()
    assert await wait_ready(ReadySpec("exec", ("x",), interval=0.5), run_exec=fake)
    assert [round(t - t0, 6) for t in fake.starts] == [0, 0.8, 1.6]


async def test_exec_overall_timeout(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeExec(failures=10**9)
    t0 = trio.current_time()
    assert not await wait_ready(ReadySpec("exec", ("x",), interval=1.0, timeout=5.0), run_exec=fake)
    assert trio.current_time() - t0 == pytest.approx(5.0)
    assert len(fake.calls) == 5  # at 0, 1, 2, 3, 4; the one due at 5 is past the deadline


async def test_exec_hanging_attempt_cancelled_by_overall_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    t0 = trio.current_time()
    assert not await wait_ready(ReadySpec("exec", ("x",), timeout=3.0), run_exec=FakeExec(hang=True))
    assert trio.current_time() - t0 == pytest.approx(3.0)


async def test_exec_oserror_is_not_ready(autojump_clock: trio.testing.MockClock) -> None:
    calls = 0

    async def flaky(argv: tuple[str, ...], attempt_timeout: float) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise FileNotFoundError(argv[0])
        return True

    assert await wait_ready(ReadySpec("exec", ("x",)), run_exec=flaky)
    assert calls == 2


async def test_tiny_interval_is_not_a_busy_loop(autojump_clock: trio.testing.MockClock) -> None:
    # interval must be more than 0 (a ConfigError otherwise); below MIN_INTERVAL it is floored.
    fake = FakeExec(failures=10**9)
    assert not await wait_ready(ReadySpec("exec", ("x",), interval=1e-6, timeout=1.0), run_exec=fake)
    assert len(fake.calls) <= 1 / _readiness.MIN_INTERVAL + 1


# ---------------------------------------------------------------- file


async def test_file_appears(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    path = tmp_path / "ready"
    spec = ReadySpec("file", str(path), interval=0.25, timeout=10)
    t0 = trio.current_time()

    async def create_later() -> None:
        await trio.sleep(1.1)
        path.touch()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(create_later)
        assert await wait_ready(spec)
    assert trio.current_time() - t0 == pytest.approx(1.25)  # the first check after it appeared


async def test_file_already_there(tmp_path: Path) -> None:
    path = tmp_path / "ready"
    path.touch()
    # The first attempt is made at once, before any deadline can pass.
    assert await wait_ready(ReadySpec("file", str(path), timeout=1e-9))


async def test_file_timeout(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    t0 = trio.current_time()
    assert not await wait_ready(ReadySpec("file", str(tmp_path / "never"), timeout=2))
    assert trio.current_time() - t0 == pytest.approx(2)


# ---------------------------------------------------------------- log


def test_logwatch_feed_matches_search() -> None:
    watch = LogWatch(r"Ready to accept")
    watch.feed("starting")
    assert not watch.matched.is_set()
    watch.feed("12:00 * Ready to accept connections\n")
    assert watch.matched.is_set()
    watch.feed("more")  # stays set
    assert watch.matched.is_set()


def test_logwatch_strips_line_ending() -> None:
    watch = LogWatch(r"^up$")
    watch.feed("up\r\n")
    assert watch.matched.is_set()


def test_logwatch_reset() -> None:
    watch = LogWatch("up")
    first = watch.matched
    watch.reset()
    assert watch.matched is first  # an unset Event is kept for anyone waiting on it
    watch.feed("up")
    watch.reset()
    assert watch.matched is not first
    assert not watch.matched.is_set()


async def test_log_probe_waits_for_feed(autojump_clock: trio.testing.MockClock) -> None:
    watch = LogWatch(r"listening on \d+")
    t0 = trio.current_time()

    async def output() -> None:
        await trio.sleep(1)
        watch.feed("booting")
        await trio.sleep(1)
        watch.feed("listening on 8080")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(output)
        assert await wait_ready(ReadySpec("log", r"listening on \d+"), log_watch=watch)
    assert trio.current_time() - t0 == pytest.approx(2)


async def test_log_probe_reset_while_waiting(autojump_clock: trio.testing.MockClock) -> None:
    watch = LogWatch("up")

    async def output() -> None:
        await trio.sleep(1)
        watch.reset()  # the process restarted before ever matching
        watch.feed("up")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(output)
        assert await wait_ready(ReadySpec("log", "up", timeout=5), log_watch=watch)


async def test_log_probe_already_matched() -> None:
    watch = LogWatch("up")
    watch.feed("up")
    assert await wait_ready(ReadySpec("log", "up", timeout=1e-9), log_watch=watch)


async def test_log_probe_timeout(autojump_clock: trio.testing.MockClock) -> None:
    watch = LogWatch("up")
    watch.feed("down")
    t0 = trio.current_time()
    assert not await wait_ready(ReadySpec("log", "up", timeout=7), log_watch=watch)
    assert trio.current_time() - t0 == pytest.approx(7)


# ---------------------------------------------------------------- tcp (real sockets)


async def _accept_and_close(stream: trio.SocketStream) -> None:
    await stream.aclose()


async def test_tcp_success(nursery: trio.Nursery) -> None:
    port = await start_listener(nursery, _accept_and_close)
    assert await wait_ready(ReadySpec("tcp", f"127.0.0.1:{port}", timeout=5))


async def test_tcp_refused_then_listening(nursery: trio.Nursery) -> None:
    # Reserve a free port, then listen on it only after a few refused attempts.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def listen_later() -> None:
        await trio.sleep(0.3)
        listener = trio.socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await listener.bind(("127.0.0.1", port))
        listener.listen()
        await trio.serve_listeners(_accept_and_close, [trio.SocketListener(listener)])

    nursery.start_soon(listen_later)
    with trio.fail_after(5):
        assert await wait_ready(ReadySpec("tcp", f"127.0.0.1:{port}", interval=0.05, timeout=5))


async def test_tcp_timeout_when_nothing_listens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = trio.current_time()
    assert not await wait_ready(ReadySpec("tcp", f"127.0.0.1:{port}", interval=0.05, timeout=0.3))
    assert 0.25 < trio.current_time() - t0 < 2


async def test_tcp_attempt_timeout_bounds_hanging_connect(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connect that never completes (a firewall dropping SYNs) cannot be staged portably
    # with real sockets, so stand in for it.
    starts: list[float] = []

    async def fake_open_tcp_stream(host: str, port: int) -> trio.abc.Stream:
        starts.append(trio.current_time())
        if len(starts) == 1:
            await trio.sleep_forever()
        client, _server = trio.testing.memory_stream_pair()
        return client

    monkeypatch.setattr(trio, "open_tcp_stream", fake_open_tcp_stream)
    t0 = trio.current_time()
    assert await wait_ready(ReadySpec("tcp", "10.0.0.1:80", interval=0.1, attempt_timeout=2, timeout=60))
    assert [round(t - t0, 6) for t in starts] == [0, 2]


@pytest.mark.skipif(not HAS_IPV6, reason="IPv6 loopback unavailable (parsing is covered above)")
async def test_tcp_ipv6(nursery: trio.Nursery) -> None:
    port = await start_listener(nursery, _accept_and_close, host="::1")
    assert await wait_ready(ReadySpec("tcp", f"[::1]:{port}", timeout=5))


# ---------------------------------------------------------------- http (real sockets)


@pytest.mark.parametrize("status", [b"200 OK", b"204 No Content", b"301 Moved Permanently", b"399 Whatever"])
async def test_http_ready_statuses(nursery: trio.Nursery, status: bytes) -> None:
    requests: list[bytes] = []
    port = await start_listener(nursery, http_handler([status], requests))
    assert await wait_ready(ReadySpec("http", f"http://127.0.0.1:{port}/health?full=1", timeout=5))
    assert requests[0].startswith(b"GET /health?full=1 HTTP/1.1\r\n")
    assert f"\r\nHost: 127.0.0.1:{port}\r\n".encode() in requests[0]
    assert b"\r\nConnection: close\r\n" in requests[0]


@pytest.mark.parametrize(
    "status", [b"404 Not Found", b"500 Internal Server Error", b"503 Unavailable", b"100 Continue"]
)
async def test_http_not_ready_statuses(nursery: trio.Nursery, status: bytes) -> None:
    requests: list[bytes] = []
    port = await start_listener(nursery, http_handler([status], requests))
    spec = ReadySpec("http", f"http://127.0.0.1:{port}/", interval=0.05, timeout=0.3)
    assert not await wait_ready(spec)
    assert len(requests) >= 2  # it kept trying


async def test_http_503_then_200(nursery: trio.Nursery) -> None:
    requests: list[bytes] = []
    port = await start_listener(
        nursery, http_handler([b"503 Starting", b"503 Starting", b"200 OK"], requests)
    )
    spec = ReadySpec("http", f"http://127.0.0.1:{port}", interval=0.05, timeout=5)
    assert await wait_ready(spec)
    assert len(requests) == 3
    assert requests[0].startswith(b"GET / HTTP/1.1\r\n")


async def test_http_attempt_timeout_bounds_silent_server(nursery: trio.Nursery) -> None:
    # The first connection is accepted but never answered; the attempt must give up
    # after attempt_timeout and the next attempt gets its 200.
    requests: list[bytes] = []
    port = await start_listener(nursery, http_handler([b"200 OK"], requests, hang_first=1))
    spec = ReadySpec("http", f"http://127.0.0.1:{port}/", interval=0.05, attempt_timeout=0.3, timeout=5)
    t0 = trio.current_time()
    assert await wait_ready(spec)
    assert 0.28 < trio.current_time() - t0 < 2
    assert len(requests) == 1


async def test_http_silent_server_times_out(nursery: trio.Nursery) -> None:
    port = await start_listener(nursery, http_handler([b"200 OK"], [], hang_first=10**9))
    spec = ReadySpec("http", f"http://127.0.0.1:{port}/", attempt_timeout=0.2, timeout=0.5)
    t0 = trio.current_time()
    assert not await wait_ready(spec)
    assert trio.current_time() - t0 < 2


async def test_http_garbage_and_early_close_are_not_ready(nursery: trio.Nursery) -> None:
    async def garbage(stream: trio.SocketStream) -> None:
        await stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n")
        await stream.aclose()

    port = await start_listener(nursery, garbage)
    assert not await wait_ready(ReadySpec("http", f"http://127.0.0.1:{port}/", interval=0.05, timeout=0.2))
    port = await start_listener(nursery, _accept_and_close)
    assert not await wait_ready(ReadySpec("http", f"http://127.0.0.1:{port}/", interval=0.05, timeout=0.2))


@pytest.mark.skipif(not HAS_IPV6, reason="IPv6 loopback unavailable (parsing is covered above)")
async def test_http_ipv6(nursery: trio.Nursery) -> None:
    requests: list[bytes] = []
    port = await start_listener(nursery, http_handler([b"200 OK"], requests), host="::1")
    assert await wait_ready(ReadySpec("http", f"http://[::1]:{port}/", timeout=5))
    assert f"\r\nHost: [::1]:{port}\r\n".encode() in requests[0]


@pytest.fixture
def self_signed_cert(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_self_signed(nursery: trio.Nursery, self_signed_cert: tuple[Path, Path]) -> None:
    import ssl

    cert, key = self_signed_cert
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    requests: list[bytes] = []
    plain = http_handler([b"200 OK"], requests)

    async def handler(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, ctx, server_side=True, https_compatible=True)
        with contextlib.suppress(trio.BrokenResourceError):
            await plain(tls)

    port = await start_listener(nursery, handler)
    assert await wait_ready(ReadySpec("http", f"https://127.0.0.1:{port}/", timeout=5))
    assert requests and requests[0].startswith(b"GET / HTTP/1.1\r\n")
