"""Which signal means what, and holding them from trinit's first instruction.

The handlers that act on them live in :mod:`trinit.runtime.bootstrap`.
"""

from __future__ import annotations

import os

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms before the main process starts.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Mapping
    from types import FrameType
else:
    # The C module: `signal` builds enums (and imports enum, ~3.5 ms) before the main process starts.
    import _signal


#: Passed on to the main process and to every process with ``forward_signals = true``:
#: every catchable signal except those below (SPEC §3), as tini and dumb-init do.
FORWARDED: frozenset[int] = frozenset(
    {
        _signal.SIGHUP,
        _signal.SIGQUIT,
        _signal.SIGTRAP,
        _signal.SIGABRT,
        _signal.SIGUSR1,
        _signal.SIGUSR2,
        _signal.SIGPIPE,
        _signal.SIGALRM,
        _signal.SIGSTKFLT,
        _signal.SIGCONT,
        _signal.SIGURG,
        _signal.SIGXCPU,
        _signal.SIGXFSZ,
        _signal.SIGVTALRM,
        _signal.SIGPROF,
        _signal.SIGWINCH,
        _signal.SIGIO,
        _signal.SIGPWR,
        _signal.SIGSYS,
    }
    | set(range(_signal.SIGRTMIN, _signal.SIGRTMAX + 1))
)
#: A fault: passed on like the others only when another process sent it; one the kernel
#: raised for trinit's own code ends trinit.
FAULTS: frozenset[int] = frozenset({_signal.SIGSEGV, _signal.SIGBUS, _signal.SIGFPE, _signal.SIGILL})
#: Read with their sender (signalfd, never a Python handler) because trinit may raise them
#: itself: a fault, or SIGPIPE/SIGXFSZ from one of its own writes. Kept blocked in every
#: thread of trinit; only a spawn lifts the block for its ~1 ms, so the child's mask is empty.
INSPECTED: frozenset[int] = FAULTS | {_signal.SIGPIPE, _signal.SIGXFSZ}
#: Begin (or, repeated, hurry) the graceful shutdown.
SHUTDOWN: frozenset[int] = frozenset({_signal.SIGTERM, _signal.SIGINT})
#: Job control: neither forwarded nor allowed to stop trinit itself (unless ``-r`` maps them).
SWALLOWED: frozenset[int] = frozenset({_signal.SIGTSTP, _signal.SIGTTIN, _signal.SIGTTOU})
#: Signals no process can catch: ``-p KILL`` gets no handler, ``-r KILL:…`` is a usage error.
UNCATCHABLE: frozenset[int] = frozenset({_signal.SIGKILL, _signal.SIGSTOP})
#: Everything trinit handles: every catchable signal. Blocked from the first instruction of
#: the CLI until the handlers are in place, so a signal sent while trinit starts is held,
#: never lost (the kernel drops signals to a namespace's PID 1 that still have the default action).
HANDLED: frozenset[int] = FORWARDED | FAULTS | SHUTDOWN | SWALLOWED | {_signal.SIGCHLD}


def forwards(received: int, rewrite: Mapping[int, int]) -> bool:
    """Whether ``received`` is passed on to the forwarding targets (as ``rewrite`` maps it).

    A fault counts: by the time a fault is routed here, it is known to come from another
    process. Job-control signals only when ``-r`` maps them (SPEC §3).
    """
    if received in FORWARDED or received in FAULTS:
        return True
    return received in SWALLOWED and rewrite.get(received, 0) != 0


def block(signals: frozenset[int] = HANDLED, *, replace: bool = True) -> None:
    """Block exactly ``signals`` (the first thing trinit does), unblocking any other inherited
    block; with ``replace=False`` add them to the mask instead."""
    _signal.pthread_sigmask(_signal.SIG_SETMASK if replace else _signal.SIG_BLOCK, signals)


def unblock(signals: frozenset[int] = HANDLED) -> None:
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, signals)


def exit_on_stop_signals(rewrite: Mapping[int, int]) -> None:
    """While the config loads, SIGTERM and SIGINT end trinit at once, with exit code 0.

    Nothing has been started yet, so there is nothing to stop gracefully, and holding the
    signal blocked through a slow load (a FIFO whose writer has not come, a huge config)
    would leave ``docker stop`` waiting for its kill timeout. As with a stop before the main
    process has started, a shutdown asked for is not a failure: exit 0. A signal that ``-r`` drops
    stays blocked. The runtime's handlers replace these before anything starts.
    """
    stop = frozenset(s for s in SHUTDOWN if rewrite.get(s, s) != 0)
    for signum in stop:
        _signal.signal(signum, _exit_before_start)
    unblock(stop)


def _exit_before_start(signum: int, frame: FrameType | None) -> None:
    from .parse import signal_name  # a signal that ends trinit: the time it takes no longer matters

    name = signal_name(signum)
    os.write(2, f"trinit: received {name} while loading the config; nothing was started\n".encode())
    os._exit(0)
