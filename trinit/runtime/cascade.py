"""Restarts that follow dependencies (SPEC §10): ``after = { db = { when = "ready", restart = true } }``.

Whenever ``db`` restarts (a crash under its restart policy, a health action, ``ctl restart``, a
reload), its followers (the plan's ``restart_followers``: dependents along ``restart = true``
edges, transitively) stop first, dependents before what they depend on; ``db`` restarts; and
once its new run has begun they are started again, each when its own ``after`` holds. Their
stop is trinit's doing (``EndReason.FOLLOW``): never a failure, never counted toward
``max_restarts``. Followers that are not running are left as they are, except a completed
oneshot (it runs again) and one skipped because what it waits for could not hold (it waits
again). A follower already stopped and waiting to start again is not stopped twice, so a
crash loop of ``db`` restarts its followers at most once per restart of ``db``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .state import EndReason, State

if TYPE_CHECKING:
    from .runner import Runner
    from .supervisor import Runtime

#: Followers in these states are running (or about to run again): they stop, then start again.
_RUNNING = frozenset({State.STARTING, State.RUNNING, State.READY, State.BACKOFF})


def followers(rt: Runtime, root: Runner) -> list[Runner]:
    """``root``'s followers as runners, in start order."""
    return [rt.runners[n] for n in rt.plan.restart_followers.get(root.name, ()) if n in rt.runners]


async def stop_follower(rt: Runtime, runner: Runner, leader: str, why: str) -> bool:
    """Stop one follower of ``leader`` if it runs; whether it is to be started again afterwards
    (stopped now, a completed oneshot, or one skipped because what it waits for failed)."""
    if runner.state in _RUNNING:
        rt.log.info(
            "restarting",
            f"restarting with {leader} ({why}): it stops first and starts again once its after holds",
            process=runner.name,
            leader=leader,
        )
        await runner.stop(why=EndReason.FOLLOW)
        if not runner.final:
            await runner.done.wait()
        runner.restarts += 1
        return True
    return runner.completed or (runner.state is State.SKIPPED and runner.failed)


async def stop_followers(rt: Runtime, root: Runner, *, why: str) -> list[Runner]:
    """Stop ``root``'s running followers, dependents first; return every follower to start again,
    in start order."""
    back: list[Runner] = []
    for r in reversed(followers(rt, root)):
        if rt.shutting_down:
            return []
        if await stop_follower(rt, r, root.name, why):
            back.append(r)
    return list(reversed(back))


def relaunch(rt: Runtime, runners: Sequence[Runner]) -> None:
    """Start each again (it waits for its ``after``), unless the shutdown began or a reload
    replaced or removed it meanwhile."""
    for r in runners:
        if rt.shutting_down:
            return
        if rt.runners.get(r.name) is r and r.final and not r.held:
            rt.launch(r)


async def _relaunch_once_restarted(
    rt: Runtime, root: Runner, last_pid: int | None, runners: list[Runner]
) -> None:
    """Wait until ``root`` has begun a new run (or has ended for good), then start ``runners``."""
    while root.last_pid == last_pid and not root.final and not rt.shutting_down:
        await rt.changed().wait()
    relaunch(rt, runners)


async def before_restart(rt: Runtime, root: Runner) -> None:
    """``root`` is about to restart (its crash, ``ctl restart``, a health action): stop its followers
    first, and start them again in the background once ``root`` runs again."""
    if rt.shutting_down or root.name not in rt.plan.restart_followers:
        return
    last_pid = root.last_pid
    # A follower that an earlier restart of root stopped is not running: its start is pending already.
    group = await stop_followers(rt, root, why="it is restarting")
    if group:
        rt.in_background(_relaunch_once_restarted, rt, root, last_pid, group)


__all__ = ["before_restart", "followers", "relaunch", "stop_follower", "stop_followers"]
