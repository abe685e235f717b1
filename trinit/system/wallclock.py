"""The wall clock of scheduled jobs: its time, and a no-poll signal when it jumps.

Cron fire times are wall-clock times, but trinit waits for them on trio's monotonic clock,
which an NTP step, ``date -s`` or a suspend does not move. :class:`RealWallClock` tells the
scheduler when the wall clock was set, without polling: a ``timerfd`` on ``CLOCK_REALTIME``
armed far in the future with ``TFD_TIMER_CANCEL_ON_SET``, whose read fails with ``ECANCELED``
as soon as the clock is set discontinuously (``settimeofday``, ``clock_settime``, an NTP
step, and the resume from a suspend). It never fires otherwise: zero wakeups.
:class:`trinit.testing.FakeWallClock` is the fake, on trio's clock.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from typing import Protocol

import trio

CLOCK_REALTIME = 0
TFD_CLOEXEC = os.O_CLOEXEC
TFD_NONBLOCK = os.O_NONBLOCK
TFD_TIMER_ABSTIME = 1
TFD_TIMER_CANCEL_ON_SET = 2
#: Where the timer is armed: year 2200, past anything trinit will see (it only waits to be cancelled).
FAR_AWAY = 7_258_118_400


class WallClock(Protocol):
    """What the scheduler needs from the wall clock."""

    def now(self) -> float:
        """The wall-clock time, in seconds since the epoch."""
        ...

    async def wait_jump(self) -> None:
        """Return once the wall clock has been set (stepped, or resumed after a suspend).

        Raises ``OSError`` when jumps cannot be watched here (then only the next fire time
        notices a jump).
        """
        ...

    def close(self) -> None: ...


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class RealWallClock:
    """``time.time()``, and a ``timerfd`` that is cancelled when the clock is set."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._libc: ctypes.CDLL | None = None

    def now(self) -> float:
        return time.time()

    async def wait_jump(self) -> None:
        fd = self._open()
        while True:
            await trio.lowlevel.wait_readable(fd)
            try:
                os.read(fd, 8)  # the timer expired: the clock went past FAR_AWAY, a jump too
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno != errno.ECANCELED:
                    raise
            self.arm(FAR_AWAY)  # a cancelled timer stays so until it is armed again
            return

    def _open(self) -> int:
        if self._fd is None:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = int(libc.timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC))
            if fd < 0:
                code = ctypes.get_errno()
                raise OSError(code, f"timerfd_create: {os.strerror(code)}")
            self._fd, self._libc = fd, libc
            try:
                self.arm(FAR_AWAY)
            except OSError:
                self.close()
                raise
        return self._fd

    def arm(self, at: float) -> None:
        """Arm the timer to expire at wall-clock time ``at`` (and be cancelled by any jump)."""
        assert self._fd is not None and self._libc is not None
        spec = _Itimerspec()
        spec.it_value.tv_sec = int(at)
        spec.it_value.tv_nsec = int((at - int(at)) * 1e9)
        flags = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET
        if self._libc.timerfd_settime(self._fd, flags, ctypes.byref(spec), None) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"timerfd_settime: {os.strerror(code)}")

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                trio.lowlevel.notify_closing(fd)  # a task may still wait on it
            except RuntimeError:  # outside trio: nobody waits
                pass
            os.close(fd)
