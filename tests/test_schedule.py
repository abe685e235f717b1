"""Scheduled jobs, config side (SPEC §11): the cron expression, its zone and fire times, the keys'
rules, and what ``trinit check`` prints. Pure: fire times are computed from a given wall time.

The runtime side (runs on trio's MockClock with an injected wall clock) is in test_scheduler.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

import pytest

from trinit import Config, ConfigError, ProcessSpec
from trinit.config.cron import Cron, ZoneError, cron, show_time, zone_from_environ
from trinit.config.load import config_from_mapping
from trinit.config.plan import make_plan
from trinit.config.render import render_plan
from trinit.config.schedule import next_on_grid
from trinit.config.values import Bad

RIGA = ZoneInfo("Europe/Riga")


def at(text: str, zone: tzinfo = UTC) -> float:
    """Epoch seconds of an ISO local time in ``zone``."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def fires(expr: str, start: str, count: int, zone: tzinfo = UTC) -> list[str]:
    return [show_time(t, zone) for t in cron(expr).upcoming(at(start, zone), zone, count)]


# ------------------------------------------------------------------------------ the expression


@pytest.mark.parametrize(
    ("expr", "fields"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@DAILY", "0 0 * * *"),
        ("  0   3 * *   *  ", "0 3 * * *"),
    ],
)
def test_names_and_spacing(expr: str, fields: str) -> None:
    assert cron(expr) == Cron(expr.strip(), fields)


def test_names_of_months_and_days_ranges_steps_and_lists() -> None:
    assert fires("0 9 * jan,jul mon-fri", "2030-01-03 12:00", 3) == [
        "2030-01-04T09:00:00+00:00",  # a Friday
        "2030-01-07T09:00:00+00:00",  # Monday
        "2030-01-08T09:00:00+00:00",
    ]
    assert fires("15,45 */6 * * *", "2030-01-01 00:00", 4) == [
        "2030-01-01T00:15:00+00:00",
        "2030-01-01T00:45:00+00:00",
        "2030-01-01T06:15:00+00:00",
        "2030-01-01T06:45:00+00:00",
    ]
    assert fires("0 0 * * 7", "2030-01-01 00:00", 1) == ["2030-01-06T00:00:00+00:00"]  # 7 is Sunday too


def test_step_of_seven_restarts_at_each_hour() -> None:
    """``*/7`` is 0, 7, ..., 56 of every hour: the last gap of an hour is 4 minutes."""
    got = fires("*/7 * * * *", "2030-01-01 00:00", 10)
    minutes = [t[14:16] for t in got]
    assert minutes == ["07", "14", "21", "28", "35", "42", "49", "56", "00", "07"]
    assert got[8] == "2030-01-01T01:00:00+00:00"


def test_month_ends_and_leap_days() -> None:
    assert fires("0 0 31 * *", "2030-01-01 00:00", 4) == [
        "2030-01-31T00:00:00+00:00",
        "2030-03-31T00:00:00+00:00",  # February and April have no 31st
        "2030-05-31T00:00:00+00:00",
        "2030-07-31T00:00:00+00:00",
    ]
    assert fires("0 12 29 2 *", "2030-01-01 00:00", 2) == [
        "2032-02-29T12:00:00+00:00",
        "2036-02-29T12:00:00+00:00",
    ]
    assert fires("0 0 L * *", "2032-01-15 00:00", 3) == [  # cronsim's "last day of the month"
        "2032-01-31T00:00:00+00:00",
        "2032-02-29T00:00:00+00:00",
        "2032-03-31T00:00:00+00:00",
    ]


def test_fire_times_are_strictly_after_the_given_time() -> None:
    start = at("2030-01-01 03:00")
    job = cron("0 3 * * *")
    assert job.next_after(start, UTC) == at("2030-01-02 03:00")
    assert job.next_after(start - 0.25, UTC) == start


def test_dst_spring_forward_in_riga() -> None:
    """2030-03-31 03:00 EET becomes 04:00 EEST. A job at a fixed time in the skipped hour runs
    right after the jump (Debian cron); an hourly one has no 03:00 that day."""
    assert fires("30 3 * * *", "2030-03-30 00:00", 3, RIGA) == [
        "2030-03-30T03:30:00+02:00",
        "2030-03-31T04:00:00+03:00",
        "2030-04-01T03:30:00+03:00",
    ]
    assert fires("0 * * * *", "2030-03-31 01:30", 3, RIGA) == [
        "2030-03-31T02:00:00+02:00",
        "2030-03-31T04:00:00+03:00",
        "2030-03-31T05:00:00+03:00",
    ]


