"""Shared helpers of the logic tests that run the runtime on trinit.testing's fakes."""

from __future__ import annotations

import signal
from collections.abc import Callable

import trio

from trinit.runtime.supervisor import Runtime
from trinit.testing import Behaviour, Exit, FakeOS


async def settle() -> None:
    """Let the fake's exits due now happen (they run in trio system tasks)."""
    for _ in range(3):
        await trio.lowlevel.checkpoint()


def stop_at(when: float) -> list[tuple[float, Callable[[Runtime], object]]]:
    """A ``run_supervisor(at=...)`` schedule that begins the shutdown at ``when``."""
    return [(when, lambda sup: sup.request_shutdown("test"))]


def sent(fake: FakeOS, name: str) -> list[tuple[float, int]]:
    """(time, signal) of every signal sent to process ``name``."""
    return [(s.time, s.signal) for s in fake.signals_to(name)]


def term_after(delay: float) -> Behaviour:
    """Runs until SIGTERM, then takes ``delay`` seconds to exit 0."""
    return Behaviour.forever(on_signal={signal.SIGTERM: Exit(code=0, delay=delay)})
