"""Cron expressions and the zone of their times (SPEC §11): ``schedule``'s parser and fire times.

Cron expressions are evaluated by ``cronsim``, which follows Debian's cron, DST transitions
included: a job at a fixed time (neither minute nor hour starts with ``*``) whose time is
skipped by a spring-forward runs right after the jump, and runs once, not twice, when the
time repeats in a fall-back; jobs that run every hour or more often run in every real hour.
This module only adds what cronsim leaves to its caller: the ``@daily`` names, the rule of
five fields, and error messages that name the cron field and the allowed range.

It is the heavy half of the scheduled-jobs feature (cronsim, zoneinfo, datetime and calendar:
~0.8 MB of RSS), kept apart from :mod:`.schedule` so that only a config with a ``schedule`` (or
``trinit check``) loads it; :func:`.schedule.parse_schedule` and ``runtime/scheduled_job`` are
its doors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from cronsim import CronSim, CronSimError

from .values import Bad, show

#: The ``@`` names and the five fields each stands for (``@reboot`` is ``run_on_start``).
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_RANGES = {
    "minute": (0, 59),
    "hour": (0, 23),
    "day-of-month": (1, 31),
    "month": (1, 12),
    "day-of-week": (0, 7),
}
_NAMES = {
    "month": ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    "day-of-week": ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
}
_SHAPE = (
    '5 fields "minute hour day-of-month month day-of-week" like "0 3 * * *", '
    "or @hourly, @daily, @weekly, @monthly or @yearly"
)
#: A moment to evaluate expressions against when checking that they ever fire.
_CHECK_FROM = datetime(2001, 1, 1, tzinfo=UTC)


@attrs.frozen
class Cron:
    """A valid cron expression: ``text`` as written, ``fields`` the five fields it stands for."""

    text: str
    fields: str

    def __str__(self) -> str:
        return self.text

    def next_after(self, when: float, zone: tzinfo) -> float | None:
        """The first fire time after ``when`` (epoch seconds, the fire times are whole seconds),
        with the fields read as local time in ``zone``; None if none comes within 50 years."""
        start = datetime.fromtimestamp(when, zone)
        try:
            return next(CronSim(self.fields, start)).timestamp()
        except StopIteration:
            return None

    def upcoming(self, when: float, zone: tzinfo, count: int) -> list[float]:
        """The next ``count`` fire times after ``when`` (fewer if it stops firing)."""
        out: list[float] = []
        it = CronSim(self.fields, datetime.fromtimestamp(when, zone))
        for _ in range(count):
            try:
                out.append(next(it).timestamp())
            except StopIteration:
                break
        return out


def cron(value: object) -> Cron:
    """Parse ``schedule``: five cron fields (names of months and days, ranges, steps, lists) or an
    ``@`` name; ``Bad`` names the cron field and what is wrong with it."""
    if isinstance(value, Cron):
        return value
    if not isinstance(value, str):
        raise Bad(f'must be a cron expression like "0 3 * * *" (got {show(value)})')
    text = value.strip()
    if text.startswith("@"):
        fields = ALIASES.get(text.lower())
        if fields is None:
            hint = " (use run_on_start = true)" if text.lower() == "@reboot" else ""
            raise Bad(f'"{text}" is not a cron name{hint}; use {_SHAPE}')
    else:
        parts = text.split()
        if len(parts) != 5:
            count = f"{len(parts)} field{'s' if len(parts) != 1 else ''}"
            raise Bad(f"must be {_SHAPE} (got {count}: {show(value)})")
        fields = " ".join(parts)
    try:
        it = CronSim(fields, _CHECK_FROM)
    except CronSimError as exc:
        raise Bad(_explain(str(exc), fields)) from None
    try:
        next(it)
    except StopIteration:
        raise Bad(f'"{text}" never fires (no time matches it within 50 years)') from None
    return Cron(text, fields)


def _explain(message: str, fields: str) -> str:
    """cronsim says "Bad day-of-month"; say which value of that field is wrong and why."""
    field = message.removeprefix("Bad ").strip()
    if field not in _RANGES:
        return f"is not a valid cron expression ({message}); use {_SHAPE}"
    parts = fields.split()
    text = parts[_FIELDS.index(field)]
    low, high = _RANGES[field]
    words_ok = True
    for term in text.split(","):
        base, _, step = term.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            return f'{field} step "{step}" must be a whole number, 1 or more'
        ends = base.split("-")
        for word in ends:
            if word.isdigit() and not low <= int(word) <= high:
                return f"{field} {word} out of range {low}–{high}"
            words_ok = words_ok and (word == "*" or _number(field, word) is not None)
        if len(ends) == 2 and words_ok:
            first, last = (_number(field, e) for e in ends)
            if first is not None and last is not None and first > last:
                return f"{field} range {base} runs backwards (write it from low to high)"
    if field == "day-of-month" and words_ok:
        return f'day-of-month "{text}" never comes in the months given ("{parts[3]}")'
    names = f", names like {_NAMES[field][1]}" if field in _NAMES else ""
    return (
        f'{field} "{text}" is not valid: use numbers {low}–{high}{names}, '
        "a range (1-5), a step (*/2) or a list (1,15)"
    )


def _number(field: str, word: str) -> int | None:
    if word.isdigit():
        return int(word)
    names = _NAMES.get(field, [])
    if word.upper() in names:
        return names.index(word.upper()) + (1 if field == "month" else 0)
    return None


# --------------------------------------------------------------------------- the zone


class ZoneError(ValueError):
    """``TZ`` names no time zone trinit can read."""


def zone_from_environ(environ: Mapping[str, str]) -> tzinfo:
    """The zone of cron times: ``TZ`` of trinit's environment (a name like ``Europe/Riga``, with
    or without a leading ``:``, or a tzfile path); UTC when it is unset or empty."""
    name = environ.get("TZ", "").removeprefix(":")
    if not name:
        return UTC
    try:
        if os.path.isabs(name):
            with open(name, "rb") as f:
                return ZoneInfo.from_file(f, key=name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ZoneError(
            f'TZ is "{name}", which is not a time zone of the system\'s tz database (such as '
            '"Europe/Riga" or "America/New_York"; POSIX rule strings are not read); fix TZ, '
            "or unset it for UTC"
        ) from None


def show_time(when: float, zone: tzinfo) -> str:
    """An ISO 8601 time with its offset, to the second: ``2026-11-30T03:00:00+02:00``."""
    return datetime.fromtimestamp(when, zone).isoformat(timespec="seconds")
