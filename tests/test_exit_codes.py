"""trinit's exit code (SPEC §2): the main process's, the first failure's, 128+n, -e and success_codes.

On pytest-trio's ``autojump_clock`` against :class:`trinit.testing.FakeOS`.
"""

from __future__ import annotations

import errno
import signal

import pytest
from fakeutil import sent, stop_at
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.runtime.options import RuntimeOptions
from trinit.testing import Behaviour, Exit, FakeLog, FakeOS, make_supervisor, run_supervisor

TERM, KILL, INT, SEGV = signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGSEGV


# ================================================================================ exit codes


async def run_main(
    behaviour: Behaviour, *, options: RuntimeOptions | None = None, success_codes: list[int] | None = None
) -> int:
    config = Config([ProcessSpec("app", ["app"], main=True, success_codes=success_codes)])
    return await run_supervisor(config, FakeOS({"app": behaviour}), options=options)


async def test_exit_code_is_mains_code(autojump_clock: MockClock) -> None:
    assert await run_main(Behaviour.exits(3, after=1)) == 3
    assert await run_main(Behaviour.exits(0, after=1)) == 0


async def test_exit_code_of_a_signal_is_128_plus_n(autojump_clock: MockClock) -> None:
    assert await run_main(Behaviour.killed(SEGV, after=1)) == 128 + SEGV


async def test_exit_code_when_main_cannot_start(autojump_clock: MockClock) -> None:
    assert await run_main(Behaviour.not_found()) == 127
    assert await run_main(Behaviour.not_executable()) == 126


@pytest.mark.parametrize(
    ("err", "code", "says"),
    [
        (errno.ENOENT, 127, "no such command or file"),
        (errno.EACCES, 126, "not executable"),
        (errno.ENOEXEC, 126, "not an executable format"),
        (errno.EMFILE, 1, "too many open files"),
        (errno.EAGAIN, 1, "limit of processes"),
        (errno.E2BIG, 1, "arguments and environment are too long"),
        (errno.ENOTDIR, 1, "not a folder"),
        (errno.EIO, 1, "EIO"),
    ],
)
async def test_each_start_error_has_its_code_and_message(
    autojump_clock: MockClock, err: int, code: int, says: str
) -> None:
    """SPEC §2 (issue 10 defect 17): 127 only for a program not found, 126 for EACCES/ENOEXEC,
    1 for any other failure to start, each with a message naming the cause."""
    for main in (True, False):  # the main process, or a process whose failure ends the run
        config = Config([ProcessSpec("app", ["app"], main=main), ProcessSpec("side", ["side"])])
        log = FakeLog()
        fake = FakeOS({"app": Behaviour(spawn_error=err)})
        assert await run_supervisor(config, fake, log=log) == code
        failed = log.first("failed", "app")
        assert says in failed.message and "'app'" in failed.message
        assert failed.fields["code"] == code


async def test_main_cannot_start_stops_the_others(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("side", ["side"]),
            ProcessSpec("app", ["app"], main=True, after={"side": "started"}),
        ]
    )
    fake = FakeOS({"app": Behaviour.not_found()})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 127
    assert [s.error for s in fake.spawns_of("app")] == [errno.ENOENT]
    assert sent(fake, "side") == [(0, TERM)]
    assert log.first("failed", "app").time == 0


async def test_success_codes_of_main_map_to_0(autojump_clock: MockClock) -> None:
    assert await run_main(Behaviour.exits(3, after=1), success_codes=[0, 3]) == 0
    assert await run_main(Behaviour.exits(4, after=1), success_codes=[0, 3]) == 4


async def test_success_exits_option_maps_after_128_plus_n(autojump_clock: MockClock) -> None:
    options = RuntimeOptions(success_exits=frozenset({143}))
    config = Config([ProcessSpec("app", ["app"], main=True)])
    assert await run_supervisor(config, FakeOS(), options=options, at=stop_at(1)) == 0
    assert await run_main(Behaviour.exits(143, after=1), options=options) == 0
    assert await run_main(Behaviour.exits(3, after=1), options=options) == 3


async def test_main_stopped_by_the_shutdown_gives_its_own_status(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True)])
    assert await run_supervisor(config, FakeOS(), at=stop_at(1)) == 128 + TERM
    graceful = FakeOS({"app": Behaviour.forever(on_signal={TERM: Exit(code=0, delay=0.5)})})
    assert await run_supervisor(config, graceful, at=stop_at(1)) == 0
    odd = FakeOS({"app": Behaviour.forever(on_signal={TERM: Exit(code=9)})})
    assert await run_supervisor(config, odd, at=stop_at(1)) == 9


