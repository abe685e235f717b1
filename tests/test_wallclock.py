"""The real wall clock of scheduled jobs (trinit/system/wallclock.py): a timerfd on CLOCK_REALTIME
that wakes trinit only when the clock is set, never on its own.

Setting the machine's clock to see the ECANCELED path is not done here (it would disturb every
other program); the timer's expiry takes the same path (a read, a re-arm, a return), and the
scheduler's reaction to a jump is tested on FakeWallClock in test_scheduler.py.
"""

from __future__ import annotations

import time

import trio

from trinit.system.wallclock import FAR_AWAY, RealWallClock


async def test_now_is_the_wall_clock() -> None:
    assert abs(RealWallClock().now() - time.time()) < 1


async def test_no_wakeup_while_the_clock_is_not_set() -> None:
    clock = RealWallClock()
    try:
        with trio.move_on_after(0.3) as scope:
            await clock.wait_jump()
        assert scope.cancelled_caught
    finally:
        clock.close()


async def test_a_timer_that_expires_counts_as_a_jump_and_is_armed_again() -> None:
    clock = RealWallClock()
    try:
        with trio.move_on_after(0.05):
            await clock.wait_jump()  # opens and arms it far away
        clock.arm(time.time() + 0.05)
        with trio.fail_after(5):
            await clock.wait_jump()
        with trio.move_on_after(0.2) as scope:  # armed at FAR_AWAY again: no second return
            await clock.wait_jump()
        assert scope.cancelled_caught
    finally:
        clock.close()
        clock.close()  # closing twice is fine
    assert time.time() + 100 * 365 * 86400 < FAR_AWAY
