"""The supervisor's start logic (SPEC §2, §4 start, §5 "nothing new starts"), and the fake OS
layer itself (:mod:`trinit.testing`). Exit codes are in ``test_exit_codes.py``.

Logic tests run on pytest-trio's ``autojump_clock`` against :class:`trinit.testing.FakeOS`:
exits and probes happen on trio's clock, so the times asserted are exact.
"""

from __future__ import annotations

import errno
import inspect
import os
import signal
from pathlib import Path

import pytest
import trio
from fakeutil import sent, settle, stop_at
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.system.real import RealOS
from trinit.testing import Behaviour, Exit, FakeLog, FakeOS, LogEvent, make_supervisor, run_supervisor

TERM, KILL, INT, SEGV = signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGSEGV


# ================================================================================ the fake itself


def test_fake_overrides_every_method_of_the_real_os_layer() -> None:
    public = {n for n in vars(RealOS) if not n.startswith("_")}
    missing = sorted(n for n in public if n not in vars(FakeOS))
    assert not missing, f"FakeOS would fall through to the real OS for: {missing}"
    for name in public:
        real, fake = getattr(RealOS, name), getattr(FakeOS, name)
        if callable(real) and not isinstance(real, property):
            real_params = list(inspect.signature(real).parameters)
            assert list(inspect.signature(fake).parameters) == real_params, name


async def test_fake_spawn_records_and_scripts_each_attempt(autojump_clock: MockClock) -> None:
    fake = FakeOS({"app": [Behaviour.exits(1, after=0.5), Behaviour.exits(0, after=2)]})
    reaper = fake.make_watcher()
    pid = fake.spawn(["app", "-v"], env={"A": "1"}, cwd="/srv", stdin=5, stdout=6, stderr=7)
    record = fake.spawns[0]
    assert (record.name, record.attempt, record.argv, dict(record.env)) == (
        "app",
        1,
        ("app", "-v"),
        {"A": "1"},
    )
    assert (record.cwd, record.stdin, record.stdout, record.stderr, record.pid) == ("/srv", 5, 6, 7, pid)
    waiter = reaper.watch(pid)
    status = await waiter.wait()
    assert (trio.current_time(), status.code) == (0.5, 1)
    second = fake.spawn(["/usr/bin/app"], env={})
    assert fake.spawns[1].attempt == 2
    assert (await reaper.watch(second).wait()).code == 0
    assert trio.current_time() == 2.5
    # The last script repeats.
    third = fake.spawn(["app"], env={})
    assert fake.processes[third].behaviour == Behaviour.exits(0, after=2)


async def test_fake_keys_by_process_name_with_a_config(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("web", ["python3", "-m", "http.server"])])
    fake = FakeOS({"web": Behaviour.exits(4)}, config=config)
    reaper = fake.make_watcher()
    pid = fake.spawn(["python3", "-m", "http.server"], env={})
    assert fake.spawns_of("web")[0].pid == pid
    assert (await reaper.watch(pid).wait()).code == 4
    # Other commands of the same program are not "web".
    other = fake.spawn(["python3", "-c", "pass"], env={})
    assert fake.processes[other].name == "python3"


async def test_fake_spawn_errors(autojump_clock: MockClock) -> None:
    fake = FakeOS({"nope": Behaviour.not_found(), "locked": Behaviour.not_executable()})
    with pytest.raises(OSError) as info:
        fake.spawn(["nope"], env={})
    assert info.value.errno == errno.ENOENT
    with pytest.raises(OSError) as info:
        fake.spawn(["locked"], env={})
    assert info.value.errno == errno.EACCES
    assert [(s.pid, s.error) for s in fake.spawns] == [(None, errno.ENOENT), (None, errno.EACCES)]


