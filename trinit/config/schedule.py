"""Scheduled jobs (SPEC §11): the keys' rules and the ``every`` grid.

Pure: no trio, no clock of its own. Fire times are computed from a wall-clock time the
caller passes (epoch seconds), so the runtime injects its clock and the tests a fake one.
Cron expressions and the zone (cronsim, zoneinfo, datetime: ~0.8 MB of RSS) are in
:mod:`.cron`, which only a config with a ``schedule`` loads, through the two doors below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from .values import Problems

if TYPE_CHECKING:
    from .cron import Cron

Overlap = Literal["skip", "queue"]


def parse_schedule(value: object) -> Cron:
    """``schedule``'s parser (see :func:`.cron.cron`); it loads the cron half of the feature."""
    from .cron import cron

    return cron(value)


def zone_problem(environ: Mapping[str, str]) -> str | None:
    """What is wrong with ``TZ`` for a config with cron jobs, or None when it names a zone."""
    from .cron import ZoneError, zone_from_environ

    try:
        zone_from_environ(environ)
    except ZoneError as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------- every


def next_on_grid(anchor: float, interval: float, now: float) -> float:
    """The first point of the grid ``anchor + k * interval`` (k >= 1) after ``now``."""
    k = max(1, math.floor((now - anchor) / interval) + 1)
    due = anchor + k * interval
    return due if due > now else due + interval


# --------------------------------------------------------------------------- validation

#: The keys of a scheduled job and their values when not given.
DEFAULTS: dict[str, Any] = {
    "schedule": None,
    "every": None,
    "jitter": 0.0,
    "overlap": "skip",
    "run_on_start": False,
}


def is_scheduled(values: Mapping[str, Any]) -> bool:
    return values.get("schedule") is not None or values.get("every") is not None


def schedule_rules(given: Mapping[str, Any], values: dict[str, Any], problems: Problems) -> None:
    """Which processes may have the schedule keys, and ``on_failure``'s default for a scheduled job."""

    def off_default(key: str) -> bool:
        return key in given and key in values and values[key] != DEFAULTS[key]

    if off_default("schedule") and off_default("every"):
        problems.add("every", "give schedule (cron times) or every (an interval), not both")
    if not is_scheduled(values):
        for key in ("jitter", "overlap", "run_on_start"):
            if off_default(key):
                problems.add(key, "only for scheduled jobs (a oneshot with schedule or every)")
        return
    key = "schedule" if values.get("schedule") is not None else "every"
    if values.get("main") is True:
        problems.add(key, "not allowed on the main process: its exit ends trinit")
    elif values.get("oneshot") is False:
        problems.add(
            key, "only for oneshots: a scheduled job is a oneshot with schedule or every (add oneshot = true)"
        )
    elif values.get("phase") == "stop":
        problems.add(key, "not allowed on a stop job: it runs once, during the shutdown")
    if values.get("ready") is not None:
        problems.add("ready", "not allowed on a scheduled job: nothing waits for it to be ready")
    if "on_failure" not in given:
        values["on_failure"] = "ignore"
