"""Validation of one process's keys and of the ``[trinit]`` keys: one rule per fact.

``check_process`` turns the raw keys into normalized values (a ``Draft``) and every
problem into a message naming the file, the process and the key; ``ProcessSpec`` and the
loader both go through it, so keyword arguments and a file obey the same rules.  The rules
that need every process at once are in ``graph``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from . import defaults
from .hardening import DEFAULTS as HARDENING_DEFAULTS
from .hardening import check_privileges, parse_hardening
from .hooks import DEFAULTS as HOOK_DEFAULTS
from .hooks import hook_rules
from .schedule import DEFAULTS as SCHEDULE_DEFAULTS
from .schedule import parse_schedule, schedule_rules
from .values import (
    INVALID,
    Problems,
    after_list,
    argv,
    boolean,
    count,
    did_you_mean,
    duration,
    environment,
    exit_codes,
    is_id,
    one_of,
    place,
    positive_duration,
    reload_signal,
    signal_number,
    socket_path,
    text,
    user_or_group,
    valid_name,
)


def _identity(values: dict[str, Any], problems: Problems) -> None:
    """``user``/``group`` must exist, and differ from trinit's own only when trinit is root.

    Checked here, before anything starts, so that a container never half-starts and
    then fails on a setuid.
    """
    user, group = values.get("user"), values.get("group")
    if user is None and group is None:
        return
    import grp  # the door: a config without user or group never reads the user databases
    import pwd

    uid = gid = None
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if is_id(user) else pwd.getpwnam(user)
            uid, gid = entry.pw_uid, entry.pw_gid
        except KeyError:
            if not is_id(user):
                problems.add("user", f'no user named "{user}" (not in the passwd database)')
            elif group is None:
                problems.add(
                    "user", f"uid {user} has no passwd entry, so its group is unknown: set group too"
                )
            else:
                uid = int(user)
    if group is not None:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if is_id(group) else grp.getgrnam(group).gr_gid
        except KeyError:
            if is_id(group):
                gid = int(group)
            else:
                problems.add("group", f'no group named "{group}" (not in the group database)')
    euid = os.geteuid()
    if euid == 0:
        return
    if uid is not None and uid != euid:
        problems.add(
            "user",
            f'trinit runs as uid {euid}, not root, so it cannot switch to user "{user}" '
            "(privileges are checked before anything starts)",
        )
    elif gid is not None and gid != os.getegid():
        key, what = (
            ("group", f'group "{group}"') if group is not None else ("user", f'the group of user "{user}"')
        )
        problems.add(
            key,
            f"trinit runs as gid {os.getegid()}, not root, so it cannot switch to {what} "
            "(privileges are checked before anything starts)",
        )


#: Every ``[process.NAME]`` key's value when it is not given (``signal_group`` and
#: ``forward_signals`` then follow ``shell`` and ``main``).
DEFAULTS: dict[str, Any] = {
    "shell": False,
    "main": False,
    "oneshot": False,
    "after": (),
    "ready": None,
    "restart": defaults.RESTART,
    "restart_delay": defaults.RESTART_DELAY,
    "restart_delay_max": defaults.RESTART_DELAY_MAX,
    "restart_reset_after": defaults.RESTART_RESET_AFTER,
    "max_restarts": None,
    "on_failure": defaults.ON_FAILURE,
    "success_codes": defaults.SUCCESS_CODES,
    "timeout": None,
    "retries": defaults.RETRIES,
    "phase": defaults.PHASE,
    "stop_signal": None,
    "stop_timeout": defaults.STOP_TIMEOUT,
    "signal_group": False,
    "forward_signals": False,
    "cwd": None,
    "env": (),
    "env_file": None,
    "inherit_env": True,
    "user": None,
    "group": None,
    "output": defaults.OUTPUT,
    **SCHEDULE_DEFAULTS,
    **HARDENING_DEFAULTS,
    **HOOK_DEFAULTS,
    "health": None,
    "watchdog": None,
    "_after_implicit": frozenset(),
    "_after_restart": frozenset(),
}
PROCESS_KEYS = ("command", *(k for k in DEFAULTS if not k.startswith("_")))
_KNOWN = frozenset(PROCESS_KEYS)
_SIMPLE: dict[str, Any] = {
    "shell": boolean,
    "main": boolean,
    "oneshot": boolean,
    "restart": one_of("no", "on-failure", "always"),
    "restart_delay": positive_duration,
    "restart_delay_max": positive_duration,
    "restart_reset_after": positive_duration,
    "max_restarts": count,
    "on_failure": one_of("shutdown", "ignore"),
    "success_codes": exit_codes,
    "timeout": positive_duration,
    "retries": count,
    "phase": one_of("run", "stop"),
    "stop_signal": signal_number,
    "stop_timeout": duration,
    "signal_group": boolean,
    "forward_signals": boolean,
    "cwd": text,
    "env_file": text,
    "inherit_env": boolean,
    "user": user_or_group,
    "group": user_or_group,
    "output": one_of("inherit", "prefix", "null"),
    "schedule": parse_schedule,
    "every": positive_duration,
    "jitter": duration,
    "overlap": one_of("skip", "queue"),
    "run_on_start": boolean,
}
_SIMPLE_RANK = {key: i for i, key in enumerate(_SIMPLE)}
_HARDENING_KEYS = frozenset(HARDENING_DEFAULTS)
#: Keys that only fit some kinds of process; each is an error elsewhere unless it has its
#: default value (so ``oneshot = false`` on main is fine, and ``attrs.evolve`` works).
_NOT_ON_MAIN = {
    "oneshot": "its exit ends trinit, it cannot be a oneshot",
    "restart": "its exit ends trinit, so it is never restarted",
    "restart_delay": "it is never restarted",
    "restart_delay_max": "it is never restarted",
    "restart_reset_after": "it is never restarted",
    "max_restarts": "it is never restarted",
    "retries": "only oneshots have retries",
    "phase": "only oneshots have a phase",
    "on_failure": "its end is the end of everything",
}
_NOT_ON_ONESHOT = {
    "restart": "a oneshot runs to completion; use retries to run failed attempts again",
    "restart_reset_after": "a oneshot is not restarted; use retries",
    "max_restarts": "a oneshot is not restarted; use retries",
}
_ONLY_ON_ONESHOT = {
    "retries": "only for oneshots (a long-running process uses restart)",
    "phase": 'only for oneshots (a stop job is a oneshot with phase = "stop")',
    "timeout": "only for oneshots and the main process (a long-running process has no end to wait for)",
}


@attrs.define
class Draft:
    """One process as far as it validated: ``values`` holds the keys that are fine."""

    name: str
    values: dict[str, Any]
    errors: list[str]
    #: The file it is in, when not the config file itself (an included one).
    source: str | None = None


def check_process(
    name: str,
    given: Mapping[str, Any],
    *,
    where: str | None,
    implicit: frozenset[str] = frozenset(),
    restart: frozenset[str] = frozenset(),
) -> Draft:
    """Validate and normalize one process's keys; ``where`` is the config source, if any."""
    problems = Problems(place(where, name))
    if not valid_name(name):
        problems.add("", 'the name may only hold letters, digits, "_", "-" and "."')
    for key in given:
        if key not in _KNOWN:
            problems.add("", f'unknown key "{key}"{did_you_mean(str(key), PROCESS_KEYS)}')
    values: dict[str, Any] = dict(DEFAULTS, name=name)
    # The given keys only (most processes give one or two), checked in _SIMPLE's order.
    for key in sorted(_SIMPLE.keys() & given.keys(), key=_SIMPLE_RANK.__getitem__):
        values[key] = problems.parse(key, given[key], _SIMPLE[key])
    hardened = not _HARDENING_KEYS.isdisjoint(given)
    if hardened:
        parse_hardening(given, values, problems)
    if "command" not in given:
        problems.add("command", "is required: an argv array, or a string split with shell word rules")
        values["command"] = INVALID
    else:
        shell = values["shell"] is True
        values["command"] = problems.parse("command", given["command"], lambda v: argv(v, shell=shell))
    if "after" in given:
        after = after_list(given["after"], problems, implicit, restart)
        values["after"], values["_after_implicit"], values["_after_restart"] = (
            after if after is not None else (INVALID, INVALID, INVALID)
        )
    if "ready" in given:  # the door to config/probes (a config without ready or health never loads it)
        from .probes import ready_probe

        values["ready"] = ready_probe(given["ready"], problems) or INVALID
    if "env" in given:
        env = environment(given["env"], problems)
        values["env"] = INVALID if env is None else env
    hook_rules(given, values, problems)
    if "signal_group" not in given:
        values["signal_group"] = values["shell"] is True
    if "forward_signals" not in given:
        values["forward_signals"] = values["main"] is True
    if problems.errors:  # a key that failed its check leaves INVALID behind
        values = {k: v for k, v in values.items() if v is not INVALID}
    delay, cap = values.get("restart_delay"), values.get("restart_delay_max")
    if delay is not None and cap is not None and delay > cap:
        problems.add(
            "restart_delay_max" if "restart_delay_max" in given else "restart_delay",
            f"restart_delay ({delay:g} s) is more than restart_delay_max ({cap:g} s), which caps it; "
            "raise restart_delay_max or lower restart_delay",
        )
    _kind_rules(given, values, problems)
    schedule_rules(given, values, problems)
    if "health" in given or "watchdog" in given:  # the door to config/health (and config/probes)
        from .health import health_rules

        health_rules(given, values, problems)
    _identity(values, problems)
    if hardened:
        check_privileges(values, problems)
    return Draft(name, values, problems.errors)


