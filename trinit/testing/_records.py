"""What a :class:`~trinit.testing.FakeOS` records: spawns, signals sent, and its processes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import attrs

from ._behaviour import Behaviour

if TYPE_CHECKING:
    from ..config.hardening import Hardening
    from ..system.environ import Credentials


@attrs.frozen
class Spawn:
    """One call of ``spawn``: what was asked, when, and the pid (or the errno it failed with)."""

    time: float
    name: str
    attempt: int
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None
    creds: Credentials | None
    stdin: int | None
    stdout: int | None
    stderr: int | None
    pid: int | None
    error: int | None = None
    #: What it was to apply before exec (SPEC §12), None without hardening keys.
    hardening: Hardening | None = None


@attrs.frozen
class Sent:
    """One signal sent: to ``pid`` (a process), to a process group (``group``), or to
    everyone left (``everyone``, pid -1). ``name`` is the fake process it was aimed at."""

    time: float
    pid: int
    signal: int
    group: bool = False
    everyone: bool = False
    name: str | None = None
    via: Literal["kill", "killpg", "kill_all", "pidfd"] = "kill"


@attrs.define(eq=False)
class FakeProcess:
    """A fake process: its script and what happened to it."""

    pid: int
    name: str
    argv: tuple[str, ...]
    behaviour: Behaviour
    attempt: int
    started_at: float
    pgid: int
    adopted: bool = False
    #: Raw wait status once it has ended; ``exited_at`` says when.
    status: int | None = None
    exited_at: float | None = None
    reaped: bool = False
    received: list[Sent] = attrs.field(factory=list)
    #: The fds it was given (``ready = { fd = N }``): N -> trinit's copy, for a test to write to.
    fds: dict[int, int] = attrs.field(factory=dict)
    _due: float | None = None
    _due_status: int = 0
    _generation: int = 0

    @property
    def alive(self) -> bool:
        return self.status is None


class Records:
    """The questions a test asks a :class:`~trinit.testing.FakeOS` about what it recorded."""

    spawns: list[Spawn]
    signals: list[Sent]
    processes: dict[int, FakeProcess]

    def spawns_of(self, name: str) -> list[Spawn]:
        """Spawns (successful or not) of the process or key ``name``, in order."""
        return [s for s in self.spawns if s.name == name]

    def start_times(self, name: str) -> list[float]:
        """When ``name`` was started successfully, in order."""
        return [s.time for s in self.spawns_of(name) if s.pid is not None]

    def signals_to(self, name: str) -> list[Sent]:
        """Signals aimed at the processes of ``name`` (by pid, group or pidfd; not kill_all)."""
        return [s for s in self.signals if s.name == name]

    def processes_named(self, name: str) -> list[FakeProcess]:
        return [p for p in self.processes.values() if p.name == name]

    def alive(self) -> list[FakeProcess]:
        """The fake processes that have not ended."""
        return [p for p in self.processes.values() if p.alive]
