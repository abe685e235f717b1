"""A fake OS layer and a capturing log, for testing code that runs trinit's supervisor.

:class:`FakeOS` is an :class:`~trinit.system.protocol.OSLayer` like
:class:`trinit.system.real.RealOS`, but it spawns no processes and sends no signals. Each "process" follows a small script (:class:`Behaviour`): exit with a code after
some time, react to signals, ignore SIGTERM, fail to spawn. Everything happens on trio's
clock, so with ``MockClock(autojump_threshold=0)`` (pytest-trio's ``autojump_clock``) a
backoff sequence or a shutdown with grace periods runs instantly and at exact times::

    fake = FakeOS(behaviours={"app": Behaviour(runs=1.0, code=3)})
    log = FakeLog()
    sup = make_supervisor(config, fake, log=log)
    code = await sup.run()
    assert code == 3 and fake.spawns_of("app")[0].time == 0.0

Exits reach the runtime the way SIGCHLD would bring them: when a fake process ends, its
(pid, raw wait status) is queued for :meth:`FakeOS.wait_any` and the reaper made by
:meth:`FakeOS.make_watcher` is asked to :meth:`~trinit.system.reaper.Reaper.reap`. Pass that
reaper to the supervisor (``watcher=``); the pidfd watcher of library mode needs real
file descriptors and does not work with the fake.

:class:`FakeWallClock` is the wall clock of scheduled jobs on trio's clock: cron fire
times come at exact mock times, and :meth:`FakeWallClock.jump` steps it as NTP would.
"""

from __future__ import annotations

from ._behaviour import Behaviour as Behaviour
from ._behaviour import Exit as Exit
from ._behaviour import exit_status as exit_status
from ._fake_log import FakeLog as FakeLog
from ._fake_log import LogEvent as LogEvent
from ._fake_os import FakeOS as FakeOS
from ._records import FakeProcess as FakeProcess
from ._records import Sent as Sent
from ._records import Spawn as Spawn
from ._wall_clock import FakeWallClock as FakeWallClock
from ._wiring import make_supervisor as make_supervisor
from ._wiring import run_supervisor as run_supervisor

__all__ = [
    "Behaviour",
    "Exit",
    "FakeLog",
    "FakeOS",
    "FakeProcess",
    "FakeWallClock",
    "LogEvent",
    "Sent",
    "Spawn",
    "exit_status",
    "make_supervisor",
    "run_supervisor",
]
