"""Tests for trinit.runtime.readiness: the probes and their timing.

Target parsing is the config's job (trinit.config.probes): see tests/test_probes.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from trinit.config.probes import HttpProbe, ReadySpec
from trinit.runtime import readiness as _readiness
from trinit.runtime.log_watch import LogWatch
from trinit.runtime.readiness import describe, http_request, wait_ready

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
