"""Health checks and the watchdog of a ready process (SPEC §9), and what their verdict does.

From the moment a run is ready until it ends: a probe every ``interval`` (start to start,
the same attempts as readiness, each bounded by ``attempt_timeout``), and the watchdog's
deadline, which each ``WATCHDOG=1`` moves on. Between them trinit sleeps: with a 10 s
interval it wakes once per probe, and never for a watchdog that is fed.

``failures`` failed probes in a row (once ``start_period`` is over, or after a first pass),
or a missed watchdog, make the process unhealthy, and its action applies: ``restart`` and
``fail`` end the run through the runner (:meth:`Runner.end_unhealthy`), whose restart
decision then restarts it with the backoff (counting toward ``max_restarts``) or fails it
(``on_failure``); ``unready`` only marks it, so ``ready_file`` and ``probe ready`` say
"not ready" until a probe passes (or a ``WATCHDOG=1`` comes) again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from .readiness import MIN_INTERVAL, attempt_for, describe
from .state import Health, State

if TYPE_CHECKING:
    from ..config.health import HealthSpec
    from ..io.log import Logger
    from .notifier import Notifier
    from .process import ProcessHandle
    from .runner import Runner

RunExec = Callable[[tuple[str, ...], float], Awaitable[bool]]

_DOES = {
    "restart": "restarting it",
    "fail": "it has failed",
    "unready": "not ready until a check passes",
}


class HealthWatch:
    """Watches each ready run; remembers who was unhealthy, to say when they are healthy again."""

    def __init__(self, log: Logger, changed: Callable[[Runner], None]) -> None:
        self.log = log
        self._changed = changed
        self._sick: set[str] = set()

    async def watch(
        self, runner: Runner, handle: ProcessHandle, notifier: Notifier | None, run_exec: RunExec
    ) -> None:
        spec = runner.spec
        health = spec.health
        try:
            async with trio.open_nursery() as nursery:
                if health is not None and health.probe is not None:
                    nursery.start_soon(self._probes, runner, handle, health, run_exec)
                if spec.watchdog is not None and notifier is not None:
                    nursery.start_soon(self._watchdog, runner, handle, notifier, spec.watchdog)
                    nursery.start_soon(self._first_ping, runner, notifier)
        finally:
            runner.health = None

    async def _probes(
        self, runner: Runner, handle: ProcessHandle, health: HealthSpec, run_exec: RunExec
    ) -> None:
        attempt = attempt_for(health, run_exec)
        interval = max(health.interval, MIN_INTERVAL)
        grace_until = trio.current_time() + health.start_period
        passed = False
        failed = 0
        next_at = trio.current_time() + interval
        while True:
            await trio.sleep_until(next_at)
            if runner.state is not State.READY:  # being stopped: no more checks (nothing starts now)
                await trio.sleep_forever()
            started = trio.current_time()
            next_at = started + interval
            if await attempt():
                passed, failed = True, 0
                self._verdict(runner, Health.HEALTHY)
                continue
            if not passed and started < grace_until:
                continue  # start_period: failures do not count yet
            failed += 1
            self.log.debug(
                "health_check",
                f"health check failed ({failed} of {health.failures} in a row)",
                process=runner.name,
                pid=handle.pid,
            )
            if failed >= health.failures and runner.health is not Health.UNHEALTHY:
                assert health.kind is not None
                reason = f"{failed} health checks in a row failed ({describe(health)})"
                await self._unhealthy(runner, handle, reason)

    async def _watchdog(
        self, runner: Runner, handle: ProcessHandle, notifier: Notifier, period: float
    ) -> None:
        while True:
            await notifier.watchdog(period)
            await self._unhealthy(runner, handle, f"sent no WATCHDOG=1 for {period:g} s (watchdog)")
            await notifier.next_ping()  # unready: healthy again at the next ping
            self._verdict(runner, Health.HEALTHY)

    async def _first_ping(self, runner: Runner, notifier: Notifier) -> None:
        """The run's first WATCHDOG=1 is its first verdict: healthy (``ctl status`` shows it)."""
        await notifier.next_ping()
        if runner.health is None:
            self._verdict(runner, Health.HEALTHY)

    async def _unhealthy(self, runner: Runner, handle: ProcessHandle, reason: str) -> None:
        """Log it and apply the action; returns only under ``unready`` (the rest end the run)."""
        if runner.state is not State.READY:  # stopping already (a stop, the shutdown): no second stop
            await trio.sleep_forever()
        action = runner.spec.health_action
        self.log.warning(
            "unhealthy",
            f"is unhealthy: {reason}; {_DOES[action]}",
            process=runner.name,
            pid=handle.pid,
            action=action,
            reason=reason,
        )
        self._verdict(runner, Health.UNHEALTHY)
        if action != "unready":
            await runner.end_unhealthy(handle)
            await trio.sleep_forever()  # the run's end cancels this

    def _verdict(self, runner: Runner, health: Health) -> None:
        if runner.health is health:
            return
        runner.health = health
        if health is Health.UNHEALTHY:
            self._sick.add(runner.name)
        elif runner.name in self._sick:
            self._sick.discard(runner.name)
            self.log.info("healthy", "is healthy again", process=runner.name)
        self._changed(runner)
