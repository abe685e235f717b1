"""Running a config to its end: what the CLI does, and ``trinit.run`` for programs.

Library code raises (a config that cannot start is a ConfigError); only the CLI prints
and exits. Imported lazily by the fast start, after the main process is already running.
"""

from __future__ import annotations

import functools
import gc
from typing import TYPE_CHECKING

import trio

from .._errors import ConfigError
from ..boot.overrides import load_for_cli, log_verbosity
from ..config.plan import make_plan
from ..io.log import Logger
from ..system.real import RealOS, trim_heap
from .bootstrap import prepare
from .exit_code import INTERNAL_ERROR
from .options import RuntimeOptions
from .shutdown import describe_error
from .supervisor import Runtime

if TYPE_CHECKING:
    from ..boot.argv import Options
    from ..config.model import Config
    from ..system.protocol import OSLayer


def run_cli(opts: Options, config: Config, os_layer: OSLayer, early: int | OSError | None) -> int:
    """Everything after the fast start and the config (``load_for_cli``): plan, trio run, exit code.

    Raises ConfigError (after stopping a main process already started) for the CLI to print.
    """
    log = Logger(verbosity=log_verbosity(opts), log_format=config.log_format)
    options = RuntimeOptions(
        success_exits=frozenset(opts.success_exits),
        rewrite=opts.rewrite,
        handle_signals=True,
        reap_orphans=True,
        pdeathsig=opts.pdeathsig,
        keep_handlers=True,
    )
    prestarted = {"main": early} if early is not None else None
    try:
        rt = Runtime(
            make_plan(config),
            os_layer=os_layer,
            log=log,
            options=options,
            prestarted=prestarted,
            reload_source=functools.partial(load_for_cli, opts) if opts.config is not None else None,
        )
    except ConfigError:
        if isinstance(early, int):  # pragma: no cover - zero-config has nothing left to get wrong here
            log.error("internal_error", "the config could not be built; stopping the main process")
            os_layer.last_resort_stop(early)
        raise
    # The config, the plan and the modules live as long as the run: the collector's full passes
    # need not walk them again (~25 ms of start at 10,000 processes); the parse's pages go back.
    gc.freeze()
    trim_heap()
    # The CLI blocked every handled signal at its first instruction already.
    prepare(os_layer, options, owns_process=True, hold_signals=False)
    return _run(rt, bool(prestarted))


def run(config: Config, *, handle_signals: bool = True, reap_orphans: bool = True) -> int:
    """Run ``config`` as the CLI does: blocks until the shutdown has finished; returns the exit code.

    Call it from the main thread of a program that runs nothing else: it installs signal
    handlers and, with ``reap_orphans``, becomes a subreaper and owns ``waitpid(-1)``.
    Raises ConfigError if ``config`` cannot start (a user that does not exist, say).
    """
    os_layer = RealOS()
    options = RuntimeOptions(handle_signals=handle_signals, reap_orphans=reap_orphans)
    rt = Runtime(
        make_plan(config), os_layer=os_layer, log=Logger(log_format=config.log_format), options=options
    )
    prepare(os_layer, options, owns_process=True, hold_signals=True)
    return _run(rt, False)


def _run(rt: Runtime, prestarted: bool) -> int:
    try:
        code = trio.run(rt.run)
    except BaseException as exc:  # the runtime has already stopped everything it could
        rt.log.error("internal_error", f"trinit exits after an internal error: {describe_error(exc)}")
        if rt.os.is_pid1 or prestarted:
            rt.os.last_resort_stop(None)
        code = INTERNAL_ERROR
    rt.log.close(1.0)
    return code
