"""What a signal trinit received does (SPEC §3): begin, hurry or pass on the shutdown, or log it.

Forwarding itself happens in the signal handler (:class:`.bootstrap.SignalRouter`);
this runs afterwards, in trio, for everything the handler hands over.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from ..boot.parse import signal_name
from ..boot.signals import SHUTDOWN, forwards
from .state import State

if TYPE_CHECKING:
    from .supervisor import Runtime


def on_signal(rt: Runtime, received: int, passed: int) -> None:
    """``received`` arrived and was rewritten (``-r``) to ``passed``; -p's signal comes here
    too, handled exactly as if a user had sent it. ``passed`` 0: dropped, because trinit
    raised it itself (its own write to a closed pipe) or its sender could not be known."""
    if passed == 0:
        rt.log.debug(
            "signal",
            f"dropped {signal_name(received)}: trinit raised it itself, or its sender is unknown",
            signal=signal_name(received),
        )
    elif received in SHUTDOWN:
        if not rt.shutting_down:
            rt.request_shutdown(f"received {signal_name(received)}", stop_signal=passed)
        elif received == signal.SIGINT:
            rt.log.warning("forced", "received SIGINT during the shutdown: skipping the remaining grace")
            rt.force_stop()
        else:
            _pass_to_stopping(rt, passed)
    elif received == rt.config.reload_signal:
        rt.reloader.on_signal(received)
    elif forwards(received, rt.options.rewrite):
        names = ", ".join(rt.forwarded_to()) or "nobody (no process running)"
        rt.log.debug("forwarded", f"forwarded {signal_name(passed)} to {names}", signal=signal_name(passed))
    else:
        rt.log.debug("signal", f"ignored {signal_name(received)}", signal=signal_name(received))


def _pass_to_stopping(rt: Runtime, passed: int) -> None:
    """A repeated SIGTERM reaches the processes still stopping (one may want it twice)."""
    for r in rt.runners.values():
        if r.state is State.STOPPING and r.handle is not None and not r.handle.exited:
            try:
                r.handle.signal(passed)
            except ProcessLookupError:
                pass
    rt.log.info("signal", f"passed {signal_name(passed)} on to the processes still stopping")
