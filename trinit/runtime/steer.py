"""Steering a running set of processes: start, stop, restart, signal, wait (SPEC §8).

One implementation for ``trinit ctl`` (through :mod:`.control`) and the library's handle.
A user's stop or restart is never a failure and never counts toward ``max_restarts``; a
stopped process stays stopped until started; stopping the main process is the shutdown
of §5; nothing starts once the shutdown has begun. Names are checked before anything is
done, and several names are applied in dependency order (stops: dependents first).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

import trio

from .._errors import TrinitError
from ..config.values import did_you_mean
from . import cascade
from .host import Trigger
from .state import State

if TYPE_CHECKING:
    from .runner import Runner
    from .supervisor import Runtime

WaitFor = Literal["ready", "exited", "completed"]


class Refused(TrinitError):
    """A request that cannot be carried out; ``code`` is the control protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class UnknownProcess(Refused, KeyError):
    """No process has that name (a KeyError too, as the library always raised)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NotRunning(Refused, ProcessLookupError):
    """The process has no running instance to signal."""


def lookup(rt: Runtime, names: Iterable[str]) -> list[Runner]:
    """The runners of ``names`` (each once, in dependency order), or UnknownProcess."""
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        if name not in rt.runners:
            hint = did_you_mean(name, rt.runners) or f"; known: {', '.join(rt.runners)}"
            raise UnknownProcess("unknown_process", f"no process named {name!r}{hint}")
    rank = rt.start_rank
    return sorted((rt.runners[n] for n in wanted), key=lambda r: rank[r.name])


def _refuse_during_shutdown(rt: Runtime, what: str) -> None:
    if rt.shutting_down:
        raise Refused("shutting_down", f"trinit is shutting down; nothing {what} any more")


async def start(rt: Runtime, names: Sequence[str], *, wait: bool = False) -> None:
    """Start stopped, finished or failed processes (a oneshot runs again); they wait for their ``after``."""
    runners = lookup(rt, names)
    _refuse_during_shutdown(rt, "starts")
    jobs = [r for r in runners if r.name in rt.jobs]
    runners = [r for r in runners if r.name not in rt.jobs]
    for r in runners:
        if r.spec.phase == "stop":
            raise Refused("wrong_state", f"{r.name} is a stop job: it runs only during the shutdown")
        if r.state in (State.STARTING, State.RUNNING, State.READY):
            raise Refused("wrong_state", f"{r.name} is already {r.state.public}")
        if r.state is State.STOPPING:
            raise Refused("wrong_state", f"{r.name} is stopping; start it once it has stopped")
    for r in runners:
        if r.final:
            rt.launch(r)
        elif r.state is State.BACKOFF:
            r.wake()  # its next start is now
    for r in jobs:  # a scheduled job runs now, as its ``overlap`` allows (SPEC §11)
        await _run_job_now(rt, r.name, wait)
    if wait:
        await wait_for(rt, [r.name for r in runners], "ready")


async def _run_job_now(rt: Runtime, name: str, wait: bool) -> None:
    result = await rt.jobs[name].run_now(wait=wait)
    if result is Trigger.REFUSED:
        raise Refused("wrong_state", f"{name} cannot run: its after can never hold, or the shutdown began")
    if wait and result is Trigger.WAITING:
        raise Refused("wrong_state", f"{name} waits for its after; it runs once that holds")
    if wait and rt.runners[name].failed:
        raise Refused("failed", f"{name} failed: {rt.runners[name].state.public}")


async def stop(rt: Runtime, names: Sequence[str], *, wait: bool = False) -> None:
    """Stop gracefully and keep stopped, dependents first; the main process means the shutdown."""
    runners = lookup(rt, names)
    if any(r.spec.main for r in runners):
        main = next(r for r in runners if r.spec.main)
        rt.request_shutdown(f"{main.name} (the main process) was stopped on request")
        if wait:
            await rt.finished.wait()
        return
    if wait:
        await _stop_in_order(runners)
    else:
        rt.in_background(_stop_in_order, runners)


async def _stop_in_order(runners: list[Runner]) -> None:
    for r in reversed(runners):
        await r.stop(hold=True)


async def restart(rt: Runtime, names: Sequence[str], *, wait: bool = False, background: bool = True) -> None:
    """Stop each named process and start it again at once (a finished one starts anew).

    ``wait``: return once they are ready; else, with ``background``, at once.
    """
    runners = lookup(rt, names)
    _refuse_during_shutdown(rt, "restarts")
    for r in runners:
        if r.spec.main:
            raise Refused(
                "wrong_state",
                f"{r.name} is the main process: its exit ends the run; use 'trinit ctl shutdown', "
                "or restart the container",
            )
        if r.spec.phase == "stop":
            raise Refused("wrong_state", f"{r.name} is a stop job: it runs only during the shutdown")

    async def restart_all() -> None:
        for r in runners:
            await restart_one(rt, r)

    if wait or not background:
        await restart_all()
        if wait:
            await wait_for(rt, [r.name for r in runners], "ready")
    else:
        rt.in_background(restart_all)


async def restart_one(rt: Runtime, runner: Runner) -> None:
    if runner.handle is None and runner.name in rt.jobs:  # between runs: one more run now
        rt.jobs[runner.name].trigger()
        return
    if runner.state is State.STOPPING:  # a stop under way, or the post_stop hook of an exit
        while runner.state is State.STOPPING:
            await rt.changed().wait()
        await restart_one(rt, runner)  # whatever it is now: stopped, or backing off to a restart
        return
    if runner.final:  # a restart all the same: what follows it restarts too (SPEC §10)
        await cascade.before_restart(rt, runner)
        if not rt.shutting_down and runner.final:
            rt.launch(runner)
        return
    if runner.state is State.BACKOFF:
        runner.wake()
        return
    await runner.restart()


def send_signal(rt: Runtime, name: str, sig: int) -> None:
    (runner,) = lookup(rt, [name])
    handle = runner.handle
    if handle is None:
        raise NotRunning("wrong_state", f"{name} is not running (it is {runner.state.public})")
    try:
        handle.signal(sig)
    except ProcessLookupError as exc:
        raise NotRunning("wrong_state", f"{name} is not running: {exc}") from None


def reached(runner: Runner, goal: WaitFor) -> bool | None:
    """True once ``runner`` is at ``goal``, False if it never will be without help, None: not yet."""
    if goal == "ready":
        if runner.ready or runner.completed:
            return True
    elif goal == "completed":
        if runner.completed:
            return True
    elif runner.final:  # exited
        return True
    return False if runner.final else None


async def wait_for(rt: Runtime, names: Sequence[str], goal: WaitFor, timeout: float | None = None) -> None:
    """Return once every named process is at ``goal``; Refused("failed"/"timeout") otherwise."""
    runners = lookup(rt, names)
    with trio.move_on_after(math.inf if timeout is None else timeout) as scope:
        for r in runners:
            while (got := reached(r, goal)) is None:
                await rt.changed().wait()
            if got is False:
                what = "completed" if goal == "completed" else goal
                raise Refused("failed", f"{r.name} will not be {what}: it is {r.state.public}")
    if scope.cancelled_caught:
        pending = [r.name for r in runners if not reached(r, goal)]
        raise Refused(
            "timeout", f"timed out after {timeout:g} s waiting for {', '.join(pending)} to be {goal}"
        )
