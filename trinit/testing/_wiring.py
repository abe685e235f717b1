"""Wiring a real Runtime to the fakes: :func:`make_supervisor` and :func:`run_supervisor`.

The one place that knows the Runtime's constructor, so a change there is fixed here once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import trio

from ..config.plan import make_plan
from ..runtime.options import RuntimeOptions
from ..runtime.supervisor import Runtime
from ._fake_log import FakeLog
from ._wall_clock import FakeWallClock

if TYPE_CHECKING:
    from ..config.model import Config
    from ..io.log import Logger
    from ..system.wallclock import WallClock
    from ._fake_os import FakeOS


def make_supervisor(
    config: Config,
    fake: FakeOS,
    *,
    log: Logger | None = None,
    options: RuntimeOptions | None = None,
    environ: Mapping[str, str] | None = None,
    wall_clock: WallClock | None = None,
) -> Runtime:
    """A Runtime for ``config`` on ``fake``, with the fake's reaper as its exit watcher.

    ``log`` defaults to a new :class:`FakeLog`; ``environ`` to a bare PATH, so spawn records
    do not depend on the test runner's environment; ``wall_clock`` to a :class:`FakeWallClock`
    (scheduled jobs' cron times then follow trio's clock from 2030-01-01T00:00Z).
    """
    log = log if log is not None else FakeLog()
    return Runtime(
        make_plan(config),
        os_layer=fake,
        log=log,
        options=options or RuntimeOptions(),
        environ={"PATH": "/usr/bin:/bin"} if environ is None else environ,
        watcher=fake.make_watcher(log),
        wall_clock=wall_clock if wall_clock is not None else FakeWallClock(),
    )


async def run_supervisor(
    config: Config,
    fake: FakeOS,
    *,
    log: Logger | None = None,
    options: RuntimeOptions | None = None,
    environ: Mapping[str, str] | None = None,
    wall_clock: WallClock | None = None,
    at: Sequence[tuple[float, Callable[[Runtime], object]]] = (),
) -> int:
    """Run ``config`` on ``fake`` to the end and return the exit code.

    ``at`` holds (time, action) pairs: ``action(supervisor)`` is called at that time of
    trio's clock (``lambda sup: sup.request_shutdown("test")``), unless the run is over.
    """
    sup = make_supervisor(config, fake, log=log, options=options, environ=environ, wall_clock=wall_clock)

    async def later(when: float, action: Callable[[Runtime], object]) -> None:
        await trio.sleep_until(when)
        action(sup)

    async with trio.open_nursery() as nursery:
        for when, action in at:
            nursery.start_soon(later, when, action)
        code = await sup.run()
        nursery.cancel_scope.cancel()
    return code
