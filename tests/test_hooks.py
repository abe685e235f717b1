"""Lifecycle hooks (SPEC §9) on a fake OS: pre_start, pre_stop + stop_delay, post_stop, hook_timeout,
and how they meet stops, restarts, the shutdown and its budget.

Every test runs on pytest-trio's ``autojump_clock`` against :class:`trinit.testing.FakeOS`, so the
times asserted are exact. Hook commands are fake processes keyed by their program name.
"""

from __future__ import annotations

import errno
import signal
from typing import Any

import trio
from fakeutil import settle, stop_at, term_after
from trio.testing import MockClock

from trinit import Config, ProcessSpec, TrinitError
from trinit.runtime.state import State
from trinit.runtime.supervisor import Runtime
from trinit.testing import Behaviour, Exit, FakeLog, FakeOS, make_supervisor, run_supervisor

TERM, KILL = signal.SIGTERM, signal.SIGKILL


def hook_events(log: FakeLog, process: str | None = None) -> list[tuple[float | None, str, str]]:
    """(time, hook, result) of every ``hook`` event."""
    return [(e.time, str(e.fields["hook"]), str(e.fields["result"])) for e in log.find("hook", process)]


def signals(fake: FakeOS, name: str) -> list[tuple[float, int, bool]]:
    """(time, signal, to its group) of the signals aimed at ``name``."""
    return [(s.time, s.signal, s.group) for s in fake.signals_to(name)]


# ---------------------------------------------------------------------------------- pre_start


async def test_pre_start_runs_before_every_start_with_the_process_env_cwd_and_user(
    autojump_clock: MockClock, tmp_path: Any
) -> None:
    config = Config(
        [
            ProcessSpec(
                "svc",
                ["svc"],
                restart="always",
                restart_delay=1,
                env={"MODE": "prod"},
                cwd=str(tmp_path),
                pre_start=["prep", "--fast"],
            )
        ]
    )
    fake = FakeOS({"svc": Behaviour.exits(1, after=2), "prep": Behaviour.exits(0, after=0.5)})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(6))
    assert fake.start_times("prep") == [0, 3.5]
    assert fake.start_times("svc") == [0.5, 4.0]  # each start waits for its hook
    prep = fake.spawns_of("prep")[0]
    assert prep.argv == ("prep", "--fast") and prep.cwd == str(tmp_path)
    assert prep.env["MODE"] == "prod" and prep.env["PATH"] == "/usr/bin:/bin"
    assert prep.env["TRINIT_PROCESS"] == "svc" and prep.env["TRINIT_HOOK"] == "pre_start"
    assert prep.stdin == fake.devnull_fd
    assert hook_events(log, "svc") == [(0.5, "pre_start", "ok"), (4.0, "pre_start", "ok")]
    assert log.find("hook")[0].message == "pre_start hook succeeded after 0.50 s: prep --fast"


async def test_several_pre_start_commands_run_in_order_and_the_first_failure_ends_them(
    autojump_clock: MockClock,
) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, pre_start=[["one"], ["two"], ["three"]])])
    fake = FakeOS({"one": Behaviour.exits(0, after=1), "two": Behaviour.exits(3, after=1)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log)
    assert fake.start_times("one") == [0] and fake.start_times("two") == [1]
    assert not fake.spawns_of("three") and not fake.spawns_of("app")
    # A failed pre_start is a failed start of main: code 1 (SPEC §2), whatever the hook's code was.
    assert code == 1
    assert hook_events(log) == [(1, "pre_start", "ok"), (2, "pre_start", "failed")]
    (failed,) = log.find("failed", "app")
    assert failed.message == "could not start: its pre_start hook exited with code 3 (two)"
    assert failed.fields["code"] == 1


async def test_a_failed_pre_start_goes_through_the_restart_policy_then_on_failure(
    autojump_clock: MockClock,
) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec(
                "svc", ["svc"], restart="on-failure", restart_delay=1, max_restarts=2, pre_start="prep"
            ),
        ]
    )
    fake = FakeOS({"prep": Behaviour.exits(2), "app": Behaviour.forever()})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log)
    assert fake.start_times("prep") == [0, 1, 3]  # the first try, then two restarts with backoff
    assert not fake.spawns_of("svc")
    assert [e.fields["delay"] for e in log.find("restarting", "svc")] == [1, 2]
    assert code == 1  # then on_failure = "shutdown" with the code of a failed start


