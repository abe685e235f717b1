"""trinit.runtime.readiness against real sockets: tcp, http and https probes."""

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

from trinit.config.probes import ReadySpec
from trinit.runtime.readiness import wait_ready


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _ipv6_available()


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
