"""Health checks and the watchdog (SPEC §9): the ``health`` table and ``watchdog``, parsed once.

A health check is a probe of the kinds readiness has (``exec``, ``tcp``, ``http``, ``file``:
the same parsers, so the same targets and messages) run every ``interval`` once the process
is ready. ``watchdog`` needs ``ready = { notify = true }``: the ``WATCHDOG=1`` pings come on
the same socket. The rules that tie them to the process's kind are here too, so
``validate`` only calls :func:`health_rules`: only for a process with ``health`` or
``watchdog``, so a config without them never loads this module (nor ``probes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from . import defaults
from .probes import PROBES, Probe
from .values import INVALID, Bad, Problems, did_you_mean, duration, one_of, positive_duration, show

HealthAction = Literal["restart", "fail", "unready"]

#: The probe kinds a health check may use (``log`` watches output once; notify/fd announce readiness).
HEALTH_PROBES = ("exec", "tcp", "http", "file")
_TIMING = ("interval", "attempt_timeout", "failures", "start_period", "action")
_EXAMPLE = '{ http = "http://127.0.0.1:8080/healthz", interval = "10s" }'


def _failures(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Bad(f"must be a whole number, 1 or more (got {show(value)})")
    return value


_PARSERS: dict[str, Any] = {
    "interval": positive_duration,
    "attempt_timeout": positive_duration,
    "failures": _failures,
    "start_period": duration,
    "action": one_of("restart", "fail", "unready"),
}


@attrs.frozen
class HealthSpec:
    """One health check: its probe (None: only the watchdog's action is set) and its timing."""

    kind: str | None
    #: As given, for messages: exec: the argv; tcp: "host:port"; http: the URL; file: a path.
    target: tuple[str, ...] | str | None
    probe: Probe | None = attrs.field(repr=False)
    interval: float = defaults.HEALTH_INTERVAL
    attempt_timeout: float = defaults.HEALTH_ATTEMPT_TIMEOUT
    failures: int = defaults.HEALTH_FAILURES
    start_period: float = 0.0
    #: None: the default, "restart" (on the main process "fail"); see ``ProcessSpec.health_action``.
    action: HealthAction | None = None


def _table(value: object, problems: Problems) -> HealthSpec | None:
    if isinstance(value, HealthSpec):
        return value  # validated when it was built
    if not isinstance(value, Mapping):
        problems.add("health", f"must be a table like {_EXAMPLE} (got {show(value)})")
        return None
    before = len(problems.errors)
    for key in value:
        if key in PROBES and key not in HEALTH_PROBES:
            problems.add("health", f"{key} is not a health probe: use exec, tcp, http or file")
        elif key not in HEALTH_PROBES and key not in _TIMING:
            problems.add("health", f'unknown key "{key}"{did_you_mean(str(key), (*HEALTH_PROBES, *_TIMING))}')
    kinds = [k for k in HEALTH_PROBES if k in value]
    if len(kinds) > 1:
        problems.add("health", f"has {' and '.join(kinds)}: give exactly one probe")
    fields: dict[str, Any] = {"kind": None, "target": None, "probe": None}
    if len(kinds) == 1:
        kind = kinds[0]
        probe = problems.parse(f"health.{kind}", value[kind], PROBES[kind])
        if probe is not INVALID:
            fields.update(kind=kind, probe=probe, target=probe.argv if kind == "exec" else value[kind])
    for key, parser in _PARSERS.items():
        if key in value:
            fields[key] = problems.parse(f"health.{key}", value[key], parser)
    if len(problems.errors) > before:
        return None
    return HealthSpec(**fields)


def health_rules(given: Mapping[str, Any], values: dict[str, Any], problems: Problems) -> None:
    """Parse ``health`` and ``watchdog`` into ``values``, and check they fit the process."""
    health = _table(given["health"], problems) if "health" in given else None
    watchdog = (
        problems.parse("watchdog", given["watchdog"], positive_duration) if "watchdog" in given else None
    )
    if watchdog is INVALID:
        watchdog = None
    if health is not None:
        values["health"] = health
    if watchdog is not None:
        values["watchdog"] = watchdog
    if values.get("oneshot") is True:
        for key in ("health", "watchdog"):
            if key in given:
                problems.add(
                    key,
                    "not allowed on a oneshot: it runs to completion (health checks watch "
                    "long-running processes)",
                )
        return
    if health is not None and health.action == "restart" and values.get("main") is True:
        problems.add(
            "health.action",
            "not allowed on the main process: its exit ends trinit, so it is never restarted; "
            'use "fail" (the default on main) or "unready"',
        )
    if health is not None and health.probe is None and "watchdog" not in given:
        problems.add("health", "needs one probe: exec, tcp, http or file")
    ready = values.get("ready")
    bad_ready = "ready" in given and ready is None  # reported already
    if "watchdog" in given and not bad_ready and (ready is None or ready.kind != "notify"):
        problems.add("watchdog", "needs ready = { notify = true }: WATCHDOG=1 comes on $NOTIFY_SOCKET")
