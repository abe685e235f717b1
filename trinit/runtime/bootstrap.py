"""Process-wide effects of a run, in one place for the CLI, ``trinit.run`` and ``open_supervisor``.

Before the run (:func:`prepare`): the open-files limit, the subreaper, the parent-death
signal, and the signals held until their handlers exist. In the run (:class:`Bootstrap`):
the exit watcher (the Reaper owning ``waitpid(-1)`` when reaping orphans, else one pidfd
per child) and the signal handlers (:class:`SignalRouter`), restored afterwards.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import attrs
import trio

from ..boot.signals import (
    FAULTS,
    FORWARDED,
    INSPECTED,
    SHUTDOWN,
    SWALLOWED,
    UNCATCHABLE,
    block,
    forwards,
    unblock,
)
from ..system.reaper import PidfdWatcher, Reaper
from ..system.sigfd import open_signalfd, read_signalfd
from ..system.status import ExitStatus

if TYPE_CHECKING:
    from types import FrameType

    from ..io.log import Logger
    from ..system.protocol import OSLayer
    from ..system.reaper import ExitWatcher
    from .options import RuntimeOptions

    Forwarder = Callable[[int], object]

_CATCHABLE = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}


def handled_signals(options: RuntimeOptions) -> frozenset[int]:
    """The signals a run with ``options`` installs handlers for."""
    wanted: set[int] = set()
    if options.handle_signals:
        wanted |= FORWARDED | FAULTS | SHUTDOWN | SWALLOWED
        if options.pdeathsig and options.pdeathsig not in UNCATCHABLE:
            # -p KILL (or STOP) gets no handler: the kernel's action is the point, as with tini.
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
    _nursery: trio.Nursery | None = None

    @property
    def reaps_orphans(self) -> bool:
        return self.watcher is not None and self.watcher.reaps_orphans

    def start_watcher(self, nursery: trio.Nursery) -> ExitWatcher:
        self._nursery = nursery  # the run's: the reader of the inspected signals runs there too
        if self.watcher is None:
            if self.options.reap_orphans:
                self._reaper = Reaper(self.os, self.log)
                self._reaper.on_orphan = self._on_orphan
                self.watcher = self._reaper
            else:
                self.watcher = PidfdWatcher(self.os, nursery)
        return self.watcher

    def _on_orphan(self, pid: int, raw: int) -> None:
        if self.log.enabled("debug"):
            status = ExitStatus.from_wait_status(raw)
            self.log.debug("orphan_reaped", f"reaped orphan pid {pid} ({status.describe()})", pid=pid)

    def install_signals(
        self,
        on_signal: Callable[[int, int], None],
        targets: tuple[Forwarder, ...],
        *,
        consumed: frozenset[int] = frozenset(),
    ) -> None:
        """Install the handlers (after the processes started before trio are watched);
        ``consumed`` signals are trinit's own (``reload_signal``), never forwarded."""
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
            collect=self._reaper.collect_if_cheap if self._reaper is not None else None,
            rewrite=opts.rewrite,
            consumed=consumed,
        )
        self.router.targets = targets
        self.router.install()
        if self.router.inspected_fd is not None and self._nursery is not None:
            self._nursery.start_soon(self.router.read_inspected, name="trinit signals")

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


class FatalSignal(Exception):
    """The kernel raised a fault signal for trinit's own code: trinit must end (after the
    emergency stop of its children), never carry on or spin."""


