"""The life of one supervised process as a state machine: its states and legal moves.

Every state change of a :class:`~trinit.runtime.runner.Runner` goes through
:func:`check_transition`, so the state can never disagree with itself: what a runner
"is" (started, ready, completed, final, failed) is derived from the state, not stored.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from .process import StatusName


class State(enum.Enum):
    """Where a process is in its life; ``public`` is the status string of SPEC §7."""

    WAITING = "waiting"
    STARTING = "starting"
    RUNNING = "running"
    READY = "ready"
    STOPPING = "stopping"
    #: A run ended and another will follow (after its delay): shown as "exited".
    BACKOFF = "backoff"
    EXITED = "exited"
    #: A oneshot that succeeded: shown as "exited"; satisfies ``completed``.
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    #: Stopped on request (``trinit ctl stop``, the library's ``stop()``): stays stopped until started.
    STOPPED = "stopped"

    #: By identity, in C: Enum's own hash (of the name) runs Python code at each set lookup.
    __hash__ = object.__hash__

    @property
    def public(self) -> StatusName:
        return cast("StatusName", _PUBLIC.get(self, self.value))

    @property
    def final(self) -> bool:
        """Nothing more happens on its own: only a start or restart revives it."""
        return self in FINAL

    @property
    def live(self) -> bool:
        """A process of this runner exists (it may be stopping)."""
        return self in (State.RUNNING, State.READY, State.STOPPING)


class EndReason(enum.Enum):
    """Why trinit ended (or skipped) the current run, when it was not the process's own doing."""

    __hash__ = object.__hash__

    #: The shutdown stops it.
    STOP = "stop"
    #: A user stopped it (``ctl stop``, ``stop()``): it stays stopped until started again.
    HOLD = "hold"
    RESTART = "restart"
    NOT_READY = "not_ready"
    TIMED_OUT = "timed_out"
    #: Skipped: a process it waits for can never meet its condition.
    DEPENDENCY = "dependency"
    #: Stopped because a process it follows (``restart = true``, SPEC §10) restarts: it is
    #: started again once that one has (:mod:`.cascade`), never a failure.
    FOLLOW = "follow"
    #: Its health checks or watchdog failed, and the health action restarts or fails it (SPEC §9).
    UNHEALTHY = "unhealthy"


class Health(enum.Enum):
    """What the health checks or the watchdog of a ready process last found (SPEC §9);
    a runner's ``health`` is None before the first verdict of a run, and between runs."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


#: trinit ends the run for good (no restart, no retry of its own).
STOPS = frozenset({EndReason.STOP, EndReason.HOLD, EndReason.FOLLOW})


class IllegalTransition(RuntimeError):
    """A runner tried a state change the table does not allow (a bug in trinit)."""


_PUBLIC = {State.BACKOFF: "exited", State.COMPLETED: "exited"}

FINAL = frozenset({State.EXITED, State.COMPLETED, State.FAILED, State.SKIPPED, State.STOPPED})

_ENDED_RUN = {State.BACKOFF, State.EXITED, State.COMPLETED, State.FAILED, State.STOPPED}

#: The one table of allowed moves.
TRANSITIONS: dict[State, frozenset[State]] = {
    # RUNNING: a process started before the runtime is adopted as it is.
    State.WAITING: frozenset({State.STARTING, State.RUNNING, State.SKIPPED, State.STOPPED}),
    # A spawn that failed ends the attempt right there.
    State.STARTING: frozenset({State.RUNNING, *_ENDED_RUN}),
    State.RUNNING: frozenset({State.READY, State.STOPPING, *_ENDED_RUN}),
    State.READY: frozenset({State.STOPPING, *_ENDED_RUN}),
    # A second stop (the shutdown after a failed probe) stays in STOPPING.
    State.STOPPING: frozenset({State.STOPPING, *_ENDED_RUN}),
    State.BACKOFF: frozenset({State.STARTING, State.EXITED, State.FAILED, State.STOPPED}),
    # A start or restart of a finished process waits for its conditions again.
    **{s: frozenset({State.WAITING}) for s in FINAL},
}


def check_transition(old: State, new: State) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is in :data:`TRANSITIONS`."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"a process cannot go from {old.value} to {new.value}")
