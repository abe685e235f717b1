"""Waking the writer thread once per burst of lines instead of once per line.

The writer thread (:mod:`.writer`) sleeps on a condition while nothing is queued. Woken at
each line, it takes the GIL at every syscall trio's thread makes meanwhile: while 10,000
processes start (a line each), each ``pipe()`` of a spawn took 4 to 20 times longer. Inside
trio the bell therefore rings once trio's current steps are done (one ``run_sync_soon``), or
at once when much is queued; outside trio (before it, a signal handler after it) at once.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import trio


class Doorbell:
    """Wakes the thread waiting on ``condition`` while ``pending()`` (both under its lock)."""

    def __init__(self, condition: threading.Condition, pending: Callable[[], bool]) -> None:
        self._condition = condition
        self._pending = pending
        #: The thread waits for a ring (set by the thread, cleared by whoever rings).
        self.asleep = False
        #: The trio run that will ring once its current steps are done.
        self._token: trio.lowlevel.TrioToken | None = None

    def ring_soon(self, eager: bool) -> None:
        """Ring now (``eager``, or outside trio), else once trio's current steps are done."""
        if not self.asleep:
            return
        token = _trio_token()
        if token is None or eager or self._token not in (None, token):
            self.ring()
        elif self._token is None:
            try:
                token.run_sync_soon(self._ring_later)
            except Exception:  # trio.RunFinishedError: that run is over
                self.ring()
                return
            self._token = token

    def ring(self) -> None:
        """Wake the thread now (the lock is held)."""
        if self.asleep:
            self.asleep = False
            self._condition.notify()

    def _ring_later(self) -> None:
        with self._condition:
            self._token = None
            if self._pending():
                self.ring()


def _trio_token() -> trio.lowlevel.TrioToken | None:
    """The trio run of the calling thread, if it runs one (never imports trio)."""
    module = sys.modules.get("trio")
    if module is None:
        return None
    try:
        token: trio.lowlevel.TrioToken = module.lowlevel.current_trio_token()
    except RuntimeError:
        return None
    return token
