"""``RuntimeOptions``: what a run takes besides its config (the CLI's flags, ``trinit.run``'s arguments)."""

from __future__ import annotations

from collections.abc import Mapping

import attrs


@attrs.frozen
class RuntimeOptions:
    """Settings of a run that are not part of the config file (mostly the command line's)."""

    #: -e: final exit codes that become 0.
    success_exits: frozenset[int] = frozenset()
    #: -r: a received signal is passed on as another one (0 drops it).
    rewrite: Mapping[int, int] = attrs.field(factory=dict)
    #: Install signal handlers (the CLI, or ``handle_signals=True``).
    handle_signals: bool = False
    #: Own waitpid(-1) and adopt orphans (the CLI, or ``reap_orphans=True``).
    reap_orphans: bool = False
    #: Extra signal treated as if sent by a user (-p).
    pdeathsig: int | None = None
    #: Leave the handlers installed after the run (the CLI exits right after; restoring
    #: them would let a late SIGTERM kill trinit before it reports its exit code).
    keep_handlers: bool = False