async def test_main_killed_after_its_grace_gives_137(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, stop_timeout=2)])
    fake = FakeOS({"app": Behaviour.stubborn()})
    assert await run_supervisor(config, fake, at=stop_at(1)) == 128 + KILL
    assert sent(fake, "app") == [(1, TERM), (3, KILL)]


async def test_first_failure_that_starts_the_shutdown_fixes_the_code(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"], main=True),
            ProcessSpec("first", ["first"]),
            ProcessSpec("second", ["second"]),
        ]
    )
    fake = FakeOS(
        {
            "app": Behaviour.forever(on_signal={TERM: Exit(code=0)}),
            "first": Behaviour.exits(5, after=1),
            # Ignores SIGTERM and then fails by itself during the shutdown.
            "second": Behaviour.exits(7, after=1.5, ignore=[TERM]),
        }
    )
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 5
    assert log.first("shutdown_begun").time == 1


async def test_failure_of_a_process_killed_by_a_signal_gives_128_plus_n(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True), ProcessSpec("side", ["side"])])
    fake = FakeOS({"side": Behaviour.killed(SEGV, after=1)})
    assert await run_supervisor(config, fake) == 128 + SEGV


async def test_failure_of_a_process_that_cannot_start(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True), ProcessSpec("side", ["side"])])
    assert await run_supervisor(config, FakeOS({"side": Behaviour.not_found()})) == 127
    assert await run_supervisor(config, FakeOS({"side": Behaviour.not_executable()})) == 126


async def test_no_main_all_finished_is_0(autojump_clock: MockClock) -> None:
    config = Config(
        [
            ProcessSpec("a", ["a"], oneshot=True),
            ProcessSpec("b", ["b"], oneshot=True, after=["a"]),
        ]
    )
    fake = FakeOS({"a": Behaviour.exits(0, after=1), "b": Behaviour.exits(0, after=1)})
    log = FakeLog()
    assert await run_supervisor(config, fake, log=log) == 0
    assert log.first("shutdown_begun").time == 2


async def test_no_main_shutdown_requested_is_0(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("a", ["a"]), ProcessSpec("b", ["b"])])
    assert await run_supervisor(config, FakeOS(), at=stop_at(1)) == 0
    signalled = FakeOS()
    assert await run_supervisor(config, signalled, at=[(1, lambda sup: sup.on_signal(TERM, TERM))]) == 0


async def test_no_main_failure_gives_its_code(autojump_clock: MockClock) -> None:
    config = Config([ProcessSpec("a", ["a"]), ProcessSpec("job", ["job"], oneshot=True)])
    fake = FakeOS({"job": Behaviour.exits(6, after=1)})
    assert await run_supervisor(config, fake) == 6
    assert sent(fake, "a") == [(1, TERM)]


async def test_main_exit_code_stands_when_it_exits_during_a_shutdown_it_did_not_start(
    autojump_clock: MockClock,
) -> None:
    config = Config([ProcessSpec("app", ["app"], main=True, stop_timeout=5)])
    # The main process exits 4 by itself at 1.5, while the shutdown asked for at 1 waits for it.
    fake = FakeOS({"app": Behaviour.exits(4, after=1.5, ignore=[TERM])})
    assert await run_supervisor(config, fake, at=stop_at(1)) == 4


async def test_failure_after_the_shutdown_was_requested_does_not_fix_the_code(
    autojump_clock: MockClock,
) -> None:
    """The shutdown is requested just before a sidecar's failure is handled (same step):
    that failure did not start the shutdown, so main's own status is the exit code."""
    config = Config([ProcessSpec("app", ["app"], main=True), ProcessSpec("side", ["side"])])
    fake = FakeOS(
        {"app": Behaviour.forever(on_signal={TERM: Exit(code=0)}), "side": Behaviour.exits(5, after=1)}
    )
    log = FakeLog()
    sup = make_supervisor(config, fake, log=log)
    log.on("exited", lambda _e: sup.request_shutdown("test"), process="side")
    assert await sup.run() == 0


async def test_no_main_last_process_failing_gives_its_code(autojump_clock: MockClock) -> None:
    """The failure of the only (last) process both ends "everything finished" and fails:
    the code is still the failure's (SPEC §2)."""
    config = Config([ProcessSpec("job", ["job"], oneshot=True)])
    assert await run_supervisor(config, FakeOS({"job": Behaviour.exits(6, after=1)})) == 6
