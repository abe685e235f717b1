"""The signal router's decisions (SPEC §3): what is forwarded, what is dropped, what ends trinit.

The faults, SIGPIPE and SIGXFSZ are read from a signalfd with their sender: forwarded when
another process sent them, dropped when trinit raised them itself, fatal when the kernel
raised a fault for trinit's own code. The real-process side is tests/pid1/test_signals.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from typing import Any, cast

import pytest
import trio

from trinit.runtime.bootstrap import FatalSignal, SignalRouter

S = signal.Signals
SI_USER = 0
SEGV_MAPERR = 1
OWN_PID = 4242


class Token:
    """Stands in for trio's token: records what the handler hands over."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def run_sync_soon(self, fn: Any, *args: Any, idempotent: bool = False) -> None:
        self.calls.append(args)


def make_router(rewrite: dict[int, int] | None = None) -> tuple[SignalRouter, Token, list[int]]:
    token = Token()
    sent: list[int] = []
    router = SignalRouter(
        cast(trio.lowlevel.TrioToken, token),
        frozenset(),
        on_signal=lambda received, passed: None,
        on_child=None,
        rewrite=rewrite,
        own_pid=OWN_PID,
    )
    router.targets = (sent.append,)
    return router, token, sent


@pytest.mark.parametrize("sig", [S.SIGSEGV, S.SIGBUS, S.SIGFPE, S.SIGILL, S.SIGPIPE, S.SIGXFSZ])
def test_an_inspected_signal_from_another_process_is_forwarded(sig: int) -> None:
    router, token, sent = make_router()
    router.inspect(sig, SI_USER, 77)
    router.inspect(sig, SI_USER, 0)  # from outside the PID namespace: no pid
    assert sent == [sig, sig]
    assert token.calls == [(sig, sig), (sig, sig)]


@pytest.mark.parametrize("sig", [S.SIGPIPE, S.SIGXFSZ])
def test_trinits_own_sigpipe_is_dropped_not_forwarded(sig: int) -> None:
    """A write of trinit's to a closed pipe raises SIGPIPE at trinit (si_pid is its own): passing
    it on would kill the main process for trinit's own broken pipe."""
    router, token, sent = make_router()
    router.inspect(sig, SI_USER, OWN_PID)
    assert sent == []
    assert token.calls == [(sig, 0)]


def test_a_fault_the_kernel_raised_in_trinit_is_fatal() -> None:
    router, _, sent = make_router()
    with pytest.raises(FatalSignal, match="SIGBUS"):
        router.inspect(S.SIGBUS, SEGV_MAPERR, 0)
    assert sent == []


def test_an_inspected_signal_follows_rewrite() -> None:
    router, _, sent = make_router({S.SIGSEGV: S.SIGUSR1, S.SIGPIPE: 0})
    router.inspect(S.SIGSEGV, SI_USER, 77)
    router.inspect(S.SIGPIPE, SI_USER, 77)
    assert sent == [S.SIGUSR1]


def test_the_fallback_handler_forwards_faults_and_drops_pipe_of_unknown_origin() -> None:
    router, token, sent = make_router()
    router._handler(S.SIGSEGV, None)
    router._handler(S.SIGPIPE, None)
    assert sent == [S.SIGSEGV]
    assert token.calls == [(S.SIGSEGV, S.SIGSEGV), (S.SIGPIPE, 0)]


def test_a_genuine_fault_still_ends_trinit_instead_of_spinning() -> None:
    """With the router installed (a handler for SIGSEGV, the signal held blocked), a real
    segmentation fault in trinit's process ends it by SIGSEGV: the kernel forces a blocked
    fault to its default action. A Python-level handler alone would return into the faulting
    instruction forever."""
    script = textwrap.dedent(
        """
        import ctypes, resource, signal, trio
        from trinit.boot.signals import HANDLED
        from trinit.runtime.bootstrap import SignalRouter

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        async def main():
            router = SignalRouter(
                trio.lowlevel.current_trio_token(), HANDLED - {signal.SIGCHLD},
                on_signal=lambda r, p: None, on_child=None,
            )
            router.install()
            assert signal.getsignal(signal.SIGSEGV) is not signal.SIG_DFL
            ctypes.string_at(0)

        trio.run(main)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=20)
    assert done.returncode == -S.SIGSEGV, done.stderr.decode()
