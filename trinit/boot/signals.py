"""Which signal means what, and the handlers that act on them at the edge.

Forwarding is decided in the Python-level handler itself (it runs on the main thread as
soon as the event loop wakes, before trio schedules anything): that saves a trip through
the scheduler. Everything else (shutdown, logging) is handed to the runtime through
``TrioToken.run_sync_soon``, which is safe to call from a signal handler.
"""

from __future__ import annotations

import os
import signal

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms before the main process starts.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import FrameType

    import trio

    Forwarder = Callable[[int], object]

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
_CATCHABLE = frozenset(signal.valid_signals()) - {_S.SIGKILL, _S.SIGSTOP}


def reset_inherited_signals(handled: frozenset[int]) -> None:
    """Undo signal ignores trinit inherited, so children start with default dispositions.

    Children are started by fork+exec: a handler resets to the default across exec, but
    an ignored signal stays ignored. Python's own SIGPIPE/SIGXFSZ ignores are undone by
    subprocess (restore_signals) in each child.
    """
    for signum in _CATCHABLE - handled - {signal.SIGPIPE, signal.SIGXFSZ}:
        if signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)


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


class SignalRouter:
    """Python-level handlers for :data:`HANDLED`, installed on the main thread.

    ``rewrite`` maps a received signal to the one passed on (0: drop it). ``targets`` is
    replaced by the runtime whenever the set of processes that get forwarded signals
    changes; the handler reads it without locks (it runs on the same thread).
    """

    def __init__(
        self,
        token: trio.lowlevel.TrioToken,
        *,
        on_signal: Callable[[int, int], None],
        on_child: Callable[[], None] | None,
        collect: Callable[[], None] | None = None,
        rewrite: Mapping[int, int] | None = None,
        extra: frozenset[int] = frozenset(),
        handle_shutdown: bool = True,
    ) -> None:
        self._token = token
        self._on_signal = on_signal
        self._on_child = on_child
        self._collect = collect
        self._rewrite = dict(rewrite or {})
        self.targets: tuple[Forwarder, ...] = ()
        wanted: set[int] = set()
        if handle_shutdown:
            wanted |= FORWARDED | SHUTDOWN | SWALLOWED | extra
        if on_child is not None:
            wanted.add(signal.SIGCHLD)
        self.signals = frozenset(wanted)
        self._saved: dict[int, object] = {}

    def install(self) -> None:
        """Install the handlers, then let the signals held since start-up through."""
        if self.signals & SHUTDOWN:
            reset_inherited_signals(self.signals)
        for signum in sorted(self.signals):
            self._saved[signum] = signal.signal(signum, self._handler)
        unblock(self.signals)
        if self._on_child is not None:
            self._on_child()  # exits that happened before the handler existed

    def restore(self) -> None:
        for signum, old in self._saved.items():
            signal.signal(signum, old)  # type: ignore[arg-type]
        self._saved.clear()

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        try:
            if signum == signal.SIGCHLD:
                assert self._on_child is not None
                if self._collect is not None:
                    self._collect()
                self._token.run_sync_soon(self._on_child, idempotent=True)
                return
            passed = self._rewrite.get(signum, signum)
            if passed == 0:
                return
            if signum in FORWARDED:
                for send in self.targets:
                    try:
                        send(passed)
                    except (ProcessLookupError, PermissionError):
                        pass
            self._token.run_sync_soon(self._on_signal, signum, passed, idempotent=True)
        except Exception:  # trio.RunFinishedError: the run is over, nobody listens any more
            pass
