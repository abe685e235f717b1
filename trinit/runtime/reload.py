"""Reloading the config while trinit runs (SPEC §10): ``ctl reload``, the reload signal, ``sup.reload()``.

First the whole new config is validated: read again (includes and ``${VAR}`` too), each user
and ``env_file`` checked, and the difference computed (:mod:`trinit.config.diff`). If anything
is wrong, nothing changes: every error is logged and returned. Otherwise the difference is
applied in three steps:

1. stop what goes or changes, dependents first (the old config's reverse start order):
   removed processes, changed ones (as a user's stop: never a failure), and the unchanged
   followers of changed ones (as in a restart that follows dependencies, :mod:`.cascade`);
2. in one step with no checkpoint, run the new plan: the runners of removed processes go,
   changed ones take their new spec, new ones are made, and every map derived from the plan
   follows (start conditions, stop order, start rank, ``ready_file``, scheduled jobs);
3. start changed and new processes and the followers again: each waits for its ``after``.

Unchanged processes are not touched. One reload at a time; none once the shutdown has begun,
and a shutdown that begins during one ends it after its stops (the shutdown stops the rest).
A process stopped through ``ctl`` stays stopped: a change only replaces its spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from .._errors import ConfigError
from ..config.plan import make_plan
from ..system.environ import credentials_of
from .cascade import relaunch, stop_follower
from .log_watch import log_watch_for
from .ready_file import ReadyFile
from .steer import Refused

if TYPE_CHECKING:
    from ..config.diff import ReloadPlan
    from ..config.model import Config
    from ..system.environ import Credentials
    from .runner import Runner
    from .supervisor import Runtime


class ReloadRefused(Refused, ConfigError):
    """The new config is invalid, or its changes cannot be applied: nothing changed.

    ``errors`` has every problem, one line each (a ConfigError, as the library's
    ``reload()`` raises it); the control protocol's code is ``config_error``.
    """

    def __init__(self, message: str, errors: list[str]) -> None:
        ConfigError.__init__(self, errors)
        self.code = "config_error"
        self.message = message

    def __str__(self) -> str:  # one line: the control protocol's "error" (the lines are in "errors")
        return f"{self.message}: {'; '.join(self.errors)}"


class Reloader:
    """The reloads of one run."""

    def __init__(self, rt: Runtime, source: Callable[[], Config] | None) -> None:
        self.rt = rt
        #: Reads the config again (the CLI: the file and the command line over it); None: no file.
        self.source = source
        self.busy = False

    def on_signal(self, signum: int) -> None:
        """The ``reload_signal`` arrived: reload in the background, the outcome in the log."""
        if self.rt.shutting_down:
            self.rt.log.info("reload", "received the reload signal during the shutdown: nothing is reloaded")
            return
        self.rt.in_background(self._reload_logged)

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except Refused as exc:
            if not isinstance(exc, ReloadRefused):  # a config error is logged already
                self.rt.log.warning("reload_failed", f"reload refused: {exc}")

    async def reload(self, config: Config | None = None, *, dry_run: bool = False) -> list[str]:
        """Validate ``config`` (default: read it again) and apply the difference; the plan's lines.

        Raises ReloadRefused (nothing changed) or Refused (a reload under way, the shutdown).
        """
        rt = self.rt
        if rt.shutting_down:
            raise Refused("shutting_down", "trinit is shutting down; it reloads nothing any more")
        if self.busy and not dry_run:
            raise Refused("wrong_state", "a reload is under way; try again once it is done")
        if config is None and self.source is None:
            raise Refused(
                "not_supported",
                "this trinit has no config file to read again (zero-config mode, or a config built in code)",
            )
        busy, self.busy = self.busy, True
        try:
            new, creds, plan = await self._validate(config)
            if dry_run:
                return plan.lines()
            if rt.shutting_down:
                raise Refused("shutting_down", "trinit is shutting down; it reloads nothing any more")
            lines = plan.lines()
            rt.log.info(
                "reload",
                f"reloading {new.source or 'the config'}: " + "; ".join(lines),
                plan=lines,
                stop=list(plan.removed),
                start=list(plan.added),
                restart=list(plan.restarted),
            )
            await _apply(rt, plan, new, creds)
            if not rt.shutting_down:
                rt.log.info("reload_done", "reload done", plan=lines)
            return lines
        finally:
            self.busy = busy

    async def _validate(
        self, config: Config | None
    ) -> tuple[Config, dict[str, Credentials | None], ReloadPlan]:
        rt = self.rt
        where = config.source if config is not None else None
        try:
            if config is None:
                assert self.source is not None
                # In a thread: a config on a slow disk, or a FIFO, must not stall the run.
                config = await trio.to_thread.run_sync(self.source, abandon_on_cancel=True)
            where = config.source
            creds = credentials_of(config)
            # The feature's one door: a run that is never reloaded never loads config/diff (~0.1 MB).
            from ..config.diff import diff_configs

            plan = diff_configs(rt.config, config)
            if plan.refusals:
                raise ConfigError(plan.refusals)
        except ConfigError as exc:
            what = f"{len(exc.errors)} error{'s' if len(exc.errors) != 1 else ''}"
            message = f"the new config was not applied ({what}); nothing changed"
            rt.log.error("reload_failed", f"reload refused: {message}", errors=exc.errors, source=where)
            for line in exc.errors:
                rt.log.error("reload_failed", line)
            raise ReloadRefused(message, exc.errors) from None
        return config, creds, plan


async def _apply(rt: Runtime, plan: ReloadPlan, new: Config, creds: dict[str, Credentials | None]) -> None:
    """The three steps of the module's docstring."""
    after = {p.name: p for p in new.processes}
    changed = dict(plan.changed)
    # A process stopped through ctl stays stopped; a stop job runs only at the shutdown.
    restart = [n for n in changed if n not in plan.stop_jobs and not rt.runners[n].held]
    leaders = dict(plan.followers)
    back: list[Runner] = []
    stopped: set[str] = set()
    for name in reversed(rt.plan.order):  # 1. dependents first
        if rt.shutting_down:
            return
        r = rt.runners[name]
        if name in plan.removed:
            rt.log.info("reload", "is no longer in the config: stopping it", process=name)
            await r.stop(hold=True)
        elif name in leaders:
            if await stop_follower(rt, r, leaders[name], "its config changed"):
                back.append(r)
        elif name in restart:
            rt.log.info("reload", f"changed ({', '.join(changed[name])}): restarting it", process=name)
            if not r.final or r.name in rt.jobs:
                stopped.add(name)
                await r.stop(hold=True)
    if rt.shutting_down:
        return
    _swap(rt, plan, new, creds)  # 2. no checkpoint in here
    for name in restart:  # 3.
        r = rt.runners[name]
        if name in stopped and r.ever_started:
            r.restarts += 1
        rt.launch(r)
    relaunch(rt, sorted(back, key=lambda r: rt.start_rank.get(r.name, 0)))
    for name in plan.added:
        if not after[name].is_stop_job:
            rt.log.info("reload", "is new in the config: it starts once its after holds", process=name)
            rt.launch(rt.runners[name])
    rt.end_if_nothing_left()