def _kind_rules(given: Mapping[str, Any], values: dict[str, Any], problems: Problems) -> None:
    def off_default(key: str) -> bool:
        return key in given and key in values and values[key] != DEFAULTS[key]

    if values.get("main") is True:
        for key, why in _NOT_ON_MAIN.items():
            if off_default(key):
                problems.add(key, f"not allowed on the main process: {why}")
        return
    if values.get("oneshot") is True:
        for key, why in _NOT_ON_ONESHOT.items():
            if off_default(key):
                problems.add(key, f"not allowed on a oneshot: {why}")
        if values.get("phase") == "stop":
            if values.get("ready") is not None:
                problems.add("ready", "not allowed on a stop job: nothing waits for it to be ready")
            explicit = [d for d, _ in values.get("after", ()) if d not in values.get("_after_implicit", ())]
            if explicit:
                names = ", ".join(f'"{d}"' for d in explicit)
                problems.add(
                    "after",
                    "a stop job's after holds names only, the processes that must have stopped "
                    f"before it runs (write after = [{names}])",
                )
    elif values.get("oneshot") is False:
        for key, why in _ONLY_ON_ONESHOT.items():
            if off_default(key):
                problems.add(key, why)


# --------------------------------------------------------------------------- [trinit] keys

TRINIT_KEYS = ("shutdown_timeout", "log_format", "ready_file", "control_socket", "reload_signal")