def test_dst_fall_back_in_riga() -> None:
    """2030-10-27 04:00 EEST becomes 03:00 EET: 03:xx happens twice. A job at a fixed time runs
    once (the first 03:30); an hourly one runs in both 03:00 hours (they are two real hours)."""
    assert fires("30 3 * * *", "2030-10-26 12:00", 2, RIGA) == [
        "2030-10-27T03:30:00+03:00",
        "2030-10-28T03:30:00+02:00",
    ]
    assert fires("0 * * * *", "2030-10-27 02:30", 3, RIGA) == [
        "2030-10-27T03:00:00+03:00",
        "2030-10-27T03:00:00+02:00",
        "2030-10-27T04:00:00+02:00",
    ]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 0 32 * *", "day-of-month 32 out of range 1–31"),
        ("60 * * * *", "minute 60 out of range 0–59"),
        ("0 24 * * *", "hour 24 out of range 0–23"),
        ("0 0 * 13 *", "month 13 out of range 1–12"),
        ("0 0 * * 8", "day-of-week 8 out of range 0–7"),
        ("0 0 0 * *", "day-of-month 0 out of range 1–31"),
        ("1-70 * * * *", "minute 70 out of range 0–59"),
        ("*/0 * * * *", 'minute step "0" must be a whole number, 1 or more'),
        ("5-1 * * * *", "minute range 5-1 runs backwards"),
        ("0 0 * * fri-mon", "day-of-week range fri-mon runs backwards"),
        ("x * * * *", 'minute "x" is not valid: use numbers 0–59'),
        ("0 0 * foo *", 'month "foo" is not valid: use numbers 1–12, names like FEB'),
        ("0 0 31 2 *", 'day-of-month "31" never comes in the months given ("2")'),
        ("0 0 * * * *", "must be 5 fields"),
        ("0 0 * *", "(got 4 fields"),
        ("", "(got 0 fields"),
        ("@reboot", "(use run_on_start = true)"),
        ("@often", '"@often" is not a cron name'),
        ("0 0 */20 * 1L", "never fires"),
    ],
)
def test_bad_expressions_name_the_field(expr: str, message: str) -> None:
    with pytest.raises(Bad, match=None) as info:
        cron(expr)
    assert message in str(info.value)


def test_a_bad_expression_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(
            {"process": {"backup": {"command": ["b"], "oneshot": True, "schedule": "0 0 32 * *"}}},
            source="trinit.toml",
        )
    assert info.value.errors == ['trinit.toml: process "backup": schedule: day-of-month 32 out of range 1–31']


# ------------------------------------------------------------------------------ the zone


def test_zone_from_tz() -> None:
    assert zone_from_environ({}) is UTC
    assert zone_from_environ({"TZ": ""}) is UTC
    assert zone_from_environ({"TZ": "Europe/Riga"}) == RIGA
    assert zone_from_environ({"TZ": ":Europe/Riga"}) == RIGA
    assert (
        str(zone_from_environ({"TZ": "/usr/share/zoneinfo/Europe/Riga"})) == "/usr/share/zoneinfo/Europe/Riga"
    )
    with pytest.raises(ZoneError, match='TZ is "Mars/Base"'):
        zone_from_environ({"TZ": "Mars/Base"})
    with pytest.raises(ZoneError):
        zone_from_environ({"TZ": "../../etc/passwd"})


def test_an_unknown_tz_is_a_config_error_for_cron_jobs_only() -> None:
    processes = {
        "backup": {"command": ["b"], "oneshot": True, "schedule": "@daily"},
        "tick": {"command": ["t"], "oneshot": True, "every": "1m"},
    }
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"process": processes}, source="t.toml", environ={"TZ": "Mars/Base"})
    assert len(info.value.errors) == 1
    assert info.value.errors[0].startswith('t.toml: process "backup": schedule: TZ is "Mars/Base"')
    del processes["backup"]
    config_from_mapping({"process": processes}, source="t.toml", environ={"TZ": "Mars/Base"})


# ------------------------------------------------------------------------------ every


def test_every_is_a_fixed_grid() -> None:
    assert next_on_grid(100.0, 10.0, 100.0) == 110.0
    assert next_on_grid(100.0, 10.0, 109.9) == 110.0
    assert next_on_grid(100.0, 10.0, 110.0) == 120.0
    assert next_on_grid(100.0, 10.0, 145.0) == 150.0  # missed points are not made up
    assert next_on_grid(100.0, 0.1, 100.3) > 100.3


# ------------------------------------------------------------------------------ the keys


def job(**keys: object) -> ProcessSpec:
    return ProcessSpec("job", ["j"], **keys)  # type: ignore[arg-type]