def _swap(rt: Runtime, plan: ReloadPlan, new: Config, creds: dict[str, Credentials | None]) -> None:
    """Run the new plan from now on (step 2): runners, specs, and what is derived from them."""
    for name in plan.removed:
        if name in rt.jobs:
            rt.scheduler.remove(name)
        rt.track(name)
    runners: dict[str, Runner] = {}
    new_plan = make_plan(new)
    rt.plan, rt.config = new_plan, new
    changed = dict(plan.changed)
    for spec in new.processes:
        runner = rt.runners.get(spec.name)
        if runner is None:
            runner = rt.make_runner(spec)
        elif spec.name in changed:
            if spec.name in rt.jobs:  # a changed job is scheduled anew when it starts
                rt.scheduler.remove(spec.name)
            runner.spec, runner.log_watch = spec, log_watch_for(spec)
        runner.start_after = tuple(new_plan.start_after.get(spec.name, ()))
        runners[spec.name] = runner
    rt.runners = runners
    rt.run_phase = [r for r in runners.values() if r.spec.phase == "run"]
    rt.start_rank = {name: i for i, name in enumerate(new_plan.order)}
    for name in (*changed, *plan.added):
        rt.track(runners[name])
    rt.spawner.use(new, creds)
    for key, old_value, new_value in plan.settings:
        rt.log.info("reload", f"{key}: {old_value} -> {new_value}", key=key)
    rt.log.log_format = new.log_format
    if rt.ready_file is None and new.ready_file:  # the first ready_file of the run
        rt.ready_file = ReadyFile(None, rt.os, rt.log, retired=rt.ready_retired)
    if rt.ready_file is not None:
        rt.ready_file.move(new.ready_file)
        rt.ready_file.update(rt.all_up)


__all__ = ["ReloadRefused", "Reloader"]