async def test_a_pre_start_that_cannot_be_started_is_a_failed_start_with_code_1(
    autojump_clock: MockClock,
) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, pre_start="missing-tool")])
    fake = FakeOS({"missing-tool": Behaviour.not_found()})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 1  # not 127: that is for main's own command
    assert hook_events(log) == [(0, "pre_start", "error")]
    assert "could not start 'missing-tool': no such command or file" in log.find("hook")[0].message


async def test_a_pre_start_past_hook_timeout_is_killed_and_the_start_failed(
    autojump_clock: MockClock,
) -> None:
    config = Config(
        [
            ProcessSpec(
                "job", ["job"], oneshot=True, retries=1, pre_start="slow", hook_timeout=2, on_failure="ignore"
            )
        ]
    )
    fake = FakeOS({"slow": Behaviour.stubborn()})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 0
    # Before each attempt (retries included); SIGKILL to the hook's process group at hook_timeout.
    assert fake.start_times("slow") == [0, 2.5]
    assert signals(fake, "slow") == [(2, KILL, True), (4.5, KILL, True)]
    assert [r for _, _, r in hook_events(log)] == ["timeout", "timeout"]
    assert "ran longer than hook_timeout (2 s) and was killed" in log.find("hook")[0].message
    assert not fake.spawns_of("job")


async def test_the_shutdown_during_pre_start_stops_the_hook_gracefully_and_nothing_failed(
    autojump_clock: MockClock,
) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("svc", ["svc"], pre_start="prep", stop_timeout=3),
        ],
        shutdown_timeout=10,
    )
    fake = FakeOS({"prep": term_after(1.0), "app": term_after(0)})
    log = FakeLog()
    code = await run_supervisor(config, fake, log=log, at=stop_at(5))
    assert code == 0  # a stop asked for is never a failure
    assert signals(fake, "prep") == [(5, TERM, True)]  # SIGTERM, the process's stop_timeout as grace
    assert not fake.spawns_of("svc") and not log.find("failed")
    assert hook_events(log, "svc") == [(6, "pre_start", "stopped")]
    assert log.find("shutdown_done")[0].time == 6


async def test_a_stop_during_pre_start_keeps_it_stopped(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True), ProcessSpec("svc", ["svc"], pre_start="prep")])
    fake = FakeOS({"prep": Behaviour.forever(), "app": term_after(0)})
    log = FakeLog()
    async with trio.open_nursery() as nursery:
        rt = make_supervisor(config, fake, log=log)
        nursery.start_soon(rt.run)
        await trio.sleep(1)
        svc = rt.runners["svc"]
        assert svc.state.value == "starting"
        await rt.stop("svc")  # returns once the hook has ended
        assert trio.current_time() == 1
        assert svc.state is State.STOPPED
        assert signals(fake, "prep") == [(1, TERM, True)]
        rt.request_shutdown("test")
    assert not fake.spawns_of("svc") and rt.exit_code == 0


# ------------------------------------------------------------------------ pre_stop, stop_delay


async def test_pre_stop_then_stop_delay_come_before_the_stop_signal(autojump_clock: MockClock) -> None:
    config = Config(
        [ProcessSpec("app", ["app"], main=True, pre_stop=["drain", "--now"], stop_delay=2)],
        shutdown_timeout=20,
    )
    fake = FakeOS({"app": term_after(0.5), "drain": Behaviour.exits(0, after=1)})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(5))
    assert fake.start_times("drain") == [5]
    drain = fake.spawns_of("drain")[0]
    assert drain.env["TRINIT_HOOK"] == "pre_stop" and drain.env["TRINIT_PID"] == str(
        fake.spawns_of("app")[0].pid
    )
    assert signals(fake, "app") == [(8, TERM, False)]  # 5 + 1 (pre_stop) + 2 (stop_delay)
    assert [e.time for e in log.find("stop_delay", "app")] == [6]
    assert log.find("stopping", "app")[0].time == 8
    assert log.find("shutdown_done")[0].time == 8.5


async def test_pre_stop_runs_for_a_user_stop_and_a_restart(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("svc", ["svc"], pre_stop="drain", stop_delay=1),
        ]
    )
    fake = FakeOS({"svc": term_after(0), "drain": Behaviour.exits(0, after=1), "app": Behaviour.forever()})
    log = FakeLog()
    async with trio.open_nursery() as nursery:
        rt = make_supervisor(config, fake, log=log)
        nursery.start_soon(rt.run)
        await trio.sleep(1)
        await rt.restart("svc")
        await trio.sleep(1)
        await rt.stop("svc")
        rt.request_shutdown("test")
    assert fake.start_times("drain") == [1, 4]
    assert [t for t, _, _ in signals(fake, "svc")] == [3, 6]
    assert fake.start_times("svc") == [0, 3]
    assert rt.runners["svc"].state is State.STOPPED


