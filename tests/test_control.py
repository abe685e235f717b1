"""The control socket's server in-process (SPEC §8): the protocol, its semantics, hostile clients.

trinit runs as a library supervisor on the fake OS (trio's mock clock does not mix with
real sockets, so these use the real clock with short runs); clients are raw sockets
speaking docs/control.md, so the server is tested without trinit's own client.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import stat
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from trinit import Config, ProcessSpec
from trinit.runtime.conversation import MAX_LINE
from trinit.runtime.supervisor import Runtime
from trinit.testing import Behaviour, FakeOS, make_supervisor


@asynccontextmanager
async def running(
    tmp_path: Path, processes: list[ProcessSpec], behaviours: dict[str, Any]
) -> AsyncIterator[Runtime]:
    path = str(tmp_path / "ctl.sock")
    config = Config(processes=processes, control_socket=path, shutdown_timeout=3)
    fake = FakeOS(behaviours, config=config)
    sup = make_supervisor(config, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        yield sup
        sup.request_shutdown("test")
        await sup.wait()


class Client:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def line(self) -> dict[str, Any] | None:
        while b"\n" not in self.buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)  # type: ignore[no-any-return]

    async def ask(self, **request: Any) -> dict[str, Any]:
        await self.stream.send_all(json.dumps(request).encode() + b"\n")
        reply = await self.line()
        assert reply is not None
        return reply


@asynccontextmanager
async def connect(sup: Runtime) -> AsyncIterator[Client]:
    assert sup.config.control_socket is not None
    stream = await trio.open_unix_socket(sup.config.control_socket)
    async with stream:
        yield Client(stream)


def two() -> list[ProcessSpec]:
    return [ProcessSpec(name="db", command="db"), ProcessSpec(name="app", command="app", after=["db"])]


def forever() -> dict[str, Any]:
    return {"db": Behaviour.forever(), "app": Behaviour.forever()}


async def test_status_has_every_field_of_section_8(tmp_path: Path) -> None:
    async with running(tmp_path, two(), forever()) as sup, connect(sup) as c:
        await sup.wait_ready("app")
        reply = await c.ask(cmd="status")
        assert reply["ok"] is True
        db, app = reply["processes"]
        assert set(db) == {
            "name",
            "kind",
            "state",
            "pid",
            "restarts",
            "since",
            "last_exit",
            "health",
            "status_text",
            "next_run",
        }
        assert (db["name"], db["kind"], db["state"], db["restarts"], db["last_exit"]) == (
            "db",
            "service",
            "ready",
            0,
            None,
        )
        assert isinstance(app["pid"], int) and app["since"].endswith("Z")
        assert (await c.ask(cmd="status", names=["app"]))["processes"][0]["name"] == "app"


async def test_the_socket_is_0600_and_removed_at_exit(tmp_path: Path) -> None:
    async with running(tmp_path, two(), forever()) as sup:
        path = sup.config.control_socket
        assert path is not None
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not os.path.exists(path)


async def test_stop_holds_and_start_brings_back(tmp_path: Path) -> None:
    async with running(tmp_path, two(), forever()) as sup, connect(sup) as c:
        await sup.wait_ready("app")
        assert await c.ask(cmd="stop", names=["db", "app"], wait=True) == {"ok": True}
        states = {p["name"]: p["state"] for p in (await c.ask(cmd="status"))["processes"]}
        assert states == {"db": "stopped", "app": "stopped"}
        assert not sup.all_up
        assert (await c.ask(cmd="probe", what="ready"))["ready"] is False
        assert await c.ask(cmd="start", names=["app", "db"], wait=True) == {"ok": True}
        assert sup.all_up
        assert (await c.ask(cmd="probe", what="ready"))["ready"] is True
        assert sup.status()["db"].restarts == 0


async def test_refusals_name_the_reason(tmp_path: Path) -> None:
    async with running(tmp_path, two(), forever()) as sup, connect(sup) as c:
        await sup.wait_ready("app")
        unknown = await c.ask(cmd="stop", names=["ap"])
        assert unknown["code"] == "unknown_process" and 'did you mean "app"' in unknown["error"]
        assert (await c.ask(cmd="start", names=["app"]))["code"] == "wrong_state"
        assert (await c.ask(cmd="frobnicate"))["code"] == "unknown_command"
        assert (await c.ask(cmd="signal", name="app", signal="NOPE"))["code"] == "bad_request"
        assert (await c.ask(cmd="wait", names=["app"], timeout="x"))["code"] == "bad_request"
        assert (await c.ask(cmd="status", v=2))["code"] == "bad_request"
        assert (await c.ask(cmd="reload"))["code"] == "not_supported"
        timed_out = await c.ask(cmd="wait", names=["app"], **{"for": "exited", "timeout": 0.05})
        assert timed_out["code"] == "timeout"
        assert await c.ask(cmd="shutdown") == {"ok": True}
        refused = await c.ask(cmd="restart", names=["db"])
        assert refused["code"] == "shutting_down" and "shutting down" in refused["error"]


async def test_events_follow_in_order(tmp_path: Path) -> None:
    async with running(tmp_path, two(), forever()) as sup, connect(sup) as c:
        await sup.wait_ready("app")
        await c.stream.send_all(b'{"cmd": "events"}\n')
        assert await c.line() == {"ok": True}
        async with connect(sup) as other:
            assert (await other.ask(cmd="restart", names=["app"], wait=True))["ok"]
        seen = []
        while ("app", "ready") not in seen:
            event = await c.line()
            assert event is not None
            if event["event"] == "state":
                seen.append((event["process"], event["state"]))
        assert seen == [
            ("app", "stopping"),
            ("app", "exited"),
            ("app", "starting"),
            ("app", "running"),
            ("app", "ready"),
        ]


async def test_events_end_when_the_run_ends(tmp_path: Path) -> None:
    path = str(tmp_path / "ctl.sock")
    config = Config(processes=[ProcessSpec(name="app", command="app", main=True)], control_socket=path)
    sup = make_supervisor(config, FakeOS({"app": Behaviour.exits(0, after=0.3)}, config=config))
    events = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        async with connect(sup) as c:
            await c.stream.send_all(b'{"cmd": "events"}\n')
            assert await c.line() == {"ok": True}
            while (event := await c.line()) is not None:
                events.append(event["event"])
    assert events[-1] == "shutdown_done"
    assert "exited" in events


async def test_hostile_clients_get_an_error_or_are_dropped(tmp_path: Path) -> None:
    async with running(tmp_path, two(), forever()) as sup:
        async with connect(sup) as c:
            await c.stream.send_all(b"not json\n")
            assert (await c.line() or {}).get("code") == "bad_request"
            assert await c.line() is None  # and closed
        async with connect(sup) as c:
            with pytest.raises(trio.BrokenResourceError):
                await c.stream.send_all(b"x" * (MAX_LINE * 4))
                assert (await c.line() or {}).get("code") == "bad_request"
                await c.stream.send_all(b"x" * (MAX_LINE * 4))
        # A thousand clients at once, all silent, while another is served.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
        path = sup.config.control_socket
        assert path is not None
        silent = [await trio.open_unix_socket(path) for _ in range(1000)]
        try:
            with trio.fail_after(5):
                async with connect(sup) as c:
                    assert (await c.ask(cmd="status"))["ok"]
        finally:
            for s in silent:
                await s.aclose()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_live_socket_or_a_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    path.write_text("mine")
    async with running(tmp_path, two(), forever()) as sup:
        assert any(e.event == "control_socket" and e.level == "warning" for e in sup.log.events)  # type: ignore[attr-defined]
    assert path.read_text() == "mine"


async def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # nobody listens: connecting is refused
    async with running(tmp_path, two(), forever()) as sup, connect(sup) as c:
        assert (await c.ask(cmd="version"))["protocol"] == 1


async def test_a_client_that_never_sends_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trinit.runtime.conversation.IDLE_TIMEOUT", 0.2)
    async with running(tmp_path, two(), forever()) as sup, connect(sup) as c:
        with trio.fail_after(5):
            assert await c.line() is None  # closed by the server


_AS_NOBODY = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"cmd": "shutdown"}\\n')
print(s.makefile().readline(), end="")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="connecting as another uid needs root")
async def test_another_uid_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    """The file mode keeps others out; with it opened up, the peer-credential check still does."""
    folder = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's tmp_path is under a 0700 folder
    os.chmod(folder, 0o755)
    async with running(folder, two(), forever()) as sup:
        path = sup.config.control_socket
        assert path is not None
        os.chmod(path, 0o666)
        proc = await trio.run_process(
            ["/usr/bin/python3", "-I", "-c", _AS_NOBODY, path], user=65534, capture_stdout=True, check=False
        )
        reply = json.loads(proc.stdout)
        assert reply["code"] == "denied" and "uid 65534" in reply["error"]
        assert not sup.shutting_down


async def test_a_scheduled_job_shows_its_next_run_and_start_runs_it_now(tmp_path: Path) -> None:
    processes = [
        ProcessSpec(name="app", command="app"),
        ProcessSpec(name="backup", command="backup", oneshot=True, every="1h"),
    ]
    behaviours = {"app": Behaviour.forever(), "backup": Behaviour.exits(0)}
    async with running(tmp_path, processes, behaviours) as sup, connect(sup) as c:
        await sup.wait_ready("app")
        with trio.fail_after(5):
            while (backup := (await c.ask(cmd="status", names=["backup"]))["processes"][0])[
                "next_run"
            ] is None:
                await trio.sleep(0.01)
        assert backup["kind"] == "scheduled" and backup["last_exit"] is None
        assert await c.ask(cmd="start", names=["backup"], wait=True) == {"ok": True}
        backup = (await c.ask(cmd="status", names=["backup"]))["processes"][0]
        assert backup["last_exit"] == {"code": 0} and backup["next_run"] is not None


async def test_a_live_socket_is_never_replaced(tmp_path: Path) -> None:
    async with running(tmp_path, two(), forever()) as first:
        second_config = Config(processes=two(), control_socket=first.config.control_socket)
        second = make_supervisor(second_config, FakeOS(forever(), config=second_config))
        async with trio.open_nursery() as nursery:
            await nursery.start(second.run)
            second.request_shutdown("test")
        warning = [e for e in second.log.events if e.event == "control_socket"]  # type: ignore[attr-defined]
        assert warning and "another process is serving it" in warning[0].message
        async with connect(first) as c:  # the first still answers on it
            assert (await c.ask(cmd="version"))["ok"]


async def test_a_follower_that_falls_behind_gets_overflow_and_its_stream_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trinit.runtime.events.QUEUE_SIZE", 3)
    async with running(tmp_path, two(), forever()) as sup:
        await sup.wait_ready("app")
        with sup.events.follow() as events:
            for i in range(5):
                sup.log.info("test", f"event {i}")
            seen = [e["event"] async for e in events]
        assert seen == ["test", "test", "test", "overflow"]
        assert not sup.events.followed
