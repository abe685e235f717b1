"""The hardening keys' rules (SPEC §12): their parsers, and the check of what trinit itself may
grant (its capabilities, hard limits, nice and oom_score_adj) through ``system/harden``.

Loaded by :mod:`.hardening`'s functions only for a process that has a hardening key: a
config without one never loads this module, ``system/harden`` or ``resource`` (idle memory).
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..system.harden import (
    CAP_NUMBERS,
    CAP_SETPCAP,
    CAP_SYS_NICE,
    CAP_SYS_RESOURCE,
    LIMITS,
    Privileges,
    find_tool,
    missing_tool_message,
    own_privileges,
    tools_needed,
)
from .values import INVALID, Bad, Problems, boolean, did_you_mean, is_id, show

if TYPE_CHECKING:
    from .hardening import Hardening, Limit
    from .model import ProcessSpec

#: The largest limit: rlim_t is 64 bits, and its top value means unlimited.
_MAX_LIMIT = 2**63 - 1

_UMASK = re.compile(r"(?:0o)?([0-7]{1,4})")


def umask(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        raise Bad(f'must be an octal string like "027" (got {show(value)}; quote it: a number is not octal)')
    m = _UMASK.fullmatch(value) if isinstance(value, str) else None
    if m is None or int(m[1], 8) > 0o777:
        raise Bad(f'must be an octal string from "000" to "777", like "027" (got {show(value)})')
    return f"{int(m[1], 8):04o}"


def whole(low: int, high: int) -> Any:
    def parse(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Bad(f"must be a whole number from {low} to {high} (got {show(value)})")
        return value

    return parse


def _amount(value: object) -> int | None:
    """One limit: a number, or "unlimited" (None, in the normalized form)."""
    if value is None or value == "unlimited":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_LIMIT:
        raise Bad(
            f'must be a number from 0 to {_MAX_LIMIT}, "unlimited", or [soft, hard] (got {show(value)})'
        )
    return value


def _limit_pair(value: object) -> tuple[int | None, int | None]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise Bad(f"must be [soft, hard]: two values (got {show(value)})")
        soft, hard = _amount(value[0]), _amount(value[1])
    else:
        soft = hard = _amount(value)
    if hard is not None and (soft is None or soft > hard):
        raise Bad(
            f"the soft limit ({'unlimited' if soft is None else soft}) is above the hard limit ({hard}); "
            "the soft one must be at most the hard one"
        )
    return soft, hard


def rlimits(value: object, problems: Problems) -> tuple[Limit, ...] | None:
    """``{ nofile = 65536, nproc = [512, 1024], core = "unlimited" }``, or the normalized triples."""
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)) and all(isinstance(i, tuple) and len(i) == 3 for i in value):
        items = [(name, (soft, hard)) for name, soft, hard in value]
    else:
        problems.add(
            "rlimits", f"must be a table like {{ nofile = 65536, nproc = [512, 1024] }} (got {show(value)})"
        )
        return None
    before = len(problems.errors)
    out: list[Limit] = []
    for name, amount in items:
        if not isinstance(name, str) or name not in LIMITS:
            what = f'"{name}"{did_you_mean(name, LIMITS)}' if isinstance(name, str) else show(name)
            problems.add("rlimits", f"unknown limit {what}; the limits are {', '.join(LIMITS)}")
        elif any(name == seen for seen, _, _ in out):
            problems.add("rlimits", f'names "{name}" twice')
        else:
            pair = problems.parse(f"rlimits.{name}", amount, _limit_pair)
            if pair is not INVALID:
                out.append((name, *pair))
    return None if len(problems.errors) > before else tuple(out)


def capabilities(value: object, problems: Problems) -> tuple[str, ...] | None:
    """Names with or without ``CAP_``, in any case; normalized without it, in upper case."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        problems.add(
            "capabilities", f'must be an array of names like ["NET_BIND_SERVICE"] (got {show(value)})'
        )
        return None
    before = len(problems.errors)
    out: list[str] = []
    for i, item in enumerate(value, 1):
        if not isinstance(item, str):
            problems.add("capabilities", f"item {i} must be a capability name (got {show(item)})")
            continue
        name = item.upper().removeprefix("CAP_")
        if name not in CAP_NUMBERS:
            hint = did_you_mean(name, CAP_NUMBERS)
            problems.add("capabilities", f'unknown capability "{item}"{hint} (see capabilities(7))')
        elif name in out:
            problems.add("capabilities", f'names "{name}" twice')
        else:
            out.append(name)
    return None if len(problems.errors) > before else tuple(out)


_SIMPLE: dict[str, Any] = {
    "umask": umask,
    "no_new_privileges": boolean,
    "oom_score_adj": whole(-1000, 1000),
    "nice": whole(-20, 19),
}


