"""Scheduled jobs at run time (SPEC §11): when each job runs, and nothing in between.

One task per job sleeps until its next fire time with ``trio.sleep_until``-style deadlines:
trio keeps every task's deadline in one heap and sleeps in the kernel until the nearest, so
100 idle jobs cost no wakeup until the first of them is due (trio caps one wait at 24 h).
A task per job keeps each job's overlap, queue and jitter its own, with no shared timetable
to keep in step. Runs go through the job's :class:`.runner.Runner` like any oneshot's
(``retries``, ``timeout``, user, env, output, the shutdown's stop).

Cron fire times are wall-clock times (in the zone of ``TZ``), waited for on trio's
monotonic clock: the wait is ``fire - wall_now`` long, and checked against the wall clock
when it ends (a slewed clock only costs a second, shorter wait). A step of the wall clock
(NTP, ``date -s``, a suspend) wakes every cron job through the :class:`WallClock` (a
``timerfd`` on Linux) and its fire time is computed again: a fire time that the jump
skipped over runs once, at once; one that already ran never runs again after a step back.
``every`` jobs keep a fixed grid on the monotonic clock, which a wall-clock step does not move.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from datetime import tzinfo

    from ..system.wallclock import WallClock
    from .host import SchedulerHost
    from .runner import Runner
    from .scheduled_job import ScheduledJob


class Scheduler:
    """Every scheduled job of a run, and the one watcher of wall-clock jumps they share."""

    def __init__(
        self,
        host: SchedulerHost,
        clock: WallClock | None,
        environ: Mapping[str, str],
        jobs: dict[str, ScheduledJob] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``jobs``: where the jobs are kept by name (the runtime's own dict, which it reads on hot paths)."""
        self.host = host
        self.clock = clock
        self.environ = environ
        #: The zone of cron times: None until the first job; then UTC, or TZ once a cron job came.
        self.zone: tzinfo | None = None
        self._zoned = False
        self._watching = False
        self.rng = rng or random.Random()
        self.jobs: dict[str, ScheduledJob] = {} if jobs is None else jobs

    def schedule(self, runners: Iterable[Runner]) -> None:
        """The run's first jobs (not started yet): the zone is read once, from TZ if one of them is cron."""
        scheduled = [r for r in runners if r.spec.scheduled]
        cron = any(r.spec.schedule is not None for r in scheduled)
        self.jobs.update({r.name: self._job(r, read_tz=cron) for r in scheduled})

    def _job(self, runner: Runner, *, read_tz: bool) -> ScheduledJob:
        """A job for ``runner``, the zone read first when ``read_tz`` and not yet read.

        The feature's one door: ``scheduled_job`` loads cronsim, zoneinfo and datetime (~0.8 MB
        of RSS), so a run without scheduled jobs never imports them (nor the real wall clock).
        """
        from .scheduled_job import ScheduledJob, read_zone

        if self.clock is None:
            from ..system.wallclock import RealWallClock

            self.clock = RealWallClock()
        if self.zone is None or (read_tz and not self._zoned):
            self._zoned = read_tz
            self.zone = read_zone(self.environ if read_tz else None, self.host.log)
        return ScheduledJob(runner, self.host, self.clock, self.zone, self.rng)

    def __contains__(self, name: str) -> bool:
        return name in self.jobs

    def job(self, name: str) -> ScheduledJob:
        return self.jobs[name]

    def next_run(self, name: str) -> float | None:
        """The job's next fire time (wall-clock epoch seconds), or None (see ScheduledJob.next_run)."""
        return self.jobs[name].next_run

    def start(self, nursery: trio.Nursery) -> None:
        """Start every job's task, and the clock watcher when a cron job needs it."""
        for job in self.jobs.values():
            job._home = nursery
            nursery.start_soon(job.run, name=f"trinit {job.name} schedule")
        if any(job.runner.spec.schedule is not None for job in self.jobs.values()):
            self._watching = True
            nursery.start_soon(self._watch_clock, name="trinit wall clock")

    def add(self, runner: Runner, nursery: trio.Nursery) -> None:
        """Schedule a job a reload added or changed (SPEC §10); it waits for its ``after`` first."""
        job = self._job(runner, read_tz=runner.spec.schedule is not None)
        self.jobs[runner.name] = job
        job._home = nursery
        nursery.start_soon(job.run, name=f"trinit {job.name} schedule")
        if runner.spec.schedule is not None and not self._watching:
            self._watching = True
            nursery.start_soon(self._watch_clock, name="trinit wall clock")

    def remove(self, name: str) -> None:
        """Take a job away (a reload removed or changed it); stop its runner first."""
        job = self.jobs.pop(name, None)
        if job is not None:
            job.remove()

    async def _watch_clock(self) -> None:
        clock = self.clock
        assert clock is not None  # a cron job made it
        try:
            while True:
                await clock.wait_jump()
                self.host.log.info("clock_jump", "the wall clock was set: cron fire times are computed again")
                for job in self.jobs.values():
                    job.clock_jumped()
        except OSError as exc:
            self.host.log.warning(
                "clock_jump",
                f"cannot watch the wall clock for jumps ({exc.strerror or exc}): after a clock step, "
                "cron jobs notice it only at their next fire time",
            )
        finally:
            clock.close()