async def test_two_stops_at_once_run_pre_stop_once(autojump_clock: MockClock) -> None:
    config = Config(
        [ProcessSpec("app", ["app"], main=True), ProcessSpec("svc", ["svc"], pre_stop="drain")],
        shutdown_timeout=20,
    )
    fake = FakeOS({"svc": term_after(0), "drain": Behaviour.exits(0, after=4), "app": term_after(0)})
    log = FakeLog()

    async def stop_then_shut_down(rt: Runtime) -> None:
        rt.in_background(rt.stop, "svc")  # a ctl stop in progress ...
        await trio.sleep(1)
        rt.request_shutdown("test")  # ... when the shutdown comes: it waits for that pre_stop

    async with trio.open_nursery() as nursery:
        rt = make_supervisor(config, fake, log=log)
        nursery.start_soon(rt.run)
        await trio.sleep(1)
        await stop_then_shut_down(rt)
    assert fake.start_times("drain") == [1]
    assert signals(fake, "svc")[0][0] == 5


async def test_stop_delay_ends_when_the_process_exits_meanwhile(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, stop_delay=10)], shutdown_timeout=20)
    fake = FakeOS({"app": Behaviour.exits(0, after=3)})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=[(1, lambda rt: rt.request_shutdown("test"))])
    assert fake.signals_to("app") == []  # it ended during the delay: no signal needed
    assert log.find("shutdown_done")[0].time == 3


async def test_no_pre_stop_once_the_process_has_exited(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, pre_stop="drain")])
    fake = FakeOS({"app": Behaviour.exits(0, after=1)})
    await run_supervisor(config, fake)
    assert not fake.spawns_of("drain")


async def test_a_failed_pre_stop_is_logged_and_the_stop_goes_on(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, pre_stop="drain")])
    fake = FakeOS({"app": term_after(0), "drain": Behaviour.exits(7, after=1)})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log, at=stop_at(2)) == 0
    assert hook_events(log) == [(3, "pre_stop", "failed")]
    assert log.find("hook")[0].level == "warning"
    assert signals(fake, "app") == [(3, TERM, False)]


async def test_the_budget_ends_a_hanging_pre_stop_and_the_process_gets_sigkill(
    autojump_clock: MockClock,
) -> None:
    config = Config(
        [ProcessSpec("app", ["app"], main=True, pre_stop="drain", hook_timeout=60, stop_timeout=5)],
        shutdown_timeout=3,
    )
    fake = FakeOS({"app": Behaviour.forever(), "drain": Behaviour.stubborn()})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(1))
    assert signals(fake, "drain") == [(4, KILL, True)]  # at the budget's end, no grace left
    assert signals(fake, "app") == [(4, KILL, False)]
    assert hook_events(log) == [(4, "pre_stop", "stopped")]
    assert log.find("shutdown_timeout")[0].time == 4
    assert not fake.alive()


async def test_a_forced_shutdown_kills_pre_stop_and_skips_the_delay(autojump_clock: MockClock) -> None:
    config = Config(
        [ProcessSpec("app", ["app"], main=True, pre_stop="drain", stop_delay=5)], shutdown_timeout=20
    )
    fake = FakeOS({"app": Behaviour.forever(), "drain": Behaviour.stubborn()})
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=[*stop_at(1), (2, lambda rt: rt.force_stop())])
    assert signals(fake, "drain") == [(2, KILL, True)]
    assert signals(fake, "app") == [(2, KILL, False)]
    assert not log.find("stop_delay")
    assert "the shutdown was forced" in log.find("hook")[0].message


# --------------------------------------------------------------------------------- post_stop


