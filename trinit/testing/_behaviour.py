"""The scripts fake processes follow: :class:`Behaviour`, :class:`Exit`, and raw wait statuses."""

from __future__ import annotations

import errno as _errno
import signal as _signal
from collections.abc import Collection, Mapping, Sequence

import attrs

#: Signals whose default action is to do nothing (stops and continues are not modelled).
_DEFAULT_IGNORED = frozenset(
    {
        _signal.SIGCHLD,
        _signal.SIGCONT,
        _signal.SIGURG,
        _signal.SIGWINCH,
        _signal.SIGSTOP,
        _signal.SIGTSTP,
        _signal.SIGTTIN,
        _signal.SIGTTOU,
    }
)


def exit_status(code: int | None = None, signal: int | None = None) -> int:
    """A raw wait status as ``os.waitpid`` gives it: ``code << 8``, or the killing signal."""
    if signal is not None:
        return signal & 0x7F
    return ((code or 0) & 0xFF) << 8


@attrs.frozen
class Exit:
    """How a fake process ends when it receives a signal.

    ``code`` to exit with that code, ``signal`` to die of that signal; neither: die of the
    signal received. ``delay`` seconds after the signal arrived.
    """

    code: int | None = None
    signal: int | None = None
    delay: float = 0.0


def _signal_map(value: Mapping[int, Exit | None]) -> Mapping[int, Exit | None]:
    return dict(value)


def _signal_set(value: Collection[int]) -> frozenset[int]:
    return frozenset(value)


@attrs.frozen(kw_only=True)
class Behaviour:
    """The script of one start of a fake process.

    - ``runs``: seconds until it ends by itself (None: it runs until a signal ends it);
      it then exits with ``code``, or dies of ``signal`` if that is set.
    - ``on_signal``: per signal, an :class:`Exit` (how and when it ends) or None (ignored).
      A signal not listed does what its default action does: most kill at once; SIGCHLD,
      SIGCONT, SIGURG, SIGWINCH and the stop signals are ignored. ``ignore`` lists more
      signals to ignore (``ignore=[SIGTERM]``). SIGKILL always kills at once.
    - ``spawn_error``: the spawn fails with this errno (ENOENT, EACCES) and nothing runs.
    """

    runs: float | None = None
    code: int = 0
    signal: int | None = None
    on_signal: Mapping[int, Exit | None] = attrs.field(factory=dict, converter=_signal_map)
    ignore: frozenset[int] = attrs.field(default=frozenset(), converter=_signal_set)
    spawn_error: int | None = None

    @classmethod
    def exits(
        cls,
        code: int = 0,
        after: float = 0.0,
        *,
        on_signal: Mapping[int, Exit | None] | None = None,
        ignore: Collection[int] = (),
    ) -> Behaviour:
        """Ends by itself with ``code`` after ``after`` seconds."""
        return cls(runs=after, code=code, on_signal=on_signal or {}, ignore=frozenset(ignore))

    @classmethod
    def killed(cls, signal: int, after: float = 0.0) -> Behaviour:
        """Dies of ``signal`` (a crash, say) after ``after`` seconds."""
        return cls(runs=after, signal=signal)

    @classmethod
    def forever(
        cls, *, on_signal: Mapping[int, Exit | None] | None = None, ignore: Collection[int] = ()
    ) -> Behaviour:
        """Runs until a signal ends it."""
        return cls(on_signal=on_signal or {}, ignore=frozenset(ignore))

    @classmethod
    def stubborn(cls, runs: float | None = None, code: int = 0) -> Behaviour:
        """Ignores SIGTERM and SIGINT: only SIGKILL ends it early."""
        return cls(runs=runs, code=code, ignore=frozenset({_signal.SIGTERM, _signal.SIGINT}))

    @classmethod
    def not_found(cls) -> Behaviour:
        """The spawn fails with ENOENT (a shell's 127)."""
        return cls(spawn_error=_errno.ENOENT)

    @classmethod
    def not_executable(cls) -> Behaviour:
        """The spawn fails with EACCES (a shell's 126)."""
        return cls(spawn_error=_errno.EACCES)

    def reaction(self, sig: int) -> Exit | None:
        """What receiving ``sig`` does: how it ends, or None when it is ignored."""
        if sig == _signal.SIGKILL:
            return Exit()
        if sig in self.ignore:
            return None
        if sig in self.on_signal:
            return self.on_signal[sig]
        return None if sig in _DEFAULT_IGNORED else Exit()


Script = Behaviour | Sequence[Behaviour]
