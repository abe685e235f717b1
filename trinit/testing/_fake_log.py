"""A capturing log: every event kept, hooks run the moment an event is logged."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs
import trio

from ..io.log import Level, Logger


@attrs.frozen
class LogEvent:
    """One event trinit logged."""

    time: float | None
    level: Level
    event: str
    message: str
    process: str | None
    pid: int | None
    fields: Mapping[str, object]

    def __str__(self) -> str:
        who = f" {self.process}" if self.process else ""
        when = "-" if self.time is None else f"{self.time:g}"
        return f"[{when}] {self.level} {self.event}{who}: {self.message}"


class FakeLog(Logger):
    """A :class:`~trinit.io.log.Logger` that keeps every event (all levels) instead of writing.

    ``hooks`` (see :meth:`on`) run synchronously when a matching event is logged: a test
    can act at the exact moment something happens.
    """

    def __init__(self, *, verbosity: int = 1) -> None:
        super().__init__(log_format="text", verbosity=verbosity)
        self.events: list[LogEvent] = []
        self._hooks: list[tuple[str, str | None, Callable[[LogEvent], None]]] = []

    def enabled(self, level: Level) -> bool:
        return True

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
        try:
            when: float | None = trio.current_time()
        except RuntimeError:
            when = None
        entry = LogEvent(when, level, event, message, process, pid, dict(fields))
        self.events.append(entry)
        if self.listener is not None and level != "debug":  # the event stream, as Logger feeds it
            self.listener(self._event(level, event, message, process, pid, fields))
        for name, who, hook in list(self._hooks):
            if name == event and (who is None or who == process):
                hook(entry)

    def close(self, timeout: float = 1.0) -> None:
        """Nothing is queued."""

    def on(self, event: str, hook: Callable[[LogEvent], None], *, process: str | None = None) -> None:
        """Call ``hook(entry)`` whenever ``event`` (of ``process``, if given) is logged."""
        self._hooks.append((event, process, hook))

    def find(self, event: str | None = None, process: str | None = None) -> list[LogEvent]:
        """The events named ``event`` (any if None) about ``process`` (any if None)."""
        return [
            e
            for e in self.events
            if (event is None or e.event == event) and (process is None or e.process == process)
        ]

    def first(self, event: str, process: str | None = None) -> LogEvent:
        """The first matching event; AssertionError listing the log when there is none."""
        found = self.find(event, process)
        if not found:
            raise AssertionError(f"no {event!r} event for {process!r} in the log:\n{self.dump()}")
        return found[0]

    def dump(self) -> str:
        """The whole log, one event a line, for assertion messages."""
        return "\n".join(map(str, self.events))
