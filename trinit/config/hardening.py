"""The hardening keys of a process (SPEC §12): ``umask``, ``rlimits``, ``no_new_privileges``,
``capabilities``, ``oom_score_adj`` and ``nice``.

Parsed once into normalized values (``umask`` an octal string like "0027", ``rlimits`` a tuple
of (name, soft, hard) with None for unlimited, ``capabilities`` names without ``CAP_``), then
checked against what trinit itself may grant (its capabilities, hard limits, nice and
oom_score_adj), so a config asking for more is an error before anything starts. The runtime
takes a :class:`Hardening`; ``trinit/system/harden.py`` applies it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from .model import ProcessSpec
    from .values import Problems

#: (name, soft, hard); None is unlimited.
Limit = tuple[str, int | None, int | None]

#: The keys and their values when not given.
DEFAULTS: dict[str, Any] = {
    "umask": None,
    "rlimits": (),
    "no_new_privileges": False,
    "capabilities": None,
    "oom_score_adj": None,
    "nice": None,
}
_VALUES_OF = attrgetter(*DEFAULTS)  # a spec's, in C: each spawn asks
_NOT_GIVEN = tuple(DEFAULTS.values())


@attrs.frozen
class Hardening:
    """What a spawn applies in the child before exec (only the keys that were given)."""

    umask: int | None = None
    rlimits: tuple[Limit, ...] = ()
    no_new_privileges: bool = False
    #: None: not given (a non-root user keeps no capability, root keeps its own).
    capabilities: tuple[str, ...] | None = None
    oom_score_adj: int | None = None
    nice: int | None = None

    @classmethod
    def of(cls, spec: ProcessSpec | Mapping[str, Any]) -> Hardening | None:
        """The hardening of a process (its spec, or its validated values); None without any."""
        if isinstance(spec, Mapping):
            values = {key: spec.get(key, default) for key, default in DEFAULTS.items()}
            if values == DEFAULTS:
                return None
        else:
            given = _VALUES_OF(spec)
            if given == _NOT_GIVEN:
                return None
            values = dict(zip(DEFAULTS, given, strict=True))
        umask = values["umask"]
        return cls(**{**values, "umask": None if umask is None else int(umask, 8)})


# The parsers and what trinit may grant are config/hardening_keys's (with system/harden): they
# load only for a process that has a hardening key.


def parse_hardening(given: Mapping[str, Any], values: dict[str, Any], problems: Problems) -> None:
    """Parse the hardening keys of ``given`` into ``values`` (INVALID where a key is bad)."""
    if any(key in given for key in DEFAULTS):
        from .hardening_keys import parse_keys

        parse_keys(given, values, problems)


def check_privileges(values: Mapping[str, Any], problems: Problems) -> None:
    """Refuse, before anything starts, what trinit cannot grant: a capability it lacks, a hard
    limit above its own without CAP_SYS_RESOURCE, a lower nice or oom_score_adj than its own
    without the privilege to lower them."""
    hardening = Hardening.of(values)
    if hardening is None or not (
        hardening.capabilities is not None
        or hardening.rlimits
        or hardening.nice is not None
        or hardening.oom_score_adj is not None
    ):
        return
    from .hardening_keys import check_grants

    check_grants(hardening, values, problems)


def summary(spec: ProcessSpec) -> list[str]:
    """``trinit check``'s words for a process's hardening keys."""
    out = []
    if spec.umask is not None:
        out.append(f"umask {spec.umask}")
    if spec.rlimits:
        out.append("rlimits " + ", ".join(f"{n} {_show_pair(soft, hard)}" for n, soft, hard in spec.rlimits))
    if spec.capabilities is not None:
        out.append(f"capabilities {', '.join(spec.capabilities) or 'none'}")
    if spec.no_new_privileges:
        out.append("no_new_privileges")
    if spec.oom_score_adj is not None:
        out.append(f"oom_score_adj {spec.oom_score_adj}")
    if spec.nice is not None:
        out.append(f"nice {spec.nice}")
    return out


def _show_pair(soft: int | None, hard: int | None) -> str:
    def one(value: int | None) -> str:
        return "unlimited" if value is None else str(value)

    return one(soft) if soft == hard else f"{one(soft)}:{one(hard)}"


def tool_warnings(specs: Iterable[ProcessSpec]) -> Iterator[str]:
    """``trinit check``: the helper programs a process needs that are not installed."""
    hardened = [(spec, hardening) for spec in specs if (hardening := Hardening.of(spec)) is not None]
    if hardened:
        from .hardening_keys import missing_tools

        yield from missing_tools(hardened)
