"""A wall clock on trio's clock, that a test can step: :class:`FakeWallClock`."""

from __future__ import annotations

import trio

#: 2030-01-01T00:00:00Z: where a FakeWallClock starts by default (a fixed moment: exact fire times).
START = 1_893_456_000.0


class FakeWallClock:
    """The :class:`~trinit.system.wallclock.WallClock` of tests: ``start`` plus trio's clock.

    With ``MockClock(autojump_threshold=0)`` the wall clock moves with the mock clock, so
    a cron job due in a day fires at once, at the exact time. :meth:`jump` steps it (an NTP
    step, a suspend) and wakes :meth:`wait_jump`, as the real clock's timerfd does.
    """

    def __init__(self, start: float = START) -> None:
        self.start = start
        self.offset = 0.0
        #: Each jump (seconds, + forward) in order.
        self.jumps: list[float] = []
        self._jumped = trio.Event()

    def now(self) -> float:
        return self.start + self.offset + trio.current_time()

    def jump(self, seconds: float) -> None:
        """Step the wall clock by ``seconds`` (negative: back); trio's clock does not move."""
        self.offset += seconds
        self.jumps.append(seconds)
        self._jumped.set()
        self._jumped = trio.Event()

    def set(self, when: float) -> None:
        """Step the wall clock to ``when`` (epoch seconds)."""
        self.jump(when - self.now())

    async def wait_jump(self) -> None:
        await self._jumped.wait()

    def close(self) -> None:
        pass
