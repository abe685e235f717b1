"""trinit's own event lines on stderr (SPEC §6), text or JSON, never blocking trinit.

Usable before trio is imported (the CLI's fast start), inside trio, and after ``trio.run``
returned: nothing here needs trio (a config error is reported without loading it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from .._text import escape_controls, escape_json_controls, who
from .writer import FdWriter, stdio_writer

if TYPE_CHECKING:
    from ..config.model import LogFormat

Level = Literal["debug", "info", "warning", "error"]

__all__ = ["Level", "Logger", "rfc3339_utc"]

_RANK = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_TEXT_TAG = {"debug": "", "info": "", "warning": "warning: ", "error": "error: "}
_RESERVED = frozenset({"ts", "level", "event", "process", "pid", "message"})


def rfc3339_utc(t: float | None = None) -> str:
    """RFC 3339 UTC timestamp with milliseconds (``2024-05-01T12:00:00.123Z``), without datetime."""
    if t is None:
        t = time.time()
    secs = int(t)
    ms = int((t - secs) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"


def _threshold(verbosity: int) -> int:
    if verbosity >= 1:
        return _RANK["debug"]
    if verbosity == 0:
        return _RANK["info"]
    if verbosity == -1:
        return _RANK["warning"]
    return _RANK["error"]


class Logger:
    """trinit's own event lines on stderr (SPEC §6): text or JSON, never blocking trinit.

    Text: ``trinit: app (pid 12) exited with code 3``; ``trinit: app <message>`` without a
    pid; ``trinit: <message>`` without a process; warnings and errors read
    ``trinit: warning: ...`` / ``trinit: error: ...``. Extra fields appear only in JSON.

    JSON: one object a line with the keys ``ts`` (RFC 3339 UTC, ms), ``level``, ``event``,
    ``process``, ``pid``, ``message``, then the event's fields. ``process`` and ``pid`` are
    always present (``null`` when not about a process) so every line has the same shape.
    Field values JSON cannot encode are written as ``str(value)``; a field named like a
    base key is written with a trailing ``_`` instead of overriding it.

    Lines go to the writer with ``put_nowait``: when stderr stalls they wait in its bounded
    queue, and lines that do not fit are counted. The next line accepted is preceded by
    ``trinit: N log lines were dropped because stderr was not being read`` (JSON: event
    ``log_dropped`` with field ``count``).
    """

    def __init__(
        self, *, log_format: LogFormat = "text", verbosity: int = 0, writer: FdWriter | None = None
    ) -> None:
        self.log_format: LogFormat = log_format
        self.verbosity = verbosity
        self._writer = writer
        #: Lines dropped since the last one that got through (reported then reset).
        self.dropped = 0
        #: Gets every event but debug ones as a dict, whatever the verbosity (the event
        #: stream of SPEC §8); None while nobody follows.
        self.listener: Callable[[dict[str, object]], None] | None = None

    @property
    def writer(self) -> FdWriter:
        """Where lines go; by default the shared stderr writer (``stdio_writer(2)``), made on first use.

        Sharing it with the stderr output pumps keeps trinit's lines and children's
        prefixed lines whole and in one order.
        """
        if self._writer is None:
            self._writer = stdio_writer(2)
        return self._writer

    def enabled(self, level: Level) -> bool:
        """Whether a line at ``level`` would be written (to skip building costly messages)."""
        return _RANK[level] >= _threshold(self.verbosity)

    def log(
        self,
        level: Level,
        event: str,
        message: str,
        *,
        process: str | None = None,
        pid: int | None = None,
        **fields: object,
    ) -> None:
        """Write one event line if ``level`` passes the verbosity filter; never blocks."""
        if self.listener is not None and level != "debug":
            self.listener(self._event(level, event, message, process, pid, fields))
        if _RANK[level] < _threshold(self.verbosity):
            return
        line = self._format(level, event, message, process, pid, fields)
        writer = self.writer
        if self.dropped and not self._report_dropped(writer):
            self.dropped += 1
            return
        if not writer.put_nowait(line):
            self.dropped += 1

    def debug(
        self,
        event: str,
        message: str,
        *,
        process: str | None = None,
        pid: int | None = None,
        **fields: object,
    ) -> None:
        self.log("debug", event, message, process=process, pid=pid, **fields)

    def info(
        self,
        event: str,
        message: str,
        *,
        process: str | None = None,
        pid: int | None = None,
        **fields: object,
    ) -> None:
        self.log("info", event, message, process=process, pid=pid, **fields)

    def warning(
        self,
        event: str,
        message: str,
        *,
        process: str | None = None,
        pid: int | None = None,
        **fields: object,
    ) -> None:
        self.log("warning", event, message, process=process, pid=pid, **fields)

    def error(
        self,
        event: str,
        message: str,
        *,
        process: str | None = None,
        pid: int | None = None,
        **fields: object,
    ) -> None:
        self.log("error", event, message, process=process, pid=pid, **fields)

    def close(self, timeout: float = 1.0) -> None:
        """Flush what is queued, waiting at most ``timeout`` seconds (blocking).

        A pending count of dropped lines is reported first if the queue has room for it.
        The logger stays usable afterwards.
        """
        if self._writer is None:
            return
        if self.dropped:
            self._report_dropped(self._writer)
        self._writer.close(timeout)

    # -- internals ----------------------------------------------------------------------

    def _report_dropped(self, writer: FdWriter) -> bool:
        count = self.dropped
        notice = self._format(
            "warning",
            "log_dropped",
            f"{count} log lines were dropped because stderr was not being read",
            None,
            None,
            {"count": count},
        )
        if writer.put_nowait(notice):
            self.dropped = 0
            return True
        return False

    @staticmethod
    def _event(
        level: Level,
        event: str,
        message: str,
        process: str | None,
        pid: int | None,
        fields: dict[str, object],
    ) -> dict[str, object]:
        obj: dict[str, object] = {
            "ts": rfc3339_utc(),
            "level": level,
            "event": event,
            "process": process,
            "pid": pid,
            "message": message,
        }
        for key, value in fields.items():
            obj[key + "_" if key in _RESERVED else key] = value
        return obj

    def _format(
        self,
        level: Level,
        event: str,
        message: str,
        process: str | None,
        pid: int | None,
        fields: dict[str, object],
    ) -> bytes:
        if self.log_format == "json":
            import json  # only for log_format = "json": a text log never loads it

            obj = self._event(level, event, message, process, pid, fields)
            text = escape_json_controls(
                json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)
            )
        else:
            # A process name or command may hold "\n" or a terminal escape: one event, one line.
            text = escape_controls(f"trinit: {_TEXT_TAG[level]}{who(process, pid)}{message}")
        return text.encode("utf-8", "backslashreplace") + b"\n"
