"""Probe targets are parsed once, by the config (trinit.config.probes): what validates is
typed and ready to use; what cannot work is a ConfigError naming the key."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trinit._errors import ConfigError
from trinit.config.load import config_from_mapping
from trinit.config.model import ProcessSpec
from trinit.config.probes import ExecProbe, FileProbe, HttpProbe, LogProbe, ReadySpec, TcpProbe
from trinit.runtime.log_watch import LogWatch
from trinit.runtime.readiness import wait_ready


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("127.0.0.1:8080", TcpProbe("127.0.0.1", 8080)),
        ("localhost:1", TcpProbe("localhost", 1)),
        ("[::1]:8080", TcpProbe("::1", 8080)),
        ("[fe80::1%eth0]:65535", TcpProbe("fe80::1%eth0", 65535)),
        ("Bücher.example:80", TcpProbe("xn--bcher-kva.example", 80)),
        ("example.com.:80", TcpProbe("example.com.", 80)),
    ],
)
def test_tcp_targets(target: str, expected: TcpProbe) -> None:
    assert ReadySpec("tcp", target).probe == expected


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("8080", "the port is missing"),
        (":8080", "the host is empty"),
        ("host:", "the port must be a number from 1 to 65535 (got '')"),
        ("host:http", "the port must be"),
        ("host:0", "the port must be"),
        ("host:65536", "the port must be"),
        ("127.0.0.1:٨٠", "the port must be a number from 1 to 65535 (got '٨٠')"),
        ("h:+80", "the port must be"),
        ("::1:8080", "an IPv6 address needs brackets"),
        ("[::1:8080", "the port is missing"),
        ("[]:80", "an IPv6 address needs both brackets"),
        ("[nope]:80", "'nope' is not an IPv6 address"),
        ("[::1]x:80", "only a :port may follow"),
        ("a b:80", "holds a character a host name cannot have"),
        (".é:80", "is not a valid international name"),
        ("a" * 64 + ".com:80", "each dot-separated part of the host must be 1 to 63 characters"),
        ("a..b:80", "each dot-separated part of the host must be 1 to 63 characters"),
        ("[fe80::1%" + "e" * 70 + "]:80", "each dot-separated part of the host must be 1 to 63 characters"),
        ("é" * 70 + ":80", "is not a valid international name"),
    ],
)
def test_tcp_targets_rejected(target: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        ReadySpec("tcp", target)
    [error] = info.value.errors
    assert error.startswith('ready.tcp: must be "host:port" like "127.0.0.1:8080" (got ')
    assert why in error


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "http://127.0.0.1:8000/health?full=1",
            HttpProbe("http", "127.0.0.1", 8000, "/health?full=1", "127.0.0.1:8000"),
        ),
        ("https://Example.com", HttpProbe("https", "example.com", 443, "/", "example.com")),
        ("http://[::1]/x#frag", HttpProbe("http", "::1", 80, "/x", "[::1]")),
        ("http://h?q=a b", HttpProbe("http", "h", 80, "/?q=a%20b", "h")),
        ("http://bücher.de/ä", HttpProbe("http", "xn--bcher-kva.de", 80, "/%C3%A4", "xn--bcher-kva.de")),
        ("http://h/\r\nX: y", HttpProbe("http", "h", 80, "/%0D%0AX:%20y", "h")),
    ],
)
def test_http_targets(url: str, expected: HttpProbe) -> None:
    assert ReadySpec("http", url).probe == expected


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://host/", ""),
        ("HTTP://host/", ""),
        ("http:///path", "the host is empty"),
        ("http://:80/", "the host is empty"),
        ("http://user:pw@host/", "a probe sends no user or password"),
        ("http://u@host/", "a probe sends no user or password"),
        ("http://host:99999/", "the port must be a number from 1 to 65535 (got '99999')"),
        ("http://host:0/", "the port must be"),
        ("http://[::1/", "an IPv6 address needs both brackets"),
        ("https://.é/", "is not a valid international name"),
        ("http://a b/", "holds a character a host name cannot have"),
        ("http://" + "a" * 64, "each dot-separated part of the host must be 1 to 63 characters"),
        ("http://h\x7f/", "holds a character a host name cannot have"),
    ],
)
def test_http_targets_rejected(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        ReadySpec("http", url)
    [error] = info.value.errors
    assert error.startswith(
        'ready.http: must be an http:// or https:// URL like "http://127.0.0.1:8080/health"'
    )
    assert why in error


def test_other_kinds() -> None:
    assert ReadySpec("exec", ["redis-cli", "ping"]).probe == ExecProbe(("redis-cli", "ping"))
    assert ReadySpec("exec", "pg_isready -q").probe == ExecProbe(("pg_isready", "-q"))
    assert ReadySpec("file", "/run/x").probe == FileProbe("/run/x")
    probe = ReadySpec("log", r"listening on \d+").probe
    assert isinstance(probe, LogProbe) and probe.pattern == re.compile(r"listening on \d+")


@pytest.mark.parametrize(
    ("kind", "target", "error"),
    [
        ("log", "(", "ready.log: is not a valid regular expression"),
        ("exec", (), "ready.exec: must not be empty"),
        ("exec", 5, "ready.exec: must be an argv array"),
        ("tcp", ("a", "b"), "ready.tcp: must be a string"),
        ("file", "", "ready.file: must not be empty"),
        ("ping", "x", "ready: the probe kind must be exec, tcp, http, file, log, notify or fd"),
    ],
)
def test_a_directly_built_ready_spec_validates(kind: str, target: object, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        ReadySpec(kind, target)
    assert info.value.errors[0].startswith(error)


def test_timing_validates_with_the_target() -> None:
    with pytest.raises(ConfigError) as info:
        ProcessSpec(name="a", command="x", ready=ReadySpec(kind="tcp", target="garbage", interval=-5))
    assert [e.split(" (got")[0] for e in info.value.errors] == [
        'ready.tcp: must be "host:port" like "127.0.0.1:8080"',
        "ready.interval: must not be negative",
    ]
    assert ReadySpec("tcp", "h:1", interval="200ms").interval == 0.2


def test_file_and_keywords_agree() -> None:
    table: dict[str, Any] = {"ready": {"http": "http://u:p@h/", "timeout": "2s"}, "command": "x"}
    with pytest.raises(ConfigError) as from_file:
        config_from_mapping({"process": {"web": table}}, source="t.toml")
    with pytest.raises(ConfigError) as from_kwargs:
        ProcessSpec("web", **table)
    assert from_file.value.errors == [f"t.toml: {from_kwargs.value.errors[0]}"]
    assert from_file.value.errors[0].startswith('t.toml: process "web": ready.http: must be an http://')


# ---------------------------------------- the property: a validated probe never crashes

host_chars = st.sampled_from(
    [*"aZ09-._:[]@%/?# é。٨ü\t\x7f\ud800", "::1", "127.0.0.1", "xn--", "a" * 64, "..", "%eth0"]
)
port_texts = st.one_of(
    st.integers(-1, 70_000).map(str), st.sampled_from(["", "٨٠", "+80", "0x50", " 80", "80 "])
)
probe_targets = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
        st.sampled_from(["http://", "https://", "", "ftp://", "http:/"]),
        st.lists(host_chars, max_size=6).map("".join),
        st.one_of(st.just(""), port_texts.map(lambda p: ":" + p)),
        st.text(max_size=8),
    ),
)


class _ClosedPortResolver(trio.abc.HostnameResolver):
    """Every name resolves to a closed port on localhost: no DNS, no network."""

    async def getaddrinfo(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Any:
        assert isinstance(host, bytes) and host.isascii(), host  # the config encoded it
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", _CLOSED_PORT))]

    async def getnameinfo(self, sockaddr: Any, flags: int) -> Any:
        raise NotImplementedError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_CLOSED_PORT = _closed_port()


async def _missing_program(argv: tuple[str, ...], attempt_timeout: float) -> bool:
    raise FileNotFoundError(2, "No such file or directory", argv[0])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["tcp", "http", "file", "log", "exec"]), probe_targets, st.text(max_size=20))
def test_a_probe_that_validates_runs_without_error(kind: str, target: str, line: str) -> None:
    value: Any = target.split(" ") if kind == "exec" else target
    try:
        spec = ReadySpec(kind, value, interval=1, attempt_timeout=0.05, timeout=0.05)
    except ConfigError as exc:
        assert exc.errors[0].startswith(f"ready.{kind}: ")
        return
    watch = LogWatch(spec.probe.pattern) if isinstance(spec.probe, LogProbe) else None
    if watch is not None:
        watch.feed(line)
        watch.reset()

    async def one_attempt() -> bool:
        trio.socket.set_custom_hostname_resolver(_ClosedPortResolver())
        return await wait_ready(spec, run_exec=_missing_program, log_watch=watch)

    # Only "not ready": nothing listens, no file has this name, the program is missing.
    assert trio.run(one_attempt) is False or kind == "file"
