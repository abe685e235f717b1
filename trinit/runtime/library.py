"""``open_supervisor``: trinit's runtime inside any trio program."""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from .._errors import TrinitError
from ..config.load import load_config
from ..config.plan import make_plan
from ..io.log import Logger
from ..system.real import RealOS
from .bootstrap import prepare
from .handle import Supervisor, make_handle
from .options import RuntimeOptions
from .supervisor import Runtime

if TYPE_CHECKING:
    from ..config.model import Config

#: After the budget, how long leaving the block may still wait for the runtime to finish.
_GRACE_AFTER_BUDGET = 5.0


@asynccontextmanager
async def open_supervisor(
    config: Config, *, handle_signals: bool = False, reap_orphans: bool = False
) -> AsyncIterator[Supervisor]:
    """Start ``config``'s processes; leaving the block stops them gracefully (SPEC §5).

    Leaving normally, by an exception, or by cancellation from outside all run the same
    ordered shutdown under ``shutdown_timeout``; it is shielded from that cancellation and
    bounded by its own deadlines, so no process outlives the block.

    By default nothing process-wide is touched: no signal handlers, no subreaper, and no
    ``waitpid(-1)`` (each child is waited for on its own pidfd), so ``trio.run_process``
    elsewhere in the program still sees true exit statuses. ``handle_signals=True`` and
    ``reap_orphans=True`` turn on what the CLI does; both need the main thread.
    """
    if (handle_signals or reap_orphans) and threading.current_thread() is not threading.main_thread():
        raise TrinitError(
            "handle_signals=True and reap_orphans=True need the main thread, where Python delivers "
            "signals; call open_supervisor() from the main thread or leave both off."
        )
    plan = make_plan(config)
    os_layer = RealOS()
    options = RuntimeOptions(handle_signals=handle_signals, reap_orphans=reap_orphans)
    # A config read from a file is read again by `trinit ctl reload` (sup.reload takes any config).
    source = functools.partial(load_config, config.source) if config.source else None
    rt = Runtime(
        plan,
        os_layer=os_layer,
        log=Logger(log_format=config.log_format),
        options=options,
        reload_source=source,
    )
    # The handlers are installed at once inside trio: nothing to hold until then.
    prepare(os_layer, options, owns_process=False, hold_signals=False)

    async def run_shielded(task_status: trio.TaskStatus[Runtime] = trio.TASK_STATUS_IGNORED) -> None:
        # The shutdown must survive a cancellation of the caller's scope: it is what
        # stops the processes. The runtime bounds itself with shutdown_timeout.
        with trio.CancelScope(shield=True):
            await rt.run(task_status=task_status)

    raised: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_shielded)
            try:
                yield make_handle(rt)
            except BaseException as exc:
                raised = exc
                raise
            finally:
                rt.request_shutdown("the open_supervisor() block was left")
                with (
                    trio.CancelScope(shield=True),
                    trio.move_on_after(rt.config.shutdown_timeout + _GRACE_AFTER_BUDGET),
                ):
                    await rt.finished.wait()
                    await trio.to_thread.run_sync(rt.log.close, 1.0)
    except BaseExceptionGroup as group:
        # What the block raised comes out as itself, not wrapped by our nursery.
        if raised is not None and len(group.exceptions) == 1 and group.exceptions[0] is raised:
            raise raised from raised.__cause__
        raise
