"""Which signal means what, and holding them from trinit's first instruction.

The handlers that act on them live in :mod:`trinit.runtime.bootstrap`.
"""

from __future__ import annotations

import signal

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