async def test_fake_signals_statuses_and_wait_any(autojump_clock: MockClock) -> None:
    fake = FakeOS(
        {
            "soft": Behaviour.forever(on_signal={TERM: Exit(code=3, delay=1)}),
            "hard": Behaviour.stubborn(),
            "plain": Behaviour.forever(),
        }
    )
    with pytest.raises(ChildProcessError):
        fake.wait_any()
    soft, hard, plain = (fake.spawn([n], env={}) for n in ("soft", "hard", "plain"))
    assert fake.wait_any() is None
    fake.kill(soft, TERM)
    fake.kill(hard, TERM)
    fake.killpg(plain, TERM)
    fake.kill(plain, signal.SIGCHLD)  # ignored by default
    await trio.sleep(0.5)
    assert fake.wait_any() == (plain, TERM)  # raw status: the signal number
    assert fake.processes[hard].alive
    fake.kill(hard, KILL)
    await settle()
    assert fake.wait_any() == (hard, KILL)
    await trio.sleep(1)
    assert fake.wait_any() == (soft, 3 << 8)
    assert os.WEXITSTATUS(3 << 8) == 3
    with pytest.raises(ChildProcessError):
        fake.wait_any()
    with pytest.raises(ProcessLookupError):
        fake.kill(soft, TERM)  # reaped: its pid is gone
    assert [(s.time, s.pid, s.signal, s.group) for s in fake.signals] == [
        (0, soft, TERM, False),
        (0, hard, TERM, False),
        (0, plain, TERM, True),
        (0, plain, signal.SIGCHLD, False),
        (0.5, hard, KILL, False),
    ]


async def test_fake_zombie_still_takes_signals(autojump_clock: MockClock) -> None:
    fake = FakeOS({"x": Behaviour.exits(0)})
    pid = fake.spawn(["x"], env={})
    await settle()
    assert not fake.processes[pid].alive
    fake.kill(pid, TERM)  # not reaped yet: no error, no effect
    assert fake.wait_any() == (pid, 0)


async def test_fake_log_captures_events_and_runs_hooks(autojump_clock: MockClock) -> None:
    log = FakeLog()
    seen: list[LogEvent] = []
    log.on("ready", seen.append, process="a")
    await trio.sleep(2)
    log.info("ready", "is ready", process="a", pid=12, extra=1)
    log.debug("orphan_reaped", "reaped", pid=5)
    log.info("ready", "is ready", process="b")
    assert [(e.time, e.event, e.process) for e in log.events] == [
        (2, "ready", "a"),
        (2, "orphan_reaped", None),
        (2, "ready", "b"),
    ]
    assert seen == [log.events[0]]
    assert log.first("ready", "a").fields == {"extra": 1}
    with pytest.raises(AssertionError, match="no 'stopping' event"):
        log.first("stopping")


async def test_spawn_gets_env_and_stdio_from_the_supervisor(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app", "x"], main=True, env={"MODE": "prod"}),
            ProcessSpec("side", ["side"], output="null", cwd="/tmp", inherit_env=False),
        ]
    )
    fake = FakeOS({"app": Behaviour.exits(0, after=1)})
    await run_supervisor(config, fake, environ={"PATH": "/bin", "HOME": "/root"})
    (app,) = fake.spawns_of("app")
    assert app.argv == ("app", "x")
    assert dict(app.env) == {"PATH": "/bin", "HOME": "/root", "MODE": "prod"}
    assert (app.stdin, app.stdout, app.stderr, app.cwd) == (None, None, None, None)
    (side,) = fake.spawns_of("side")
    assert dict(side.env) == {}
    assert side.cwd == "/tmp"
    assert side.stdin == side.stdout == side.stderr == fake.devnull_fd


# ================================================================================ start order


async def test_independent_processes_start_together(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("a", ["a"]), ProcessSpec("b", ["b"]), ProcessSpec("c", ["c"])])
    fake = FakeOS()
    await run_supervisor(config, fake, at=stop_at(1))
    assert [fake.start_times(n) for n in "abc"] == [[0], [0], [0]]


async def test_after_ready_waits_for_the_probe(autojump_clock: MockClock, tmp_path: Path) -> None:
    flag = tmp_path / "a-ready"
    config = Config(
        [
            ProcessSpec("a", ["a"], ready={"file": str(flag), "interval": 0.5, "timeout": 60}),
            ProcessSpec("b", ["b"], after={"a": "ready"}),
            ProcessSpec("c", ["c"], after=["a"]),  # the array form: "ready" for a service
        ]
    )
    fake = FakeOS()
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=[(3.25, lambda sup: flag.touch()), *stop_at(10)])
    assert log.first("ready", "a").time == 3.5
    assert fake.start_times("b") == [3.5]
    assert fake.start_times("c") == [3.5]


async def test_after_started_does_not_wait_for_readiness(autojump_clock: MockClock, tmp_path: Path) -> None:
    config = Config(
        [
            ProcessSpec("a", ["a"], ready={"file": str(tmp_path / "never"), "timeout": 60}),
            ProcessSpec("b", ["b"], after={"a": "started"}),
            ProcessSpec("c", ["c"], after={"a": "ready"}),
        ]
    )
    fake = FakeOS()
    await run_supervisor(config, fake, at=stop_at(5))
    assert fake.start_times("b") == [0]
    assert fake.start_times("c") == []