def check_trinit(given: Mapping[str, Any], problems: Problems) -> dict[str, Any]:
    """Validate the ``[trinit]`` keys; returns the ones that are fine, normalized."""
    for key in given:
        if key not in TRINIT_KEYS:
            problems.add("", f'unknown key "{key}"{did_you_mean(str(key), TRINIT_KEYS)}')
    values = {
        key: problems.parse(key, given[key], parser)
        for key, parser in _TRINIT_PARSERS.items()
        if key in given
    }
    return {k: v for k, v in values.items() if v is not INVALID}


_TRINIT_PARSERS: dict[str, Any] = {
    "shutdown_timeout": duration,
    "log_format": one_of("text", "json"),
    "ready_file": text,
    "control_socket": socket_path,
    "reload_signal": reload_signal,
}


def resolve_after(drafts: Sequence[Draft]) -> Sequence[Draft]:
    """Give each ``after`` name written without a condition its default: "completed" on a
    oneshot, "ready" on anything else (in place: the drafts are the caller's own)."""
    oneshots = {d.name for d in drafts if d.values.get("oneshot") is True}
    for d in drafts:
        implicit = d.values.get("_after_implicit")
        if implicit and "after" in d.values:
            d.values["after"] = tuple(
                (dep, ("completed" if dep in oneshots else "ready") if dep in implicit else cond)
                for dep, cond in d.values["after"]
            )
    return drafts
