"""What happens after a run ended on its own: restart, retry, done or failed.

A pure function of the spec and the run's outcome, so every rule (backoff doubling,
its cap and reset, ``max_restarts``, ``retries``) is tested as a table without trio.
"""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from ..config.model import ProcessSpec


class Kind(enum.Enum):
    RESTART = "restart"
    RETRY = "retry"
    DONE = "done"
    FAIL = "fail"


@attrs.frozen
class Decision:
    kind: Kind
    #: Seconds to wait before the next start (RESTART, RETRY).
    delay: float = 0.0
    #: Consecutive restarts or retries after this decision (the next backoff exponent).
    consecutive: int = 0
    #: FAIL because ``max_restarts`` ran out, not because the run failed.
    gave_up: bool = False


def backoff(spec: ProcessSpec, consecutive: int) -> float:
    """``restart_delay`` doubled per consecutive restart, capped at ``restart_delay_max``."""
    return min(spec.restart_delay * math.pow(2, min(consecutive, 64)), spec.restart_delay_max)


def decide(
    spec: ProcessSpec, ok: bool, consecutive: int, run_time: float, *, unhealthy: str | None = None
) -> Decision:
    """The next step after a run that ended by itself (``ok``: it succeeded).

    ``consecutive`` counts the restarts (retries) in a row before this run; a service
    that ran ``restart_reset_after`` seconds starts counting afresh. ``unhealthy``: the
    run was ended by its health action (SPEC §9), "restart" whatever ``restart`` says
    (``max_restarts`` still counts), or "fail".
    """
    if unhealthy == "fail":
        return Decision(Kind.FAIL, consecutive=consecutive)
    if spec.oneshot:
        if ok:
            return Decision(Kind.DONE, consecutive=consecutive)
        if consecutive < spec.retries:
            return Decision(Kind.RETRY, backoff(spec, consecutive), consecutive + 1)
        return Decision(Kind.FAIL, consecutive=consecutive)
    if run_time >= spec.restart_reset_after:
        consecutive = 0
    wants = unhealthy == "restart" or spec.restart == "always" or (spec.restart == "on-failure" and not ok)
    if not wants:
        return Decision(Kind.DONE if ok else Kind.FAIL, consecutive=consecutive)
    limit = spec.max_restarts
    if limit is None or consecutive < limit:
        return Decision(Kind.RESTART, backoff(spec, consecutive), consecutive + 1)
    return Decision(Kind.FAIL, consecutive=consecutive, gave_up=True)
