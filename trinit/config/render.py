"""``trinit check``: the plan as a person reads it, before anything runs.

Plain text, one screen: what each process is, what starts together and what it waits
for, the order of the shutdown with each grace, the longest stop path against the
shutdown budget, then the warnings.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, tzinfo

from ..boot.parse import signal_name
from .cron import ZoneError, show_time, zone_from_environ
from .hardening import summary
from .model import ProcessSpec
from .plan import Plan
from .schedule import next_on_grid

_WAIT = {"started": "has started", "ready": "is ready", "completed": "has completed"}


def _secs(seconds: float) -> str:
    return f"{seconds:g} s"


def _names(names: Iterable[str]) -> str:
    return ", ".join(names) or "-"


def _command(spec: ProcessSpec) -> str:
    if spec.shell:
        return f"sh -c {shlex.quote(spec.command[-1])}"
    text = shlex.join(spec.command)
    return text if len(text) <= 60 else text[:57] + "..."


def _details(spec: ProcessSpec) -> list[str]:
    out = []
    if spec.ready is not None:
        target = spec.ready.target if isinstance(spec.ready.target, str) else shlex.join(spec.ready.target)
        out.append(f"ready: {spec.ready.kind} {target} (timeout {_secs(spec.ready.timeout)})")
    health = spec.health
    if health is not None and health.kind is not None:
        target = health.target if isinstance(health.target, str) else shlex.join(health.target or ())
        out.append(
            f"health: {health.kind} {target} every {_secs(health.interval)}, "
            f"{health.failures} failures: {spec.health_action}"
        )
    if spec.watchdog is not None:
        out.append(f"watchdog {_secs(spec.watchdog)}: {spec.health_action}")
    if spec.oneshot and spec.retries:
        out.append(f"retries {spec.retries}")
    if spec.timeout is not None:
        out.append(f"timeout {_secs(spec.timeout)}")
    if spec.restart != "no":
        limit = "" if spec.max_restarts is None else f", at most {spec.max_restarts} in a row"
        out.append(f"restart {spec.restart}{limit}")
    if spec.scheduled:
        out.append(
            f"schedule {spec.schedule}" if spec.schedule is not None else f"every {_secs(spec.every or 0)}"
        )
        if spec.jitter:
            out.append(f"jitter {_secs(spec.jitter)}")
        if spec.overlap != "skip":
            out.append(f"overlap {spec.overlap}")
        if spec.run_on_start:
            out.append("runs on start")
    if spec.scheduled and spec.on_failure == "shutdown":
        out.append("failure shuts down")
    elif not spec.main and not spec.scheduled and spec.on_failure == "ignore":
        out.append("failure ignored")
    if spec.pre_start:
        n = len(spec.pre_start)
        out.append(f"pre_start: {n} command{'s' if n > 1 else ''}, each up to {_secs(spec.hook_timeout)}")
    if spec.user is not None or spec.group is not None:
        out.append(f"as {spec.user or ''}{':' + spec.group if spec.group else ''}")
    return out + summary(spec)


def _stop_how(spec: ProcessSpec) -> str:
    if spec.stop_signal is None:
        sig = "the shutdown's signal" if spec.main else "SIGTERM"
    else:
        sig = signal_name(spec.stop_signal)
    group = " to its group" if spec.signal_group else ""
    steps = [f"{sig}{group}, {_secs(spec.stop_timeout)} grace"]
    if spec.stop_delay:
        steps.insert(0, f"{_secs(spec.stop_delay)} stop_delay")
    if spec.pre_stop is not None:
        steps.insert(0, f"pre_stop (up to {_secs(spec.hook_timeout)})")
    if spec.post_stop is not None:
        steps.append(f"post_stop (up to {_secs(spec.hook_timeout)})")
    return "; ".join(steps)


def _fire_times(jobs: list[ProcessSpec], now: float | None, environ: Mapping[str, str] | None) -> list[str]:
    """Each scheduled job's next three fire times (an ``every`` grid counted from now, as if
    trinit started now and its ``after`` held at once)."""
    now = time.time() if now is None else now
    try:
        zone: tzinfo = UTC
        if any(spec.schedule is not None for spec in jobs):
            zone = zone_from_environ(os.environ if environ is None else environ)
    except ZoneError as exc:  # only a Config built by hand gets here: the loader refuses a bad TZ
        return ["", f"Scheduled jobs: {exc}"]
    width = max(len(s.name) for s in jobs)
    lines = ["", f"Scheduled jobs (the next three fire times in {zone}; an every grid from now):"]
    for spec in jobs:
        if spec.schedule is not None:
            times = spec.schedule.upcoming(now, zone, 3)
        else:
            assert spec.every is not None
            first = now if spec.run_on_start else next_on_grid(now, spec.every, now)
            times = [first + i * spec.every for i in range(3)]
        shown = ", ".join(show_time(t, zone) for t in times) or "never"
        lines.append(f"  {spec.name:<{width}}  {shown}")
    return lines


def render_plan(plan: Plan, *, now: float | None = None, environ: Mapping[str, str] | None = None) -> str:
    """What ``trinit check`` prints for a valid config.

    ``now`` (epoch seconds) and ``environ`` (its ``TZ``) place the fire times of scheduled jobs;
    they default to the clock and trinit's environment.
    """
    config = plan.config
    specs = {p.name: p for p in config.processes}
    lines = [f"{config.source or 'config'}: {len(specs)} process{'es' if len(specs) != 1 else ''}", ""]
    width = max((len(n) for n in specs), default=4)
    kinds = max((len(s.kind) for s in specs.values()), default=8)
    rank = {name: i for i, name in enumerate(plan.order)}

    lines.append("Processes:")
    for name in plan.order:
        spec = specs[name]
        extra = "; ".join(_details(spec))
        lines.append(
            f"  {name:<{width}}  {spec.kind:<{max(kinds, 8)}}  {_command(spec)}"
            + (f"  [{extra}]" if extra else "")
        )

    lines += ["", "Start (each step starts together, once its conditions hold):"]
    for i, layer in enumerate(plan.start_layers, 1):
        for j, name in enumerate(layer):
            follows = specs[name].restarts_with
            waits = " and ".join(
                f"{dep} {_WAIT[cond]}" + (" (restarts with it)" if dep in follows else "")
                for dep, cond in plan.start_after[name]
            )
            step = f"{i}." if j == 0 else ""
            lines.append(f"  {step:<3} {name:<{width}}" + (f"  once {waits}" if waits else ""))

    lines += ["", "Stop (each step stops together, after the one before):"]
    for i, layer in enumerate(plan.stop_layers, 1):
        for j, name in enumerate(layer):
            spec = specs[name]
            step = f"{i}." if j == 0 else ""
            if spec.is_stop_job:
                needs = plan.stop_job_after[name]
                ordered = sorted(needs, key=rank.__getitem__)
                verb = "has" if len(ordered) == 1 else "have"
                when = f"runs once {_names(ordered)} {verb} stopped" if needs else "runs first"
                limit = f", timeout {_secs(spec.timeout)}" if spec.timeout is not None else ", no timeout"
                lines.append(f"  {step:<3} {name:<{width}}  stop job: {when}{limit}")
            else:
                lines.append(f"  {step:<3} {name:<{width}}  {_stop_how(spec)}")

    if plan.restart_followers:
        lines += [
            "",
            "Restart groups (a restart of the first restarts the others: they stop first, in reverse):",
        ]
        lead = max(len(n) for n in plan.restart_followers)
        for name, followers in plan.restart_followers.items():
            lines.append(f"  {name:<{lead}}  -> {', '.join(followers)}")

    jobs = [specs[name] for name in plan.order if specs[name].scheduled]
    if jobs:
        lines += _fire_times(jobs, now, environ)

    seconds, path = plan.longest_stop_path
    verdict = "within" if seconds <= config.shutdown_timeout else "MORE than"
    lines += [
        "",
        f"Longest stop path: {_secs(seconds)} ({' -> '.join(path) or 'nothing to stop'}), "
        f"{verdict} shutdown_timeout ({_secs(config.shutdown_timeout)})",
    ]
    if plan.warnings:
        lines += ["", "Warnings:"]
        lines += [f"  - {w}" for w in plan.warnings]
    return "\n".join(line.rstrip() for line in lines) + "\n"
