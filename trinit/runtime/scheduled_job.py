"""One scheduled job at run time (SPEC §11): its task, its fire times, its runs, ``ctl``'s asks.

See :mod:`.scheduler` for how jobs wait. This module imports the cron half of the feature
(``config/cron``: cronsim, zoneinfo, datetime, ~0.8 MB of RSS); the :class:`.scheduler.Scheduler`
imports it when its first job comes, so a config without scheduled jobs never loads it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING

import attrs
import trio

from ..config.cron import ZoneError, show_time, zone_from_environ
from ..config.schedule import next_on_grid
from .host import SchedulerHost, Trigger

if TYPE_CHECKING:
    from ..io.log import Logger
    from ..system.wallclock import WallClock
    from .runner import Runner

#: A wall clock this much before the fire time at the end of the wait is "early": wait the rest.
EARLY = 0.001


def read_zone(environ: Mapping[str, str] | None, log: Logger) -> tzinfo:
    """The zone of cron times: ``TZ`` of ``environ``, UTC for None (no cron job) or a bad ``TZ``
    (the CLI's load refuses such a config; a library run carries on, warned)."""
    if environ is None:
        return UTC
    try:
        return zone_from_environ(environ)
    except ZoneError as exc:
        log.warning("scheduled", f"{exc}; cron times are read in UTC")
        return UTC


@attrs.define(eq=False)
class ScheduledJob:
    """One scheduled job: its next fire time, its runs, and what ``ctl`` asks of it."""

    runner: Runner
    host: SchedulerHost
    clock: WallClock
    zone: tzinfo
    rng: random.Random
    #: The next fire time on trio's clock (None: none planned), and for cron its wall-clock time.
    _due: float | None = None
    _due_wall: float | None = None
    #: The last cron fire time taken: after a step back, nothing at or before it runs again.
    _last_fire: float = -math.inf
    _anchor: float = 0.0
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _jumped: bool = False
    _gated: bool = False
    _start_when_gated: bool = False
    _running: bool = False
    _queued: bool = False
    _runs: trio.Nursery | None = None
    #: Where the job's task runs (the runtime's), to start it again after a stop before its first run.
    _home: trio.Nursery | None = None
    #: The task's scope, and whether a reload took the job away (SPEC §10): it never runs again.
    _scope: trio.CancelScope | None = None
    _removed: bool = False
    #: Set when a run (and any run queued behind it) has ended.
    idle: trio.Event = attrs.field(factory=trio.Event)

    @property
    def name(self) -> str:
        return self.runner.name

    @property
    def next_run(self) -> float | None:
        """The next fire time as wall-clock epoch seconds; None when none is planned (before its
        ``after`` holds, stopped, never fires, or the shutdown began)."""
        if self._due is None or self.runner.stopped or self.host.shutting_down:
            return None
        if self._due_wall is not None:
            return self._due_wall
        return self.clock.now() + (self._due - trio.current_time())

    def next_run_text(self) -> str | None:
        """:attr:`next_run` as SPEC §8 shows it: ISO 8601 with the zone's offset."""
        when = self.next_run
        return None if when is None else show_time(when, self.zone)

    @property
    def running(self) -> bool:
        return self._running

    def trigger(self) -> Trigger:
        """Run it now (``ctl start NAME``), respecting ``overlap``; a stopped job is started again
        and its schedule goes on."""
        if self.host.shutting_down or self._removed:
            return Trigger.REFUSED
        if self.runner.final and not self._gated:
            if not self.runner.stopped or self._home is None:
                return Trigger.REFUSED  # skipped: its `after` can never hold
            # Stopped while it waited for its `after`: wait again, and run once it holds.
            self.runner.revive()
            self._home.start_soon(self.run, name=f"trinit {self.name} schedule")
        if not self._gated:
            self._start_when_gated = True
            return Trigger.WAITING
        return self._begin("on request")

    async def run_now(self, *, wait: bool = False) -> Trigger:
        """:meth:`trigger`, and with ``wait`` until that run (or the one it joined) has ended."""
        done = self.idle if self._running else None
        result = self.trigger()
        if wait and result in (Trigger.STARTED, Trigger.QUEUED, Trigger.SKIPPED):
            if result is Trigger.QUEUED or done is None:
                done = self.idle
            await done.wait()
        return result

    def clock_jumped(self) -> None:
        self._jumped = True
        self._wake.set()

    # -- the job's task ---------------------------------------------------------------------

    def remove(self) -> None:
        """A reload took the job away: its task ends (a run going on was stopped before)."""
        self._removed = True
        if self._scope is not None:
            self._scope.cancel()

    async def run(self) -> None:
        """The job's whole life: wait for its ``after`` once, then fire at each fire time."""
        with trio.CancelScope() as self._scope:
            if not self._removed:
                await self._life()

    async def _life(self) -> None:
        if not await self.runner.lifecycle(run=False):
            return  # skipped: a dependency failed for good, or a stop or the shutdown came first
        self._gated = True
        async with trio.open_nursery() as self._runs:
            self._anchor = trio.current_time()
            if self.runner.spec.run_on_start or self._start_when_gated:
                self._begin("on start" if self.runner.spec.run_on_start else "on request")
            self._plan(after=self.clock.now())
            while True:
                due = await self._sleep()
                if self.host.shutting_down:
                    return  # nothing starts during the shutdown; a run going on is stopped by it
                if due:
                    self._on_due()
                else:
                    self._on_wake()

    async def _sleep(self) -> bool:
        """Until the fire time (True), or until woken by a clock jump (False)."""
        wake = self._wake
        with trio.move_on_at(math.inf if self._due is None else self._due):
            await wake.wait()
            self._wake = trio.Event()
            return False
        return True

    def _on_due(self) -> None:
        wall = self.clock.now()
        if self._due_wall is not None and wall < self._due_wall - EARLY:
            # The wall clock runs slower than trio's (NTP slews it): wait the rest.
            self._due = trio.current_time() + (self._due_wall - wall)
            return
        self._fire(self._due_wall)
        self._plan(after=max(wall, self._last_fire))

    def _on_wake(self) -> None:
        if not self._jumped:
            return
        self._jumped = False
        if self.runner.spec.schedule is None:
            return  # an every grid is on trio's clock: a wall-clock step does not move it
        wall = self.clock.now()
        if self._due_wall is not None and wall >= self._due_wall:
            self.host.log.info(
                "clock_jump",
                f"the wall clock jumped past its fire time {show_time(self._due_wall, self.zone)}: "
                "it runs now",
                process=self.name,
            )
            self._fire(self._due_wall)
        self._plan(after=max(wall, self._last_fire))

    def _fire(self, fire_wall: float | None) -> None:
        if fire_wall is not None:
            self._last_fire = fire_wall
        if self.runner.stopped:
            return  # stopped through ctl or the library: the schedule goes on, runs do not
        jitter = self.runner.spec.jitter
        delay = self.rng.uniform(0.0, jitter) if jitter > 0 else 0.0
        if delay > 0:
            assert self._runs is not None
            self._runs.start_soon(self._after_jitter, delay)
        else:
            self._begin("on schedule")

    async def _after_jitter(self, delay: float) -> None:
        await trio.sleep(delay)
        if not self.runner.stopped:
            self._begin("on schedule")

    def _plan(self, *, after: float) -> None:
        """Compute the next fire time after the wall-clock time ``after`` and log it."""
        spec = self.runner.spec
        now = trio.current_time()
        if spec.schedule is not None:
            self._due_wall = spec.schedule.next_after(after, self.zone)
            wall = self.clock.now()
            self._due = None if self._due_wall is None else now + max(0.0, self._due_wall - wall)
        else:
            assert spec.every is not None
            self._due = next_on_grid(self._anchor, spec.every, now)
        when = self.next_run_text()
        if when is None:
            if self._due is None:
                self.host.log.warning("scheduled", "has no fire time within 50 years", process=self.name)
            return
        assert self._due is not None
        self.host.log.info(
            "scheduled",
            f"next run at {when} (in {_human(self._due - now)})",
            process=self.name,
            next_run=when,
        )

    # -- runs ---------------------------------------------------------------------------------

    def _begin(self, why: str) -> Trigger:
        """Start a run now, unless the shutdown began or one is going (then ``overlap`` says)."""
        if self.host.shutting_down:
            return Trigger.REFUSED
        spec = self.runner.spec
        if self._running:
            if spec.overlap == "queue":
                if not self._queued:
                    self._queued = True
                    self.host.log.info(
                        "queued",
                        f"a run is due ({why}) while the last one still runs; it follows that one "
                        '(overlap = "queue")',
                        process=self.name,
                    )
                return Trigger.QUEUED
            self.host.log.warning(
                "skipped",
                f'a run was due ({why}) while the last one still runs; skipped (overlap = "skip")',
                process=self.name,
            )
            return Trigger.SKIPPED
        assert self._runs is not None
        self._running = True
        self.idle = trio.Event()
        self._runs.start_soon(self._run_loop, name=f"trinit {self.name} run")
        return Trigger.STARTED

    async def _run_loop(self) -> None:
        try:
            while not self.host.shutting_down:  # checked in the same step as the spawn
                if self.runner.final:
                    self.runner.revive()
                await self.runner.lifecycle(wait=False)
                if not self._queued or self.runner.stopped:
                    break
                self._queued = False
        finally:
            self._running = self._queued = False
            self.idle.set()


def _human(seconds: float) -> str:
    """A delay as a person reads it: 45 s, 12 min, 5 h 3 min, 2 d 4 h."""
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
