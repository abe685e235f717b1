"""Process-wide effects of a run, in one place for the CLI, ``trinit.run`` and ``open_supervisor``.

Before the run (:func:`prepare`): the open-files limit, the subreaper, the parent-death
signal, and the signals held until their handlers exist. In the run (:class:`Bootstrap`):
the exit watcher (the Reaper owning ``waitpid(-1)`` when reaping orphans, else one pidfd
per child) and the signal handlers (:class:`SignalRouter`), restored afterwards.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import attrs
import trio

from ..boot.signals import FORWARDED, SHUTDOWN, SWALLOWED, block, unblock
from ..system.reaper import PidfdWatcher, Reaper

if TYPE_CHECKING:
    from types import FrameType

    from ..io.log import Logger
    from ..system.protocol import OSLayer
    from ..system.reaper import ExitWatcher
    from .supervisor import RuntimeOptions

    Forwarder = Callable[[int], object]

_CATCHABLE = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}


def handled_signals(options: RuntimeOptions) -> frozenset[int]:
    """The signals a run with ``options`` installs handlers for."""
    wanted: set[int] = set()
    if options.handle_signals:
        wanted |= FORWARDED | SHUTDOWN | SWALLOWED
        if options.pdeathsig:
            wanted.add(options.pdeathsig)
    if options.reap_orphans:
        wanted.add(signal.SIGCHLD)
    return frozenset(wanted)


def prepare(os_layer: OSLayer, options: RuntimeOptions, *, owns_process: bool, hold_signals: bool) -> None:
    """The settings made once before a run; each is idempotent (the CLI makes some of them
    before its fast start already).

    ``owns_process``: trinit is the whole program (the CLI, ``trinit.run``), so it may raise
    the open-files limit; ``open_supervisor`` leaves it alone. ``hold_signals`` blocks the
    handled signals until the handlers are in place, so none sent in between is lost.
    """
    if owns_process:
        os_layer.raise_nofile()
    if options.reap_orphans and not os_layer.is_pid1:
        os_layer.set_subreaper()
    if options.pdeathsig:
        os_layer.set_pdeathsig(options.pdeathsig)
    if hold_signals:
        block(handled_signals(options))


@attrs.define(eq=False)
class Bootstrap:
    """The exit watcher and the signal handlers of one run."""

    os: OSLayer
    log: Logger
    options: RuntimeOptions
    #: Given (a fake in tests), else made by :meth:`start_watcher`.
    watcher: ExitWatcher | None = None
    router: SignalRouter | None = None
    _reaper: Reaper | None = None

    def start_watcher(self, nursery: trio.Nursery, on_orphan: Callable[[int, int], None]) -> ExitWatcher:
        if self.watcher is None:
            if self.options.reap_orphans:
                self._reaper = Reaper(self.os, self.log)
                self._reaper.on_orphan = on_orphan
                self.watcher = self._reaper
            else:
                self.watcher = PidfdWatcher(self.os, nursery)
        return self.watcher

    def install_signals(
        self, on_signal: Callable[[int, int], None], targets: tuple[Forwarder, ...]
    ) -> None:
        """Install the handlers (after the processes started before trio are watched)."""
        opts = self.options
        if not opts.handle_signals and self._reaper is None:
            return
        signals = handled_signals(opts)
        if self._reaper is None:
            signals -= {signal.SIGCHLD}
        self.router = SignalRouter(
            trio.lowlevel.current_trio_token(),
            signals,
            on_signal=on_signal,
            on_child=self._reaper.reap if self._reaper is not None else None,
            collect=self._reaper.collect if self._reaper is not None else None,
            rewrite=opts.rewrite,
        )
        self.router.targets = targets
        self.router.install()

    def set_targets(self, targets: tuple[Forwarder, ...]) -> None:
        if self.router is not None:
            self.router.targets = targets

    def restore(self) -> None:
        if self.router is not None and not self.options.keep_handlers:
            self.router.restore()


def reset_inherited_signals(handled: frozenset[int]) -> None:
    """Undo signal ignores trinit inherited, so children start with default dispositions.

    Children are started by fork+exec: a handler resets to the default across exec, but
    an ignored signal stays ignored. Python's own SIGPIPE/SIGXFSZ ignores are undone by
    subprocess (restore_signals) in each child.
    """
    for signum in _CATCHABLE - handled - {signal.SIGPIPE, signal.SIGXFSZ}:
        if signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)


class SignalRouter:
    """Python-level handlers for ``signals``, installed on the main thread.

    Forwarding is decided in the handler itself (it runs on the main thread as soon as
    the event loop wakes, before trio schedules anything): that saves a trip through the
    scheduler. Everything else is handed to the runtime through ``TrioToken.run_sync_soon``,
    which is safe to call from a signal handler. ``rewrite`` maps a received signal to the
    one passed on (0: drop it). ``targets`` is replaced by the runtime whenever the set of
    processes that get forwarded signals changes.
    """

    def __init__(
        self,
        token: trio.lowlevel.TrioToken,
        signals: frozenset[int],
        *,
        on_signal: Callable[[int, int], None],
        on_child: Callable[[], None] | None,
        collect: Callable[[], None] | None = None,
        rewrite: Mapping[int, int] | None = None,
    ) -> None:
        self._token = token
        self._on_signal = on_signal
        self._on_child = on_child
        self._collect = collect
        self._rewrite = dict(rewrite or {})
        self.targets: tuple[Forwarder, ...] = ()
        self.signals = signals
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
