"""The control protocol's commands (docs/control.md): one JSON request in, one reply out.

Requests are checked here (an argument of the wrong type is a ``bad_request``, never an
exception in the runtime); the work is :mod:`.steer`'s, shared with the library's handle.
``events`` is not here: it streams, so :mod:`.control` serves it.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..boot.parse import parse_signal, signal_name
from ..config.defaults import VERSION
from ..io.log import rfc3339_utc
from . import steer
from .state import Health
from .steer import Refused

if TYPE_CHECKING:
    from ..system.status import ExitStatus
    from .runner import Runner
    from .supervisor import Runtime

#: The protocol's version: a request may say which it speaks with ``"v"``.
PROTOCOL = 1

Reply = dict[str, Any]


def bad(message: str) -> Refused:
    return Refused("bad_request", message)


def _names(request: Mapping[str, Any], *, required: bool = True) -> list[str]:
    names = request.get("names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad('"names" must be a list of process names')
    if required and not names:
        raise bad("name at least one process")
    return names


def _flag(request: Mapping[str, Any], key: str) -> bool:
    value = request.get(key, False)
    if not isinstance(value, bool):
        raise bad(f'"{key}" must be true or false')
    return value


def last_exit(status: ExitStatus | None) -> dict[str, Any] | None:
    if status is None:
        return None
    if status.signal is not None:
        return {"signal": signal_name(status.signal).removeprefix("SIG")}
    if status.spawn_errno is not None:
        return {"code": status.exit_code, "error": status.describe()}
    return {"code": status.code}


def kind(runner: Runner) -> str:
    """main, service, oneshot, stop or scheduled (SPEC §8)."""
    spec = runner.spec
    if spec.main:
        return "main"
    if spec.phase == "stop":
        return "stop"
    if spec.schedule is not None or spec.every is not None:
        return "scheduled"
    return "oneshot" if spec.oneshot else "service"


def process_object(rt: Runtime, runner: Runner) -> dict[str, Any]:
    """One process as ``status --json`` shows it (SPEC §8)."""
    handle = runner.handle
    job = rt.jobs.get(runner.name)
    notifier = rt.spawner.notifier(runner.name)
    return {
        "name": runner.name,
        "kind": kind(runner),
        "state": runner.state.public,
        "pid": handle.pid if handle is not None and not handle.exited else None,
        "restarts": runner.restarts,
        "since": rfc3339_utc(runner.since),
        "last_exit": last_exit(runner.last_status),
        "health": runner.health.value if runner.health is not None else None,
        "status_text": notifier.status_text if notifier is not None else None,
        "next_run": job.next_run_text() if job is not None else None,
    }


async def _status(rt: Runtime, request: Mapping[str, Any]) -> Reply:
    names = _names(request, required=False)
    runners = steer.lookup(rt, names) if names else list(rt.runners.values())
    return {"ok": True, "processes": [process_object(rt, r) for r in runners]}


async def _start(rt: Runtime, request: Mapping[str, Any]) -> Reply:
    await steer.start(rt, _names(request), wait=_flag(request, "wait"))
    return {"ok": True}


async def _stop(rt: Runtime, request: Mapping[str, Any]) -> Reply:
    await steer.stop(rt, _names(request), wait=_flag(request, "wait"))
    return {"ok": True}


async def _restart(rt: Runtime, request: Mapping[str, Any]) -> Reply:
    await steer.restart(rt, _names(request), wait=_flag(request, "wait"))
    return {"ok": True}


async def _signal(rt: Runtime, request: Mapping[str, Any]) -> Reply:
    name, sig = request.get("name"), request.get("signal")
    if not isinstance(name, str):
        raise bad('"name" must be a process name')
    if isinstance(sig, bool) or not isinstance(sig, (str, int)):
        raise bad('"signal" must be a signal name or number, like "HUP" or 1')
    try:
        number = parse_signal(sig)
    except ValueError:
        raise bad(f"{sig!r} is not a signal; use a name like HUP or TERM, or a number") from None
    steer.send_signal(rt, name, number)
    return {"ok": True}


async def _wait(rt: Runtime, request: Mapping[str, Any]) -> Reply:
    goal = request.get("for", "ready")
    if goal not in ("ready", "exited", "completed"):
        raise bad('"for" must be "ready", "exited" or "completed"')
    timeout = request.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0
    ):
        raise bad('"timeout" must be a number of seconds, 0 or more, or null')
    await steer.wait_for(rt, _names(request), goal, None if timeout is None else float(timeout))
    return {"ok": True}


async def _shutdown(rt: Runtime, request: Mapping[str, Any]) -> Reply:
    rt.request_shutdown("trinit ctl shutdown")
    return {"ok": True}


async def _probe(rt: Runtime, request: Mapping[str, Any]) -> Reply:
    what = request.get("what")
    if what == "ready":
        ready = rt.all_up
        reason = None if ready else ("shutting down" if rt.shutting_down else "not every process is up")
        return {"ok": True, "ready": ready, "reason": reason}
    if what == "live":
        failed = [f"{r.name} failed" for r in rt.run_phase if r.failed and r.spec.on_failure == "shutdown"]
        sick = [f"{r.name} is unhealthy" for r in rt.run_phase if r.health is Health.UNHEALTHY]
        reason = "shutting down" if rt.shutting_down else next(iter(failed + sick), None)
        return {"ok": True, "live": reason is None, "reason": reason}
    raise bad('"what" must be "ready" or "live"')


async def _reload(rt: Runtime, request: Mapping[str, Any]) -> Reply:
    dry_run = _flag(request, "dry_run")
    plan = await rt.reloader.reload(dry_run=dry_run)
    return {"ok": True, "plan": plan, "applied": not dry_run}


async def _version(rt: Runtime, request: Mapping[str, Any]) -> Reply:
    return {"ok": True, "version": VERSION, "protocol": PROTOCOL, "pid": os.getpid()}


COMMANDS: dict[str, Callable[[Runtime, Mapping[str, Any]], Awaitable[Reply]]] = {
    "status": _status,
    "start": _start,
    "stop": _stop,
    "restart": _restart,
    "signal": _signal,
    "wait": _wait,
    "shutdown": _shutdown,
    "probe": _probe,
    "reload": _reload,
    "version": _version,
}


async def answer(rt: Runtime, request: object) -> Reply:
    """The reply to one request: ``{"ok": true, ...}`` or ``{"ok": false, "error", "code"}``."""
    try:
        if not isinstance(request, dict):
            raise bad('a request is a JSON object, like {"cmd": "status"}')
        version = request.get("v", PROTOCOL)
        if version != PROTOCOL:
            raise bad(f"this trinit speaks protocol version {PROTOCOL}, not {version!r}")
        command = COMMANDS.get(request.get("cmd"))  # type: ignore[arg-type]
        if command is None:
            known = ", ".join([*COMMANDS, "events"])
            raise Refused("unknown_command", f"unknown command {request.get('cmd')!r}; known: {known}")
        return await command(rt, request)
    except Refused as exc:
        reply: Reply = {"ok": False, "error": str(exc), "code": exc.code}
        errors = getattr(exc, "errors", None)  # a reload's: every problem of the new config
        if errors:
            reply["errors"] = list(errors)
        return reply
