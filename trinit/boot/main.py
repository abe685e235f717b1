"""``trinit``: the fast start, ``trinit check``, ``trinit ctl`` / ``probe``, and the exit.

The only module that prints usage or errors and leaves the process. Its fast start blocks
the signals trinit handles, parses argv (:mod:`.argv`) with no heavy import, and in
zero-config mode spawns the main process (:mod:`trinit.system.spawn`) before trio or attrs
is imported: the child runs within a few milliseconds, and a signal sent meanwhile waits,
blocked, until the handlers exist. The rest of the run is :func:`trinit.runtime.run.run_cli`.
"""

from __future__ import annotations

import os
import sys

from . import signals as _signals
from .argv import UsageError, help_text, parse_args

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms before the main process starts.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def _fail_usage(message: str) -> NoReturn:
    sys.stderr.write(f"trinit: {message}\nRun 'trinit --help' for usage.\n")
    sys.stderr.flush()
    os._exit(2)


def _fail_config(errors: list[str]) -> NoReturn:
    """Every line of a ConfigError on stderr, then exit 2 (nothing was started)."""
    for line in errors:
        sys.stderr.write(f"trinit: error: {line}\n")
    sys.stderr.flush()
    os._exit(2)


def main(argv: list[str] | None = None) -> NoReturn:
    """The ``trinit`` command (scripts/trinit) and ``python -m trinit``."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["ctl"], ["probe"]):  # a client of a running trinit: no signal held, nothing heavy
        from .ctl import main as ctl_main

        ctl_main(args)
    _signals.block()
    if args[:1] == ["check"]:
        _signals.unblock()
        _check(args[1:])
    try:
        opts = parse_args(args, os.environ)
    except UsageError as exc:
        _fail_usage(str(exc))
    if opts.help:
        sys.stdout.write(help_text())
        sys.stdout.flush()
        os._exit(0)
    if opts.version:
        from ..config.defaults import VERSION

        sys.stdout.write(f"trinit {VERSION}\n")
        sys.stdout.flush()
        os._exit(0)
    if opts.config is None and not opts.command:
        _fail_usage("no command given: use 'trinit -- COMMAND [ARG...]' or 'trinit -c FILE'")

    early: int | OSError | None = None
    if opts.config is None and os.getpid() == 1 and not opts.pdeathsig:
        # Nothing to set up first at PID 1: the child runs before even the OS layer loads.
        early = _spawn_main_now(opts.command)
    from ..system.real import RealOS

    os_layer = RealOS()
    if not os_layer.is_pid1:
        os_layer.set_subreaper()  # before the main process starts: its orphans come to us
    if opts.pdeathsig:
        os_layer.set_pdeathsig(opts.pdeathsig)
    if opts.config is not None:
        _signals.exit_on_stop_signals(opts.rewrite)
    elif early is None:
        early = _spawn_main_now(opts.command)
    from .._errors import ConfigError
    from .overrides import load_first

    try:
        # Before trio and the runtime load: a bad file is reported sooner, and what its
        # parse frees is where they load (idle RSS).
        config = load_first(opts)
        from ..runtime.run import run_cli

        code = run_cli(opts, config, os_layer, early)
    except ConfigError as exc:
        if isinstance(early, int):  # pragma: no cover - zero-config has nothing left to get wrong
            os_layer.last_resort_stop(early)
        _fail_config(exc.errors)
    os._exit(code)


def _spawn_main_now(command: list[str]) -> int | OSError:
    """Zero-config: start the main process before anything heavy is imported."""
    from ..system.spawn import fork_exec, resolve_program

    try:
        return fork_exec(resolve_program(command[0], os.environ, None), command, os.environ)
    except OSError as exc:
        return exc


def _check(args: list[str]) -> NoReturn:
    """``trinit check [-c FILE] [--diff OLD NEW]``: validate, print the plan (or the plan of a
    reload from OLD to NEW) and its warnings; exit 0 or 2."""
    path: str | None = None
    diff: list[str] | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-c", "--config"):
            if i + 1 >= len(args):
                _fail_usage(f"check: option {arg} needs a value")
            path = args[i + 1]
            i += 2
        elif arg.startswith("--config="):
            path = arg.partition("=")[2]
            i += 1
        elif arg == "--diff":
            if i + 2 >= len(args):
                _fail_usage("check: option --diff needs two configs: --diff OLD NEW")
            diff = args[i + 1 : i + 3]
            i += 3
        elif arg in ("-h", "--help"):
            sys.stdout.write(
                "usage: trinit check [-c FILE]\n       trinit check --diff OLD NEW\n\n"
                "Validate a config; print its start and stop plan. With --diff: validate both,\n"
                "and print what a reload from OLD to NEW would stop, start and restart.\n"
            )
            sys.stdout.flush()
            os._exit(0)
        else:
            _fail_usage(f"check: unexpected argument {arg!r}")
    if diff is not None:
        if path is not None:
            _fail_usage("check: give either -c FILE or --diff OLD NEW")
        if "" in diff:
            _fail_usage("check: option --diff: a config path is empty")
        _check_diff(*diff)
    if path == "":
        _fail_usage("check: option -c: the config path is empty")
    path = path or os.environ.get("TRINIT_CONFIG")
    if not path:
        _fail_usage("check: no config given: use 'trinit check -c FILE' or set TRINIT_CONFIG")
    from .._errors import ConfigError
    from ..config.load import load_config
    from ..config.plan import make_plan
    from ..config.render import render_plan

    try:
        plan = make_plan(load_config(path))
    except ConfigError as exc:
        _fail_config(exc.errors)
    sys.stdout.write(render_plan(plan).rstrip("\n") + "\n")
    sys.stdout.flush()
    os._exit(0)


def _check_diff(old_path: str, new_path: str) -> NoReturn:
    """``trinit check --diff OLD NEW``: the plan of a reload (SPEC §10); exit 2 if either is
    invalid or the reload would be refused."""
    from .._errors import ConfigError
    from ..config.diff import diff_configs
    from ..config.load import load_config

    configs, errors = [], []
    for path in (old_path, new_path):
        try:
            configs.append(load_config(path))
        except ConfigError as exc:
            errors += exc.errors
    if errors:
        _fail_config(errors)
    plan = diff_configs(*configs)
    if plan.refusals:
        _fail_config([f"{new_path}: a reload from {old_path} is refused: {why}" for why in plan.refusals])
    sys.stdout.write(f"Reload from {old_path} to {new_path}:\n")
    sys.stdout.write("".join(f"  {line}\n" for line in plan.lines()))
    sys.stdout.flush()
    os._exit(0)