async def test_after_completed_waits_for_the_oneshot(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("migrate", ["migrate"], oneshot=True),
            ProcessSpec("app", ["app"], main=True, after={"migrate": "completed"}),
            ProcessSpec("worker", ["worker"], after=["migrate"]),  # array form: "completed" for a oneshot
        ]
    )
    fake = FakeOS({"migrate": Behaviour.exits(0, after=1.5), "app": Behaviour.exits(0, after=1)})
    assert await run_supervisor(config, fake) == 0
    assert fake.start_times("app") == [1.5]
    assert fake.start_times("worker") == [1.5]


async def test_dependency_failed_under_ignore_skips_its_dependents(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("seed", ["seed"], oneshot=True, on_failure="ignore"),
            ProcessSpec("needed", ["needed"], after=["seed"], stop_timeout=1),
        ]
    )
    fake = FakeOS({"seed": Behaviour.exits(2, after=1)})
    log = FakeLog()
    sup = make_supervisor(config, fake, log=log)
    code = await sup.run()
    assert fake.start_times("needed") == []
    assert log.first("skipped", "needed").time == 1
    assert sup.status()["needed"].state == "skipped"
    # "needed" counts as failed under its own on_failure = "shutdown": exit 1, begun at 1.
    assert log.first("shutdown_begun").time == 1
    assert sent(fake, "app") == [(1, TERM)]
    assert code == 1


async def test_dependency_skipped_under_ignore_only_carries_on(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("seed", ["seed"], oneshot=True, on_failure="ignore"),
            ProcessSpec("optional", ["optional"], after=["seed"], on_failure="ignore"),
        ]
    )
    fake = FakeOS({"seed": Behaviour.exits(2, after=1), "app": Behaviour.exits(0, after=5)})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 0
    assert log.first("skipped", "optional").time == 1
    assert log.first("shutdown_begun").time == 5


async def test_dependency_that_ends_before_being_ready_skips_dependents(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    config = Config(
        [
            ProcessSpec(
                "a", ["a"], ready={"file": str(tmp_path / "never"), "timeout": 60}, on_failure="ignore"
            ),
            ProcessSpec("b", ["b"], after={"a": "ready"}, on_failure="ignore"),
            ProcessSpec("app", ["app"], main=True),
        ]
    )
    fake = FakeOS({"a": Behaviour.exits(0, after=2)})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(5))
    assert fake.start_times("b") == []
    assert log.first("skipped", "b").time == 2


# ================================================================================ no start after shutdown


async def test_nothing_waiting_on_a_dependency_starts_once_shutdown_began(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    config = Config(
        [
            ProcessSpec("a", ["a"], ready={"file": str(tmp_path / "never"), "timeout": 60}),
            ProcessSpec("b", ["b"], after={"a": "ready"}),
        ]
    )
    fake = FakeOS()
    await run_supervisor(config, fake, at=stop_at(1))
    assert fake.start_times("b") == []
    assert sent(fake, "a") == [(1, TERM)]


async def test_pending_oneshot_retry_is_cancelled_by_the_shutdown(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("job", ["job"], oneshot=True, retries=3, restart_delay=2)])
    fake = FakeOS({"job": Behaviour.exits(1, after=0.5)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log, at=stop_at(1))
    assert fake.start_times("job") == [0]
    assert log.first("shutdown_done").time == 1
    assert code == 0


async def test_dependency_ready_at_the_moment_shutdown_begins_does_not_start_dependents(
    autojump_clock: MockClock,
) -> None:
    """The shutdown is requested in the very step in which a becomes ready (a log hook).

    Shutdown has begun then, so b must not start, whichever task trio schedules first;
    repeated so that both orders of the scheduler are tried.
    """
    config = Config(
        [
            ProcessSpec("a", ["a"], ready={"exec": ["probe"], "interval": 1, "timeout": 10}),
            ProcessSpec("b", ["b"], after={"a": "ready"}),
        ]
    )
    started_b = 0
    for _ in range(24):
        fake = FakeOS({"probe": [Behaviour.exits(1), Behaviour.exits(0)]})
        log = FakeLog()
        sup = make_supervisor(config, fake, log=log)
        log.on("ready", lambda _e, sup=sup: sup.request_shutdown("test"), process="a")  # type: ignore[misc]
        await sup.run()
        started_b += len(fake.start_times("b"))
    assert started_b == 0, f"b was started after the shutdown had been requested in {started_b} of 24 runs"