def parse_keys(given: Mapping[str, Any], values: dict[str, Any], problems: Problems) -> None:
    """Parse the hardening keys of ``given`` into ``values`` (INVALID where a key is bad)."""
    for key, parser in _SIMPLE.items():
        if key in given:
            values[key] = problems.parse(key, given[key], parser)
    if "rlimits" in given:
        limits = rlimits(given["rlimits"], problems)
        values["rlimits"] = INVALID if limits is None else limits
    if "capabilities" in given:
        caps = capabilities(given["capabilities"], problems)
        values["capabilities"] = INVALID if caps is None else caps


def check_grants(hardening: Hardening, values: Mapping[str, Any], problems: Problems) -> None:
    """:func:`.hardening.check_privileges` for a process that asks for a privilege."""
    own = own_privileges()
    if hardening.capabilities is not None:
        _check_capabilities(hardening.capabilities, _target_uid(values, own.euid), own, problems)
    for name, soft, hard in hardening.rlimits:
        _check_limit(name, soft, hard, own, problems)
    nice = hardening.nice
    # Without CAP_SYS_NICE a process may lower its nice only down to 20 - RLIMIT_NICE.
    nice_floor = own.nice if own.nice_limit is None else min(own.nice, 20 - own.nice_limit)
    if nice is not None and own.nice_limit is not None and nice < nice_floor and not own.can(CAP_SYS_NICE):
        problems.add(
            "nice",
            f"trinit runs at nice {own.nice} without CAP_SYS_NICE, so it cannot start a process at "
            f"the higher priority {nice}; use {nice_floor} or more, or give trinit CAP_SYS_NICE",
        )
    oom, own_oom = hardening.oom_score_adj, own.oom_score_adj
    if oom is not None and own_oom is not None and oom < own_oom and not own.can(CAP_SYS_RESOURCE):
        problems.add(
            "oom_score_adj",
            f"trinit's own oom_score_adj is {own_oom} and it lacks CAP_SYS_RESOURCE, so it cannot "
            f"give a process the lower {oom}; use {own_oom} or more, or give trinit CAP_SYS_RESOURCE",
        )


def _target_uid(values: Mapping[str, Any], euid: int) -> int | None:
    """The uid the process runs as (None when its user is unknown: that is reported already)."""
    user = values.get("user")
    if user is None:
        return euid
    try:
        return pwd.getpwuid(int(user)).pw_uid if is_id(user) else pwd.getpwnam(user).pw_uid
    except KeyError:
        return int(user) if is_id(user) else None


def _check_capabilities(caps: Iterable[str], uid: int | None, own: Privileges, problems: Problems) -> None:
    for name in caps:
        number = CAP_NUMBERS[name]
        if own.last_cap is not None and number > own.last_cap:
            problems.add("capabilities", f"this kernel does not know CAP_{name} (it is newer); remove it")
        elif not own.has(number):
            problems.add(
                "capabilities",
                f"trinit does not have CAP_{name} itself, so it cannot pass it on; grant it to the "
                "container (docker run --cap-add, or securityContext.capabilities.add) or remove it",
            )
    if uid == 0 and not own.can(CAP_SETPCAP):
        problems.add(
            "capabilities",
            "the process runs as root, and trinit lacks CAP_SETPCAP, which it needs to narrow root's "
            "capabilities to the list; set user to a non-root user, or give trinit CAP_SETPCAP",
        )


def _check_limit(name: str, soft: int | None, hard: int | None, own: Privileges, problems: Problems) -> None:
    key = f"rlimits.{name}"
    if name == "nofile" and own.nr_open is not None and (hard is None or hard > own.nr_open):
        problems.add(
            key,
            f"the kernel allows at most {own.nr_open} open files (fs.nr_open), not "
            f"{'unlimited' if hard is None else hard}; lower it",
        )
        return
    mine = own.hard[name]
    if mine is not None and (hard is None or hard > mine) and not own.can(CAP_SYS_RESOURCE):
        problems.add(
            key,
            f"{'unlimited' if hard is None else hard} is above trinit's own hard limit ({mine}), and "
            "trinit lacks CAP_SYS_RESOURCE to raise it; lower it, or raise the container's limit "
            "(docker run --ulimit)",
        )


def missing_tools(specs: Iterable[tuple[ProcessSpec, Hardening]]) -> Iterator[str]:
    """:func:`.hardening.tool_warnings` for the processes that have a hardening key."""
    root = os.geteuid() == 0
    for spec, hardening in specs:
        switches = root and (spec.user is not None or spec.group is not None)
        for tool, key in dict.fromkeys(tools_needed(hardening, switches)):
            if find_tool(tool) is None:
                yield f'process "{spec.name}": {missing_tool_message(tool, key)}; it will fail to start'