def errors_of(**keys: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        job(**keys)
    return info.value.errors


def test_keys_and_defaults() -> None:
    spec = job(oneshot=True, schedule="0 3 * * *")
    assert spec.scheduled and spec.kind == "scheduled"
    assert (spec.jitter, spec.overlap, spec.run_on_start, spec.every) == (0.0, "skip", False, None)
    assert spec.on_failure == "ignore"  # the default of a scheduled job
    assert job(oneshot=True, every="15m", on_failure="shutdown").on_failure == "shutdown"
    spec = job(oneshot=True, every="1s", jitter="500ms", overlap="queue", run_on_start=True)
    assert (spec.every, spec.jitter, spec.overlap, spec.run_on_start) == (1.0, 0.5, "queue", True)
    assert job(oneshot=True).on_failure == "shutdown"  # a plain oneshot keeps its default


def test_rules_of_the_keys() -> None:
    assert errors_of(oneshot=True, schedule="@daily", every=60) == [
        'process "job": every: give schedule (cron times) or every (an interval), not both'
    ]
    assert errors_of(every=60) == [
        'process "job": every: only for oneshots: a scheduled job is a oneshot with schedule or every '
        "(add oneshot = true)"
    ]
    assert errors_of(main=True, schedule="@daily") == [
        'process "job": schedule: not allowed on the main process: its exit ends trinit'
    ]
    assert errors_of(oneshot=True, phase="stop", every=5) == [
        'process "job": every: not allowed on a stop job: it runs once, during the shutdown'
    ]
    assert errors_of(oneshot=True, jitter=5, overlap="queue") == [
        'process "job": jitter: only for scheduled jobs (a oneshot with schedule or every)',
        'process "job": overlap: only for scheduled jobs (a oneshot with schedule or every)',
    ]
    assert errors_of(oneshot=True, every=5, ready={"file": "/x"}) == [
        'process "job": ready: not allowed on a scheduled job: nothing waits for it to be ready'
    ]
    assert errors_of(oneshot=True, every=0, overlap="later", run_on_start="yes", jitter=-1) == [
        'process "job": every: must be more than 0 seconds (got 0)',
        'process "job": jitter: must not be negative (got -1)',
        'process "job": overlap: must be "skip" or "queue" (got \'later\')',
        "process \"job\": run_on_start: must be true or false (got 'yes')",
    ]


def test_nothing_can_wait_for_a_scheduled_job_but_a_stop_job_can_follow_it() -> None:
    tick = ProcessSpec("tick", ["t"], oneshot=True, every=60)
    with pytest.raises(ConfigError) as info:
        Config([tick, ProcessSpec("app", ["a"], after=["tick"])])
    assert info.value.errors == [
        'process "app": after: "tick" is a scheduled job: it runs again and again, so nothing can wait for it'
    ]
    Config([tick, ProcessSpec("flush", ["f"], oneshot=True, phase="stop", after=["tick"])])


# ------------------------------------------------------------------------------ trinit check


def test_check_prints_the_next_three_fire_times() -> None:
    config = Config(
        [
            ProcessSpec("app", ["app"]),
            ProcessSpec("backup", ["backup"], oneshot=True, schedule="30 3 * * *", jitter="30s"),
            ProcessSpec("snap", ["snap"], oneshot=True, every="15m", overlap="queue", after=["app"]),
        ]
    )
    text = render_plan(make_plan(config), now=at("2030-03-30 12:00", RIGA), environ={"TZ": "Europe/Riga"})
    assert "  backup  scheduled  backup  [schedule 30 3 * * *; jitter 30 s]\n" in text
    assert "  snap    scheduled  snap  [every 900 s; overlap queue]\n" in text
    assert (
        "Scheduled jobs (the next three fire times in Europe/Riga; an every grid from now):\n"
        "  backup  2030-03-31T04:00:00+03:00, 2030-04-01T03:30:00+03:00, 2030-04-02T03:30:00+03:00\n"
        "  snap    2030-03-30T12:15:00+02:00, 2030-03-30T12:30:00+02:00, 2030-03-30T12:45:00+02:00\n"
    ) in text
    utc = render_plan(make_plan(config), now=at("2030-03-30 12:00"), environ={})
    assert "fire times in UTC" in utc and "2030-03-31T03:30:00+00:00" in utc


def test_check_needs_no_zone_for_every_jobs_and_says_when_tz_is_bad() -> None:
    every = make_plan(Config([ProcessSpec("tick", ["t"], oneshot=True, every=60)]))
    text = render_plan(every, now=at("2030-01-01 00:00"), environ={"TZ": "Mars/Base"})
    assert "  tick  2030-01-01T00:01:00+00:00, 2030-01-01T00:02:00+00:00, 2030-01-01T00:03:00+00:00\n" in text
    cron_plan = make_plan(Config([ProcessSpec("b", ["b"], oneshot=True, schedule="@daily")]))
    text = render_plan(cron_plan, now=at("2030-01-01 00:00"), environ={"TZ": "Mars/Base"})
    assert 'Scheduled jobs: TZ is "Mars/Base"' in text
