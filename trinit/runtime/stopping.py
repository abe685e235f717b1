"""The one place that ends processes: stop signal, grace, SIGKILL.

Every stop in the runtime (a runner's stop, the shutdown, readiness and ``timeout``
failures, exec-probe clean-up, a forced shutdown, the final sweep) goes through
:func:`terminate` or :func:`sweep`; nothing else sends SIGKILL. A forced shutdown sets
the ``force`` event and every terminate under way cuts its grace short.
"""

from __future__ import annotations

import contextlib
import math
import signal
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
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
    if not handle.gone:
        await terminate_all((handle,), sig, grace, force, log)


async def terminate_all(
    handles: Sequence[ProcessHandle], sig: int, grace: float, force: trio.Event, log: Logger | None
) -> None:
    """:func:`terminate` for many processes at once, with one wait and one deadline for them all
    (the shutdown's stop of thousands: no task, nursery or timer per process)."""
    live = [h for h in handles if not h.gone]
    for handle in live:
        handle.stops += 1
    try:
        await _escalate(live, sig, grace, force, log)
    finally:
        for handle in live:
            handle.stops -= 1


async def _escalate(
    handles: list[ProcessHandle], sig: int, grace: float, force: trio.Event, log: Logger | None
) -> None:
    if sig != signal.SIGKILL and not force.is_set():
        signalled = []
        for handle in handles:
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
                continue
            signalled.append(handle)
        with until_forced(force, trio.current_time() + grace):
            await wait_all_gone(signalled)
        handles = [h for h in signalled if not h.gone]
    forced = force.is_set()
    killed = []
    for handle in handles:
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
            continue
        killed.append(handle)
    await wait_all_gone(killed)


async def wait_all_gone(handles: Sequence[ProcessHandle]) -> None:
    """Return once every one of ``handles`` is gone: one park per batch of exits, not per process
    (one checkpoint in all, as every trio wait has)."""
    waited = False
    for handle in handles:
        if not handle.gone:
            await handle.wait_gone()
            waited = True
    if not waited:
        await trio.lowlevel.checkpoint()


#: The cancel scopes that wait for each ``force`` event (see :func:`until_forced`).
_forced_scopes: weakref.WeakKeyDictionary[trio.Event, set[trio.CancelScope]] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def until_forced(force: trio.Event, deadline: float = math.inf) -> Iterator[trio.CancelScope]:
    """A cancel scope that ends at ``deadline`` or once ``force`` is set, whichever comes first.

    One system task per ``force`` event cancels every such scope: a wait for "gone or forced" is
    a plain wait in a scope, not a nursery racing two tasks (10,000 stops at once are cheap).
    """
    with trio.CancelScope(deadline=deadline) as scope:
        if force.is_set():
            scope.cancel()
            yield scope
            return
        scopes = _forced_scopes.get(force)
        if scopes is None:
            scopes = _forced_scopes[force] = set()
            trio.lowlevel.spawn_system_task(_cancel_when_forced, force, scopes, name="trinit force")
        scopes.add(scope)
        try:
            yield scope
        finally:
            scopes.discard(scope)


async def _cancel_when_forced(force: trio.Event, scopes: set[trio.CancelScope]) -> None:
    try:
        await force.wait()
        for scope in list(scopes):
            scope.cancel()
    finally:
        if _forced_scopes.get(force) is scopes:
            del _forced_scopes[force]


async def sweep(
    os_layer: OSLayer,
    watcher: ExitWatcher,
    force: trio.Event,
    log: Logger,
    spare_groups: frozenset[int] = frozenset(),
) -> None:
    """SIGTERM whatever is left in our tree (as PID 1: the namespace), and return once it is
    all gone; if the shutdown is forced, SIGKILL it all. Only for a watcher that reaps orphans.

    It goes in rounds, each after an exit (never polling): a process that re-forks as it
    exits leaves a new descendant (adopted by us, the subreaper), which the next round finds
    and signals. Each process gets SIGTERM once. ``spare_groups``: process groups that already
    got their stop signal as a group; their members get no second one (SPEC §3), only SIGKILL
    if the shutdown is forced or runs out.
    """
    exited = watcher.next_exit()
    try:
        left = os_layer.descendants()
    except OSError as exc:
        await _sweep_blind(os_layer, watcher, force, log, exc, spare_groups)
        return
    if not left:
        return
    log.info(
        "sweep",
        f"sending SIGTERM to {len(left)} process(es) left behind (pids {', '.join(map(str, left[:10]))}"
        f"{', …' if len(left) > 10 else ''})",
        pids=left[:100],
    )
    os_layer.kill_all(signal.SIGTERM, spare_groups)
    signalled = set(left)
    while left and not force.is_set():
        for pid in left:
            if pid not in signalled:
                signalled.add(pid)
                try:
                    os_layer.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        await wait_first(exited.wait, force.wait)
        exited = watcher.next_exit()
        try:
            left = os_layer.descendants()
        except OSError:
            left = []
    if force.is_set():
        await kill_everything(os_layer, watcher)
    await watcher.wait_no_children()


async def _sweep_blind(
    os_layer: OSLayer,
    watcher: ExitWatcher,
    force: trio.Event,
    log: Logger,
    exc: OSError,
    spare_groups: frozenset[int],
) -> None:
    """No /proc: say so, and do what can be done without it."""
    if os_layer.is_pid1:
        log.warning(
            "sweep",
            f"cannot list the processes left behind ({exc.strerror or exc}; mount proc on /proc "
            "so they can be found); sending SIGTERM to every process of the namespace instead",
        )
        os_layer.kill_all(signal.SIGTERM, spare_groups)  # kill(-1) needs no /proc
    else:
        log.warning(
            "sweep",
            f"cannot list the processes left behind ({exc.strerror or exc}; mount proc on /proc "
            "so they can be found); only the processes trinit started were stopped, and whatever "
            "they left running may outlive trinit",
        )
    if force.is_set():
        await kill_everything(os_layer, watcher)
    await watcher.wait_no_children()


async def kill_everything(os_layer: OSLayer, watcher: ExitWatcher) -> None:
    """SIGKILL every process left in our tree (a forced shutdown with orphans to reap), again
    after each exit, until we have no child left: a process that re-forks cannot slip by."""
    gone = False

    async def no_children() -> None:
        nonlocal gone
        await watcher.wait_no_children()
        gone = True

    while True:
        exited = watcher.next_exit()
        os_layer.kill_all(signal.SIGKILL)
        await wait_first(exited.wait, no_children)
        if gone:
            return
        try:
            if not os_layer.descendants():  # nothing new since: only reaping is left
                await watcher.wait_no_children()
                return
        except OSError:
            pass  # no /proc: kill_all again at the next exit (as PID 1 it still reaches all)


async def wait_first(*waits: Callable[[], Awaitable[object]]) -> None:
    """Return as soon as the first of ``waits`` returns."""
    async with trio.open_nursery() as nursery:

        async def one(wait: Callable[[], Awaitable[object]]) -> None:
            await wait()
            nursery.cancel_scope.cancel()

        for wait in waits:
            nursery.start_soon(one, wait)
