"""What ``trinit ctl`` shows people: ages, the status table and event lines, at a fixed "now"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trinit.boot.ctl_render import age, event_line, status_table

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (86399, "23h"),
        (86400, "1d"),
        (10 * 86400, "10d"),
    ],
)
def test_age_shows_the_largest_whole_unit(seconds: float, shown: str) -> None:
    assert age(seconds) == shown


def row(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "app",
        "kind": "service",
        "state": "running",
        "pid": 7,
        "restarts": 0,
        "since": "2026-01-01T11:59:48+00:00",
        "last_exit": None,
        "health": None,
        "status_text": None,
        "next_run": None,
    }
    return {**base, **fields}


def test_status_table_columns_are_as_wide_as_their_widest_cell() -> None:
    text = status_table([row(), row(name="a-much-longer-name", pid=123456, restarts=12)], NOW)
    assert text.splitlines() == [
        "NAME                KIND     STATE       PID  SINCE  RESTARTS  LAST EXIT",
        "app                 service  running       7  12s           0  -",
        "a-much-longer-name  service  running  123456  12s          12  -",
    ]


def test_since_in_another_offset_is_the_same_instant() -> None:
    assert status_table([row(since="2026-01-01T14:57:00+03:00")], NOW).splitlines()[1].split()[4] == "3m"


def test_last_exit_shows_a_code_or_a_signal_name() -> None:
    lines = status_table(
        [row(last_exit={"code": 0}), row(last_exit={"signal": "KILL"}), row(last_exit={"signal": "SIGTERM"})],
        NOW,
    ).splitlines()
    assert [line.split()[6] for line in lines[1:]] == ["0", "SIGKILL", "SIGTERM"]


def test_next_run_and_status_text_share_the_info_column() -> None:
    text = status_table(
        [
            row(kind="scheduled", next_run="2026-01-01T15:30:00Z", status_text="last: 12 files"),
            row(kind="scheduled", next_run="2026-01-03T03:00:00Z"),
            row(kind="scheduled", next_run="2026-01-01T11:00:00Z"),
        ],
        NOW,
    )
    lines = text.splitlines()
    assert lines[0].split()[-1] == "INFO"
    assert lines[1].endswith("(in 3h); last: 12 files")
    assert lines[2].endswith("(in 1d)") and "next run 2026-01-0" in lines[2]
    assert lines[3].endswith("(due)")


def test_cells_of_unexpected_types_are_shown_not_raised_on() -> None:
    text = status_table(["odd", row(pid="?", since="yesterday", last_exit=[1], restarts=None, health=1)], NOW)
    lines = text.splitlines()
    assert lines[1].split() == ["odd", "-", "-", "-", "-", "-", "-", "-"]
    assert lines[2].split() == ["app", "service", "running", "?", "yesterday", "-", "[1]", "1"]


def test_control_characters_never_reach_the_terminal() -> None:
    text = status_table([row(name="a\nb", status_text="\x1b]0;pwned\x07\u2028")], NOW)
    assert len(text.splitlines()) == 2
    assert "\x1b" not in text and "\u2028" not in text
    line = event_line(
        {"ts": "2026-01-01T12:00:00Z", "process": "x", "pid": None, "message": "bad\x1b[2J\nline"}
    )
    assert "\n" not in line and "\x1b" not in line


def test_event_line_falls_back_when_a_field_is_missing() -> None:
    assert event_line(
        {"ts": "2026-01-01T12:00:00Z", "event": "state", "process": "a", "pid": 3, "state": "stopped"}
    ).endswith(" a (pid 3) is now stopped")
    assert event_line({"event": "state", "process": "a", "state": "x", "message": "went x"}).endswith(
        " a went x"
    )
    assert event_line({"event": "hook", "process": "a"}).endswith(" a hook")
    assert event_line({"event": "overflow"}).endswith(" this follower fell behind: the stream ends here")
    assert event_line({"ts": "not a time", "level": "warning", "message": "m"})[8:] == " warning: m"
