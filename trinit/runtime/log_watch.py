"""The watch of a ``ready = { log = "regex" }`` process's output (SPEC §4).

Apart from :mod:`.readiness`: every runner is made with its watch (None for all but a log
probe), and a run without readiness probes never loads the probes themselves.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from ..config.model import ProcessSpec


def log_watch_for(spec: ProcessSpec) -> LogWatch | None:
    """The watch of a ``ready = { log = "regex" }`` process's output, else None."""
    if spec.ready is None or spec.ready.kind != "log":
        return None
    assert isinstance(spec.ready.target, str)
    return LogWatch(spec.ready.target)


class LogWatch:
    """Matches a process's output lines against the ``ready.log`` regex.

    The runtime feeds every line; ``matched`` is set on the first match. It lives as long as
    the process's output pipe, so one object serves every run of a restarting process.
    """

    def __init__(self, pattern: str | re.Pattern[str]) -> None:
        # A compiled pattern (``LogProbe.pattern``) is used as it is.
        self._regex = re.compile(pattern)
        self.pattern = self._regex.pattern
        self.matched = trio.Event()

    def feed(self, line: str) -> None:
        """Look at one output line; cheap once matched, since every line of a long life passes here."""
        if self.matched.is_set():
            return
        # Strip the line ending so "ready$" also matches a CRLF line.
        if self._regex.search(line.rstrip("\r\n")):
            self.matched.set()

    def reset(self) -> None:
        """Start over for a restarted process.

        An unset Event is kept rather than replaced, so a :func:`wait_ready` already waiting on
        it still sees the next match instead of waiting on an orphaned Event until its timeout.
        """
        if self.matched.is_set():
            self.matched = trio.Event()