async def test_post_stop_runs_after_every_exit_with_how_it_ended(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("svc", ["svc"], restart="always", restart_delay=1, post_stop="report"),
        ],
        shutdown_timeout=20,
    )
    fake = FakeOS(
        {
            "svc": [
                Behaviour.exits(3, after=1),
                Behaviour.killed(signal.SIGSEGV, after=1),
                Behaviour.forever(),
            ],
            "report": Behaviour.exits(0, after=0.5),
            "app": Behaviour.forever(),
        }
    )
    log = FakeLog()
    await run_supervisor(config, fake, log=log, at=stop_at(10))
    reports = fake.spawns_of("report")
    assert [s.time for s in reports] == [1, 3.5, 10]
    envs = [{k: v for k, v in s.env.items() if k.startswith("TRINIT_")} for s in reports]
    assert envs == [
        {
            "TRINIT_PROCESS": "svc",
            "TRINIT_HOOK": "post_stop",
            "TRINIT_EXIT_CODE": "3",
            "TRINIT_RESTARTS": "0",
        },
        {
            "TRINIT_PROCESS": "svc",
            "TRINIT_HOOK": "post_stop",
            "TRINIT_EXIT_SIGNAL": "SEGV",
            "TRINIT_RESTARTS": "1",
        },
        {
            "TRINIT_PROCESS": "svc",
            "TRINIT_HOOK": "post_stop",
            "TRINIT_EXIT_SIGNAL": "TERM",
            "TRINIT_RESTARTS": "2",
        },
    ]
    # The restart delay (1 s, then 2 s) counts from the end of post_stop.
    assert fake.start_times("svc") == [0, 2.5, 6.0]


async def test_the_process_is_stopping_during_post_stop_and_its_dependencies_wait(
    autojump_clock: MockClock,
) -> None:
    config = Config(
        [
            ProcessSpec("db", ["db"]),
            ProcessSpec("app", ["app"], main=True, after=["db"], post_stop="report"),
        ],
        shutdown_timeout=20,
    )
    fake = FakeOS({"db": term_after(0), "app": term_after(0), "report": Behaviour.exits(1, after=2)})
    log = FakeLog()
    states: list[tuple[float, str]] = []
    async with trio.open_nursery() as nursery:
        rt = make_supervisor(config, fake, log=log)
        nursery.start_soon(rt.run)
        await trio.sleep(1)
        rt.request_shutdown("test")
        await trio.sleep(1)
        states.append((trio.current_time(), rt.runners["app"].state.value))
    assert states == [(2, "stopping")]
    assert signals(fake, "db") == [(3, TERM, False)]  # once app's post_stop has ended
    assert hook_events(log) == [(3, "post_stop", "failed")]  # only logged
    assert rt.exit_code == 0  # main's own status, not the hook's


async def test_a_hanging_post_stop_is_bounded_by_hook_timeout(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, post_stop="report", hook_timeout=4)])
    fake = FakeOS({"app": Behaviour.exits(0, after=1), "report": Behaviour.forever()})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 0
    assert signals(fake, "report") == [(5, KILL, True)]
    assert hook_events(log) == [(5, "post_stop", "timeout")]


async def test_a_restart_asked_for_during_post_stop_is_carried_out(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("svc", ["svc"], restart="always", restart_delay=10, post_stop="report"),
        ]
    )
    fake = FakeOS(
        {"svc": [Behaviour.exits(1, after=1), Behaviour.forever()], "report": Behaviour.exits(0, after=2)}
    )
    async with trio.open_nursery() as nursery:
        rt = make_supervisor(config, fake)
        nursery.start_soon(rt.run)
        await trio.sleep(2)
        assert rt.runners["svc"].state.value == "stopping"
        with trio.fail_after(5):
            await rt.restart("svc")  # once post_stop ended: no waiting out the 10 s backoff
        await settle()
        assert fake.start_times("svc") == [0, 3]
        rt.request_shutdown("test")


async def test_hook_output_follows_the_output_mode(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("a", ["a"], main=True, output="prefix", pre_start="prep-a", ready={"log": "up"}),
            ProcessSpec("b", ["b"], output="null", pre_start="prep-b"),
            ProcessSpec("c", ["c"], pre_start="prep-c"),
        ]
    )
    fake = FakeOS({"prep-a": Behaviour.exits(0), "prep-b": Behaviour.exits(0), "prep-c": Behaviour.exits(0)})
    await run_supervisor(config, fake, at=stop_at(1))
    a, b, c = (fake.spawns_of(f"prep-{n}")[0] for n in "abc")
    assert a.stdout is not None and a.stdout != fake.devnull_fd  # a pipe, read and prefixed
    assert (b.stdout, b.stderr) == (fake.devnull_fd, fake.devnull_fd)
    assert (c.stdout, c.stderr) == (None, None)  # inherited


