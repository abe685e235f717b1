"""A start that fails leaks no fd (issue 10 defect 12): the pipes of a prefixed process are
closed when the second ``pipe()`` fails (EMFILE) or the spawn itself fails.
"""

from __future__ import annotations

import errno
import os

from fakeutil import stop_at
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.testing import Behaviour, FakeLog, FakeOS, run_supervisor


class SecondPipeFails(FakeOS):
    """Every second ``pipe()`` fails with EMFILE, as when the open-files limit is reached."""

    pipes = 0

    def pipe(self) -> tuple[int, int]:
        self.pipes += 1
        if self.pipes % 2 == 0:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return super().pipe()


def restarting(**keys: object) -> Config:
    spec = ProcessSpec("svc", ["svc"], output="prefix", restart="always", restart_delay=0.1, **keys)  # type: ignore[arg-type]
    return Config([ProcessSpec("app", ["app"], main=True), spec])


async def test_second_pipe_failing_closes_the_first(autojump_clock: MockClock) -> None:
    fake = SecondPipeFails()
    log = FakeLog()
    await run_supervisor(restarting(restart_delay_max=0.1), fake, log=log, at=stop_at(3.05))
    assert fake.pipes >= 30  # 15 or more failed starts
    assert fake.spawns_of("svc") == []  # it never got as far as the spawn
    assert fake.open_fds == set()
    assert "too many open files" in log.first("failed", "svc").message  # defect 17


async def test_failed_spawn_closes_both_pipes(autojump_clock: MockClock) -> None:
    fake = FakeOS({"svc": Behaviour.not_found()})
    await run_supervisor(restarting(restart_delay_max=0.1), fake, at=stop_at(1.05))
    assert len(fake.spawns_of("svc")) >= 5
    assert fake.open_fds == set()