class SignalRouter:
    """Python-level handlers for ``signals``, installed on the main thread.

    Forwarding is decided in the handler itself (it runs on the main thread as soon as
    the event loop wakes, before trio schedules anything): that saves a trip through the
    scheduler. Everything else is handed to the runtime through ``TrioToken.run_sync_soon``,
    which is safe to call from a signal handler. ``rewrite`` maps a received signal to the
    one passed on (0: drop it). ``targets`` is replaced by the runtime whenever the set of
    processes that get forwarded signals changes.

    The :data:`INSPECTED` signals (faults, SIGPIPE, SIGXFSZ) stay blocked and are read
    from a signalfd with their sender, because a Python handler cannot tell a ``kill``
    from another process from one trinit raised itself. Their Python handlers are only a
    fallback (a spawn lifts the block for ~1 ms; a library program's own threads may not
    hold it): a fault arriving there is forwarded, a SIGPIPE/SIGXFSZ of unknown origin is
    dropped with a debug line rather than risk killing the main process with trinit's own.
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
        own_pid: int = 0,
        consumed: frozenset[int] = frozenset(),
    ) -> None:
        self._token = token
        self._on_signal = on_signal
        self._on_child = on_child
        self._collect = collect
        self._rewrite = dict(rewrite or {})
        self._own_pid = own_pid or os.getpid()
        #: Received as they are, never forwarded: they ask trinit itself (``reload_signal``).
        self._consumed = consumed
        self.targets: tuple[Forwarder, ...] = ()
        self.signals = signals
        self.inspected_fd: int | None = None
        self._saved: dict[int, object] = {}

    def install(self) -> None:
        """Install the handlers, then let the signals held since start-up through."""
        if self.signals & SHUTDOWN:
            reset_inherited_signals(self.signals)
        for signum in sorted(self.signals):
            self._saved[signum] = signal.signal(signum, self._handler)
        inspected = self.signals & INSPECTED
        if inspected:
            block(inspected, replace=False)
            self.inspected_fd = open_signalfd(inspected)
        unblock(self.signals - inspected)
        if self._on_child is not None:
            self._on_child()  # exits that happened before the handler existed

    def restore(self) -> None:
        fd, self.inspected_fd = self.inspected_fd, None
        if fd is not None:
            trio.lowlevel.notify_closing(fd)
            os.close(fd)
            unblock(self.signals & INSPECTED)
        for signum, old in self._saved.items():
            signal.signal(signum, old)  # type: ignore[arg-type]
        self._saved.clear()

    async def read_inspected(self) -> None:
        """Read the inspected signals with their sender until :meth:`restore`."""
        while (fd := self.inspected_fd) is not None:
            try:
                await trio.lowlevel.wait_readable(fd)
            except (trio.ClosedResourceError, OSError):
                return
            for signum, code, sender in read_signalfd(fd):
                self.inspect(signum, code, sender)

    def inspect(self, signum: int, code: int, sender: int) -> None:
        """One inspected signal: ``code`` is its ``si_code`` (<= 0: sent by a process), ``sender`` its pid."""
        if code <= 0 and sender != self._own_pid:
            self._route(signum)
        elif signum in FAULTS and code > 0:
            raise FatalSignal(
                f"the kernel raised {signal.Signals(signum).name} (code {code}) in trinit itself"
            )
        else:  # trinit's own write raised SIGPIPE/SIGXFSZ: the write's error says it already
            self._drop(signum)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if signum in INSPECTED and signum not in FAULTS:
            self._drop(signum)  # fallback: its sender is unknown (see the class)
        else:
            self._route(signum)

    def _drop(self, signum: int) -> None:
        try:
            self._token.run_sync_soon(self._on_signal, signum, 0, idempotent=True)
        except Exception:  # trio.RunFinishedError: the run is over
            pass

    def _route(self, signum: int) -> None:
        try:
            if signum == signal.SIGCHLD:
                assert self._on_child is not None
                if self._collect is not None:
                    self._collect()
                self._token.run_sync_soon(self._on_child, idempotent=True)
                return
            if signum in self._consumed:  # trinit's own, before any -r: never passed on
                self._token.run_sync_soon(self._on_signal, signum, signum, idempotent=True)
                return
            passed = self._rewrite.get(signum, signum)
            if passed == 0:
                return
            if forwards(signum, self._rewrite):
                for send in self.targets:
                    try:
                        send(passed)
                    except (ProcessLookupError, PermissionError):
                        pass
            self._token.run_sync_soon(self._on_signal, signum, passed, idempotent=True)
        except Exception:  # trio.RunFinishedError: the run is over, nobody listens any more
            pass