async def test_the_event_stream_and_json_fields_of_a_hook(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, pre_start=["prep", "x"])])
    fake = FakeOS({"prep": Behaviour.killed(signal.SIGABRT, after=0.25)})
    log = FakeLog()
    await run_supervisor(config, fake, log=log)
    (event,) = log.find("hook")
    assert event.process == "app" and event.pid is None
    fields = dict(event.fields)
    assert fields.pop("hook_pid") == fake.spawns_of("prep")[0].pid
    assert fields == {
        "hook": "pre_start",
        "result": "failed",
        "code": None,
        "signal": "SIGABRT",
        "run_time": 0.25,
        "argv": ["prep", "x"],
    }
    assert event.message == "pre_start hook was killed by SIGABRT after 0.25 s: prep x"


async def test_a_hook_env_file_problem_is_a_hook_error(autojump_clock: MockClock, tmp_path: Any) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text("A=1\n")
    config = Config([ProcessSpec("app", ["app"], main=True, env_file=str(env_file), post_stop="report")])
    fake = FakeOS({"app": Behaviour.exits(0, after=1)})
    log = FakeLog()

    async def remove_it() -> None:
        await trio.sleep(0.5)
        env_file.unlink()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(remove_it)
        await make_supervisor(config, fake, log=log).run()
    assert hook_events(log) == [(1, "post_stop", "error")]
    assert "cannot read the env file" in log.find("hook")[0].message


async def test_spawn_errors_of_hooks_never_leak_fds(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, output="prefix", pre_start="nope")])
    fake = FakeOS({"nope": Behaviour(spawn_error=errno.EACCES)})
    assert await run_supervisor(config, fake) == 1
    assert not fake.open_fds


async def test_a_hook_is_reaped_even_when_its_exit_and_the_stop_cross(autojump_clock: MockClock) -> None:
    """A pre_stop that ends exactly as the budget does: nothing is left behind, nothing hangs."""
    config = Config([ProcessSpec("app", ["app"], main=True, pre_stop="drain")], shutdown_timeout=2)
    fake = FakeOS(
        {"app": Behaviour.forever(on_signal={TERM: Exit(code=0)}), "drain": Behaviour.exits(0, after=2)}
    )
    await run_supervisor(config, fake, at=stop_at(0))
    assert not fake.alive()


async def test_no_post_stop_when_nothing_ran(autojump_clock: MockClock) -> None:
    """A start that failed (its program not found, a failed pre_start) has no exit to report."""
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("gone", ["gone"], post_stop="report", on_failure="ignore"),
            ProcessSpec("prep", ["prep"], pre_start="check", post_stop="report-prep", on_failure="ignore"),
        ]
    )
    fake = FakeOS({"gone": Behaviour.not_found(), "check": Behaviour.exits(1), "app": term_after(0)})
    await run_supervisor(config, fake, at=stop_at(1))
    assert not fake.spawns_of("report") and not fake.spawns_of("report-prep")


async def test_the_ready_file_is_removed_while_pre_stop_drains(autojump_clock: MockClock) -> None:
    config = Config(
        [ProcessSpec("app", ["app"], main=True), ProcessSpec("web", ["web"], pre_stop="drain")],
        ready_file="/run/ready",
    )
    fake = FakeOS({"drain": Behaviour.exits(0, after=2), "web": term_after(0), "app": Behaviour.forever()})
    async with trio.open_nursery() as nursery:
        rt = make_supervisor(config, fake)
        nursery.start_soon(rt.run)
        await trio.sleep(1)
        assert "/run/ready" in fake.ready_files
        nursery.start_soon(rt.stop, "web")
        await trio.sleep(1)
        assert "/run/ready" not in fake.ready_files  # not up while it drains
        assert fake.signals_to("web") == []
        await trio.sleep(2)
        await rt.start("web", wait=True)
        assert "/run/ready" in fake.ready_files
        rt.request_shutdown("test")


async def test_a_hook_the_os_layer_cannot_set_up_is_a_hook_error(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, post_stop="report")])
    fake = FakeOS({"app": Behaviour.exits(0, after=1)})
    spawn = fake.spawn

    def refuse_hooks(argv: Any, **kwargs: Any) -> int:
        if argv[0] == "report":
            raise TrinitError("a helper it needs is missing")
        return spawn(argv, **kwargs)

    fake.spawn = refuse_hooks  # type: ignore[method-assign]
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 0
    assert hook_events(log) == [(1, "post_stop", "error")]
    assert "could not start: a helper it needs is missing" in log.find("hook")[0].message
