"""Which signal means what, and holding them from trinit's first instruction.

The handlers that act on them live in :mod:`trinit.runtime.bootstrap`.
"""

from __future__ import annotations

import os
import signal

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms before the main process starts.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import FrameType

_S = signal.Signals

#: Passed on to the main process and to every process with ``forward_signals = true``.
FORWARDED: frozenset[int] = frozenset(
    {
        _S.SIGHUP,
        _S.SIGQUIT,
        _S.SIGUSR1,
        _S.SIGUSR2,
        _S.SIGWINCH,
        _S.SIGCONT,
        _S.SIGALRM,
        _S.SIGURG,
        _S.SIGIO,
        _S.SIGPWR,
    }
    | set(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))
)
#: Begin (or, repeated, hurry) the graceful shutdown.
SHUTDOWN: frozenset[int] = frozenset({_S.SIGTERM, _S.SIGINT})
#: Job control: neither forwarded nor allowed to stop trinit itself.
SWALLOWED: frozenset[int] = frozenset({_S.SIGTSTP, _S.SIGTTIN, _S.SIGTTOU})
#: Everything trinit handles. Blocked from the first instruction of the CLI until the
#: handlers are in place, so a signal sent while trinit starts is held, never lost (the
#: kernel drops signals to a namespace's PID 1 that still have the default action).
HANDLED: frozenset[int] = FORWARDED | SHUTDOWN | SWALLOWED | {_S.SIGCHLD}
def block(signals: frozenset[int] = HANDLED) -> None:
    """Block exactly ``signals`` (the first thing trinit does), unblocking any other inherited block."""
    signal.pthread_sigmask(signal.SIG_SETMASK, signals)


def unblock(signals: frozenset[int] = HANDLED) -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)


def exit_on_stop_signals(rewrite: Mapping[int, int]) -> None:
    """While the config loads, SIGTERM and SIGINT end trinit at once with 128+N.

    Nothing has been started yet, so there is nothing to stop gracefully, and holding the
    signal blocked through a slow load (a FIFO whose writer has not come, a huge config)
    would leave ``docker stop`` waiting for its kill timeout. A signal that ``-r`` drops
    stays blocked. The runtime's handlers replace these before anything starts.
    """
    stop = frozenset(s for s in SHUTDOWN if rewrite.get(s, s) != 0)
    for signum in stop:
        signal.signal(signum, _exit_before_start)
    unblock(stop)


def _exit_before_start(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    os.write(2, f"trinit: received {name} while loading the config; nothing was started\n".encode())
    os._exit(128 + signum)
