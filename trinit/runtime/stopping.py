"""The one place that ends processes: stop signal, grace, SIGKILL.

Every stop in the runtime (a runner's stop, the shutdown, readiness and ``timeout``
failures, exec-probe clean-up, a forced shutdown, the final sweep) goes through
:func:`terminate` or :func:`sweep`; nothing else sends SIGKILL. A forced shutdown sets
the ``force`` event and every terminate under way cuts its grace short.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from ..boot.parse import signal_name

if TYPE_CHECKING:
    from ..config.model import ProcessSpec
    from ..io.log import Logger
    from ..system.protocol import OSLayer
    from ..system.reaper import ExitWatcher
    from .process import ProcessHandle


def stop_signal_for(spec: ProcessSpec, shutdown_signal: int | None = None) -> int:
    """The signal that asks ``spec``'s process to stop.

    Its own ``stop_signal``; else, for the main process, the signal that began the
    shutdown (so a ``docker stop -s SIGQUIT`` reaches it as SIGQUIT); else SIGTERM.
    """
    sig = spec.stop_signal
    if sig is None and spec.main:
        sig = shutdown_signal
    return sig or signal.SIGTERM


async def terminate(
    handle: ProcessHandle, sig: int, grace: float, force: trio.Event, log: Logger | None
) -> None:
    """Send ``sig``, wait up to ``grace`` (cut short by ``force``), then SIGKILL; return once reaped.

    Once ``force`` is set there is no grace: SIGKILL at once. ``log`` None stops quietly
    (an exec probe that outlived its timeout). A process group (``signal_group``) has stopped
    only when all of it is gone, as systemd waits for an empty cgroup (SPEC §5.2).
    """
    if handle.gone:
        return
    handle.stops += 1
    try:
        await _escalate(handle, sig, grace, force, log)
    finally:
        handle.stops -= 1


async def _escalate(
    handle: ProcessHandle, sig: int, grace: float, force: trio.Event, log: Logger | None
) -> None:
    forced = force.is_set()
    if sig != signal.SIGKILL and not forced:
        if log is not None:
            log.info(
                "stopping",
                f"stopping with {signal_name(sig)} (grace {grace:g} s)",
                process=handle.name,
                pid=handle.pid,
                signal=signal_name(sig),
                grace=grace,
            )
        try:
            handle.signal(sig)
        except ProcessLookupError:
            return
        with trio.move_on_after(grace):
            await _first(handle.wait_gone, force.wait)
        if handle.gone:
            return
        forced = force.is_set()
    if log is not None:
        if forced:
            why = "the shutdown was forced"
        elif handle.exited:
            why = f"its process group was still there {grace:g} s after {signal_name(sig)} (raise stop_timeout)"
        else:
            why = f"it ignored {signal_name(sig)} for {grace:g} s (raise stop_timeout if it needs longer)"
        log.warning("killed", f"sending SIGKILL: {why}", process=handle.name, pid=handle.pid, grace=grace)
    try:
        handle.signal(signal.SIGKILL)
    except ProcessLookupError:
        return
    await handle.wait_gone()


async def sweep(
    os_layer: OSLayer,
    watcher: ExitWatcher,
    force: trio.Event,
    log: Logger,
    spare_groups: frozenset[int] = frozenset(),
) -> None:
    """SIGTERM whatever is left in our tree (as PID 1: the namespace), at once SIGKILL too if
    the shutdown is forced, and return once it is all gone. Only for a watcher that reaps orphans.

    ``spare_groups``: process groups that already got their stop signal as a group; their
    members get no second one (SPEC §3), only SIGKILL if the shutdown is forced or runs out."""
    left = os_layer.descendants()
    if not left:
        return
    log.info(
        "sweep",
        f"sending SIGTERM to {len(left)} process(es) left behind (pids {', '.join(map(str, left[:10]))}"
        f"{', …' if len(left) > 10 else ''})",
        pids=left[:100],
    )
    os_layer.kill_all(signal.SIGTERM, spare_groups)
    if force.is_set():
        kill_everything(os_layer)
    await watcher.wait_no_children()


def kill_everything(os_layer: OSLayer) -> None:
    """SIGKILL every process left in our tree (a forced shutdown with orphans to reap)."""
    os_layer.kill_all(signal.SIGKILL)


async def _first(*waits: Callable[[], Awaitable[object]]) -> None:
    """Return as soon as the first of ``waits`` returns."""
    async with trio.open_nursery() as nursery:

        async def one(wait: Callable[[], Awaitable[object]]) -> None:
            await wait()
            nursery.cancel_scope.cancel()

        for wait in waits:
            nursery.start_soon(one, wait)
