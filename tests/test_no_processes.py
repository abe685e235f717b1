"""A config with no run-phase process (issue 10 defect 8): nothing would ever end the run, so
trinit runs its stop jobs (if any) and exits 0 at once, instead of waiting forever.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.testing import Behaviour, FakeLog, FakeOS, run_supervisor

STOP_JOB = ProcessSpec("bye", ["bye"], oneshot=True, phase="stop", timeout=5)


@pytest.mark.parametrize(
    "config",
    [Config([]), Config([], shutdown_timeout=3, ready_file="/run/ready")],
    ids=["empty", "only-trinit"],
)
async def test_exits_0_at_once_with_no_process(autojump_clock: MockClock, config: Config) -> None:
    fake = FakeOS()
    log = FakeLog()
    with trio.fail_after(1):
        assert await run_supervisor(config, fake, log=log) == 0
    assert trio.current_time() == 0
    assert fake.spawns == []
    assert fake.ready_files == {}
    assert log.first("shutdown_done").time == 0


async def test_runs_its_stop_jobs_then_exits_0(autojump_clock: MockClock) -> None:
    config = Config([STOP_JOB])
    fake = FakeOS({"bye": Behaviour.exits(0, after=1)})
    with trio.fail_after(5):
        assert await run_supervisor(config, fake) == 0
    assert fake.start_times("bye") == [0]
    assert trio.current_time() == 1


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("", ""),
        ("[trinit]\nshutdown_timeout = 3\n", ""),
        ('[process.bye]\ncommand = ["echo", "bye"]\noneshot = true\nphase = "stop"\n', "bye\n"),
    ],
    ids=["empty", "only-trinit", "only-stop-jobs"],
)
def test_cli_exits_0_at_once(tmp_path: Path, text: str, out: str) -> None:
    config = tmp_path / "trinit.toml"
    config.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "trinit", "-c", str(config)], capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == out
