"""What ``trinit ctl`` prints for people: the status table and one line per event.

The values come from another process (a ``STATUS=`` text is whatever the program sent), so
every cell and line is shown with its control characters escaped: nothing reaches the
terminal raw, and one process stays one row. Fields of an unexpected type are shown as text,
never a traceback: a newer trinit may send more, or other, fields.
"""

from __future__ import annotations

import datetime as _dt

from .._text import escape_controls, who

__all__ = ["age", "event_line", "status_table"]

_LEVEL_TAG = {"warning": "warning: ", "error": "error: "}
#: Columns whose cells line up on the right.
_NUMERIC = frozenset({"PID", "RESTARTS"})


def _parse_time(value: object) -> _dt.datetime | None:
    """An ISO 8601 time with its offset (``Z`` or ``+01:00``); None if absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = _dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:  # the protocol says there is an offset; assume UTC if a server forgot
        when = when.replace(tzinfo=_dt.UTC)
    return when


def age(seconds: float) -> str:
    """``12s``, ``3m``, ``2h``, ``4d``: the largest whole unit, as ``docker ps`` and kubectl show it."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        return f"{whole // 3600}h"
    return f"{whole // 86400}d"


def _text(value: object) -> str:
    if value is None or value == "":
        return "-"
    return escape_controls(str(value))


def _last_exit(value: object) -> str:
    if isinstance(value, dict):
        if "code" in value:
            return _text(value["code"])
        if "signal" in value:
            name = str(value["signal"])
            return _text(name if name.startswith(("SIG", "signal")) else f"SIG{name}")
    return _text(value)


def _next_run(value: object, now: _dt.datetime) -> str:
    when = _parse_time(value)
    if when is None:
        return "" if value is None else f"next run {_text(value)}"
    local = when.astimezone()
    left = (when - now).total_seconds()
    shown = local.strftime("%H:%M:%S" if left < 86400 else "%Y-%m-%d %H:%M")
    return f"next run {shown} (in {age(left)})" if left > 0 else f"next run {shown} (due)"


def _since(value: object, now: _dt.datetime) -> str:
    when = _parse_time(value)
    return age((now - when).total_seconds()) if when is not None else _text(value)


def status_table(processes: list[object], now: _dt.datetime | None = None) -> str:
    """The rows of ``status``, columns sized to their content; HEALTH and INFO only when some
    process has one (a scheduled job's next run, a ``STATUS=`` text)."""
    now = now or _dt.datetime.now(_dt.UTC)
    header = ["NAME", "KIND", "STATE", "PID", "SINCE", "RESTARTS", "LAST EXIT", "HEALTH", "INFO"]
    rows: list[list[str]] = []
    for item in processes:
        p = item if isinstance(item, dict) else {"name": item}
        info = [part for part in (_next_run(p.get("next_run"), now), p.get("status_text")) if part]
        rows.append(
            [
                _text(p.get("name")),
                _text(p.get("kind")),
                _text(p.get("state")),
                _text(p.get("pid")),
                _since(p.get("since"), now),
                _text(p.get("restarts")),
                _last_exit(p.get("last_exit")),
                _text(p.get("health")),
                escape_controls("; ".join(str(part) for part in info)),
            ]
        )
    keep = [
        i
        for i, title in enumerate(header)
        if title not in ("HEALTH", "INFO") or any(row[i] not in ("", "-") for row in rows)
    ]
    table = [[header[i] for i in keep], *([row[i] for i in keep] for row in rows)]
    widths = [max(len(line[c]) for line in table) for c in range(len(keep))]
    lines = []
    for line in table:
        cells = [
            cell.rjust(width) if header[keep[c]] in _NUMERIC else cell.ljust(width)
            for c, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _clock(value: object) -> str:
    when = _parse_time(value)
    if when is None:
        return _dt.datetime.now().strftime("%H:%M:%S")
    return when.astimezone().strftime("%H:%M:%S")


def event_line(event: dict[str, object]) -> str:
    """``12:00:01 app (pid 12) exited with code 3``: trinit's own log line, in local time.

    A ``state`` event without a message reads ``app (pid 12) is now ready``.
    """
    process, pid = event.get("process"), event.get("pid")
    message = event.get("message")
    if not message:
        if event.get("event") == "state":
            message = f"is now {event.get('state')}"
        elif event.get("event") == "overflow":
            message = "this follower fell behind: the stream ends here"
        else:
            message = str(event.get("event", "event"))
    tag = _LEVEL_TAG.get(str(event.get("level")), "")
    return escape_controls(f"{_clock(event.get('ts'))} {tag}{who(process, pid)}{message}")
