"""Running a config to its end: what the CLI does, and ``trinit.run`` for programs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..boot.argv import Options
    from ..config.model import Config
    from ..config.plan import Plan
    from ..io.log import Logger
    from ..system.real import RealOS
    from .supervisor import RuntimeOptions


def run_cli(opts: Options, os_layer: RealOS, early: int | OSError | None) -> int:
    """Everything after the fast start: config, plan, the trio run, the exit code.

    Raises ConfigError (nothing left running) for :func:`trinit.boot.main.main` to report.
    """
    from .._errors import ConfigError
    from ..boot.overrides import load_for_cli, log_verbosity
    from ..io.log import Logger

    log = Logger(verbosity=log_verbosity(opts))
    try:
        config = load_for_cli(opts)
        from ..config.plan import make_plan

        plan = make_plan(config)
    except ConfigError:
        if isinstance(early, int):  # pragma: no cover - zero-config has nothing left to get wrong here
            log.error("internal_error", "the config could not be built; stopping the main process")
            os_layer.last_resort_stop(early)
        raise
    log.log_format = config.log_format
    from .supervisor import RuntimeOptions

    options = RuntimeOptions(
        success_exits=frozenset(opts.success_exits),
        rewrite=opts.rewrite,
        handle_signals=True,
        reap_orphans=True,
        pdeathsig=opts.pdeathsig,
        keep_handlers=True,
    )
    prestarted = {"main": early} if early is not None else None
    return _run(plan, os_layer, log, options, prestarted)


def run(config: Config, *, handle_signals: bool = True, reap_orphans: bool = True) -> int:
    """Run ``config`` as the CLI does: blocks until the shutdown has finished; returns the exit code.

    Call it from the main thread of a program that runs nothing else: it installs signal
    handlers and, with ``reap_orphans``, owns ``waitpid(-1)``.
    """
    from ..boot.signals import block
    from ..config.plan import make_plan
    from ..io.log import Logger
    from ..system.real import RealOS
    from .supervisor import RuntimeOptions

    if handle_signals or reap_orphans:
        block()
    plan = make_plan(config)
    log = Logger(log_format=config.log_format)
    options = RuntimeOptions(handle_signals=handle_signals, reap_orphans=reap_orphans)
    return _run(plan, RealOS(), log, options, None)


def _run(
    plan: Plan,
    os_layer: RealOS,
    log: Logger,
    options: RuntimeOptions,
    prestarted: dict[str, int | OSError] | None,
) -> int:
    import trio

    from .supervisor import INTERNAL_ERROR, Supervisor

    os_layer.raise_nofile()
    sup = Supervisor(plan, os_layer=os_layer, log=log, options=options, prestarted=prestarted)
    try:
        code = trio.run(sup.run)
    except BaseException as exc:  # the supervisor has already stopped everything it could
        from .supervisor import describe_error

        log.error("internal_error", f"trinit exits after an internal error: {describe_error(exc)}")
        if os_layer.is_pid1 or prestarted:
            os_layer.last_resort_stop(None)
        code = INTERNAL_ERROR
    log.close(1.0)
    return code
