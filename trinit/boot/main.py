"""The command line: argv → options; the fast start; exit codes.

The only module that prints usage or leaves the process. Its fast start blocks the
signals trinit handles, parses argv with no heavy import, and in zero-config mode spawns
the main process before trio (and attrs) are imported: the child runs within a few
milliseconds, and a signal sent meanwhile waits, blocked, until the handlers exist.
"""

from __future__ import annotations

import os
import sys

from ..config.defaults import STOP_TIMEOUT, VERSION
from . import signals as _signals

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms before the main process starts.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ..config.model import Config


USAGE = "usage: trinit [OPTIONS] [--] COMMAND [ARG...]\n       trinit -c FILE [OPTIONS] [-- COMMAND...]\n       trinit check [-c FILE]\n"

HELP = (
    USAGE
    + """
A container init: runs COMMAND (or the processes of a TOML config) as PID 1, reaps every
zombie, forwards signals, and on SIGTERM stops everything gracefully, in reverse
dependency order, within a deadline. Exits with the main process's exit status.

options:
  -c, --config FILE         TOML config [env TRINIT_CONFIG]; "-- COMMAND" then replaces
                            the main process's command (or adds a main process "main")
  -g, --process-group       send the main process's stop, forwarded and kill signals to
                            its whole process group [env TRINIT_KILL_PROCESS_GROUP]
  -s, --subreaper           accepted for tini compatibility: trinit is always a child
                            subreaper when it is not PID 1 [env TRINIT_SUBREAPER]
  -p, --pdeathsig SIG       get SIG when trinit's parent dies, handled as if a user sent it
  -e, --success-exit N      a final exit code N becomes 0 (repeatable; -e 143 accepts
                            death by SIGTERM)
  -r, --rewrite FROM:TO     pass a received signal FROM on as TO; TO = 0 drops it
                            (repeatable; names or numbers: -r TERM:QUIT)
  -t, --stop-timeout SECS   grace of the main process between its stop signal and SIGKILL
                            (default 5)
      --shutdown-timeout SECS
                            budget of the whole shutdown (default 9, inside Docker's 10 s;
                            use the orchestrator's grace minus 1 s)
                            [env TRINIT_SHUTDOWN_TIMEOUT]
  -v, -q                    more / less of trinit's own log on stderr (-vv: debug)
                            [env TRINIT_VERBOSITY=N]
      --log-format text|json
                            trinit's log lines, and prefixed process output
      --version             print the version
  -h, --help                print this help

Durations: 5, 0.5, "500ms", "2s", "1m". Signals: TERM, sigterm, SIGTERM or 15.
Exit codes: the main process's code, 128+N if signal N killed it; 127 command not found,
126 not executable, 2 bad usage or config (nothing was started), 70 internal error.

  trinit -- python3 app.py              zero-config: a drop-in for tini / dumb-init
  trinit -c trinit.toml                 an app plus sidecars and one-shot jobs
  trinit check -c trinit.toml           validate a config, print the start and stop plan
"""
)


class UsageError(Exception):
    """The command line is wrong: one line for stderr, then exit 2."""


class Options:
    """The command line, merged with the environment (command line wins)."""

    def __init__(self) -> None:
        self.config: str | None = None
        self.process_group = False
        self.subreaper = False
        self.pdeathsig: int | None = None
        self.success_exits: set[int] = set()
        self.rewrite: dict[int, int] = {}
        self.stop_timeout: float | None = None
        self.shutdown_timeout: float | None = None
        self.verbosity: int | None = None
        self.log_format: str | None = None
        self.command: list[str] = []
        self.help = False
        self.version = False


_WITH_VALUE = {
    "-c": "config",
    "--config": "config",
    "-p": "pdeathsig",
    "--pdeathsig": "pdeathsig",
    "-e": "success_exit",
    "--success-exit": "success_exit",
    "-r": "rewrite",
    "--rewrite": "rewrite",
    "-t": "stop_timeout",
    "--stop-timeout": "stop_timeout",
    "--shutdown-timeout": "shutdown_timeout",
    "--log-format": "log_format",
}
_FLAGS = {
    "-g": "process_group",
    "--process-group": "process_group",
    "-s": "subreaper",
    "--subreaper": "subreaper",
    "-v": "verbose",
    "--verbose": "verbose",
    "-q": "quiet",
    "--quiet": "quiet",
    "-h": "help",
    "--help": "help",
    "--version": "version",
}


def parse_args(argv: list[str], environ: os._Environ[str] | dict[str, str]) -> Options:
    """getopt-style: options first; the first non-option (or ``--``) starts the command."""
    opts = Options()
    verbosity = 0
    verbosity_given = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            opts.command = argv[i + 1 :]
            break
        if not arg.startswith("-") or arg == "-":
            opts.command = argv[i:]
            break
        pairs: list[tuple[str, str | None]] = []
        if arg.startswith("--"):
            long_name, eq, attached = arg.partition("=")
            pairs.append((long_name, attached if eq else None))
        else:  # short options may be bundled (-gv) and take an attached value (-t5)
            j = 1
            while j < len(arg):
                flag = "-" + arg[j]
                if flag in _WITH_VALUE and j + 1 < len(arg):
                    pairs.append((flag, arg[j + 1 :]))
                    break
                pairs.append((flag, None))
                j += 1
        for name, given in pairs:
            value: str | None = given
            if name in _FLAGS:
                if value is not None:
                    raise UsageError(f"option {name} takes no value")
                what = _FLAGS[name]
                if what == "verbose":
                    verbosity += 1
                    verbosity_given = True
                elif what == "quiet":
                    verbosity -= 1
                    verbosity_given = True
                else:
                    setattr(opts, what, True)
                continue
            if name not in _WITH_VALUE:
                raise UsageError(f"unknown option {name!r}")
            if value is None:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"option {name} needs a value")
                value = argv[i]
            assert value is not None
            what = _WITH_VALUE[name]
            from .parse import parse_duration, parse_signal  # only when a value needs it

            try:
                if what == "config":
                    opts.config = value
                elif what == "pdeathsig":
                    opts.pdeathsig = parse_signal(value)
                elif what == "success_exit":
                    code = int(value)
                    if not 0 <= code <= 255:
                        raise ValueError(value)
                    opts.success_exits.add(code)
                elif what == "rewrite":
                    source, colon, target = value.partition(":")
                    if not colon:
                        raise ValueError(value)
                    opts.rewrite[parse_signal(source)] = parse_signal(target, allow_zero=True)
                elif what in ("stop_timeout", "shutdown_timeout"):
                    setattr(opts, what, parse_duration(value))
                elif what == "log_format":
                    if value not in ("text", "json"):
                        raise ValueError(value)
                    opts.log_format = value
            except ValueError:
                raise UsageError(f"option {name}: invalid value {value!r} ({_EXPECTED[what]})") from None
        i += 1
    # the environment fills in what the command line left unset
    if opts.config is None and environ.get("TRINIT_CONFIG"):
        opts.config = environ["TRINIT_CONFIG"]
    if not opts.process_group and _truthy(environ.get("TRINIT_KILL_PROCESS_GROUP")):
        opts.process_group = True
    if not opts.subreaper and _truthy(environ.get("TRINIT_SUBREAPER")):
        opts.subreaper = True
    if opts.shutdown_timeout is None and environ.get("TRINIT_SHUTDOWN_TIMEOUT"):
        from .parse import parse_duration

        try:
            opts.shutdown_timeout = parse_duration(environ["TRINIT_SHUTDOWN_TIMEOUT"])
        except ValueError:
            raise UsageError(
                f"TRINIT_SHUTDOWN_TIMEOUT: invalid value {environ['TRINIT_SHUTDOWN_TIMEOUT']!r} "
                f"({_EXPECTED['shutdown_timeout']})"
            ) from None
    if verbosity_given:
        opts.verbosity = verbosity
    elif environ.get("TRINIT_VERBOSITY"):
        try:
            opts.verbosity = int(environ["TRINIT_VERBOSITY"])
        except ValueError:
            raise UsageError(
                f"TRINIT_VERBOSITY: invalid value {environ['TRINIT_VERBOSITY']!r} (a whole number like 1 or -1)"
            ) from None
    return opts


_EXPECTED = {
    "config": "a file",
    "pdeathsig": "a signal name or number like TERM or 15",
    "success_exit": "an exit code from 0 to 255",
    "rewrite": "FROM:TO with signal names or numbers, like TERM:QUIT or 15:0",
    "stop_timeout": 'a duration like 5, 0.5, "500ms" or "2s"',
    "shutdown_timeout": 'a duration like 9, "500ms" or "1m"',
    "log_format": "text or json",
}


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


def _fail_usage(message: str) -> NoReturn:
    sys.stderr.write(f"trinit: {message}\nRun 'trinit --help' for usage.\n")
    sys.stderr.flush()
    os._exit(2)


def _fail_config(errors: list[str]) -> NoReturn:
    for line in errors:
        sys.stderr.write(f"trinit: error: {line}\n")
    sys.stderr.flush()
    os._exit(2)


def main(argv: list[str] | None = None) -> NoReturn:
    """The ``trinit`` console script and ``python -m trinit``."""
    _signals.block()
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["check"]:
        _signals.unblock()
        _check(args[1:])
    try:
        opts = parse_args(args, os.environ)
    except UsageError as exc:
        _fail_usage(str(exc))
    if opts.help:
        sys.stdout.write(HELP)
        sys.stdout.flush()
        os._exit(0)
    if opts.version:
        sys.stdout.write(f"trinit {VERSION}\n")
        sys.stdout.flush()
        os._exit(0)
    if opts.config is None and not opts.command:
        _fail_usage("no command given: use 'trinit -- COMMAND [ARG...]' or 'trinit -c FILE'")

    from ..system.real import RealOS

    os_layer = RealOS()
    if not os_layer.is_pid1:
        os_layer.set_subreaper()
    if opts.pdeathsig:
        os_layer.set_pdeathsig(opts.pdeathsig)
    early: int | OSError | None = None
    if opts.config is None:
        early = _spawn_main_now(opts.command)
    from .._errors import ConfigError
    from ..runtime.run import run_cli

    try:
        code = run_cli(opts, os_layer, early)
    except ConfigError as exc:
        _fail_config(exc.errors)
    os._exit(code)


def _spawn_main_now(command: list[str]) -> int | OSError:
    """Zero-config: start the main process before anything heavy is imported."""
    from ..system.real import fork_exec, resolve_program

    try:
        return fork_exec(resolve_program(command[0], os.environ, None), command, os.environ)
    except OSError as exc:
        return exc


def _check(args: list[str]) -> NoReturn:
    """``trinit check [-c FILE]``: validate, print the plan and its warnings; exit 0 or 2."""
    path: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-c", "--config") and i + 1 < len(args):
            path = args[i + 1]
            i += 2
        elif arg.startswith("--config="):
            path = arg.partition("=")[2]
            i += 1
        elif arg in ("-h", "--help"):
            sys.stdout.write("usage: trinit check [-c FILE]\n\nValidate a config; print its start and stop plan.\n")
            sys.stdout.flush()
            os._exit(0)
        else:
            _fail_usage(f"check: unexpected argument {arg!r}")
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


def load_for_cli(opts: Options) -> Config:
    """The Config the command line asks for (zero-config or a file), with CLI precedence applied."""
    import attrs

    from ..config.load import load_config, with_main_command
    from ..config.model import Config, ProcessSpec

    if opts.config is None:
        main = ProcessSpec(
            name="main",
            command=list(opts.command),
            main=True,
            signal_group=opts.process_group,
            stop_timeout=opts.stop_timeout if opts.stop_timeout is not None else STOP_TIMEOUT,
        )
        config = Config(processes=[main])
    else:
        config = load_config(opts.config)
        if opts.command:
            config = with_main_command(config, opts.command)
        main_spec = config.main_process()
        if main_spec is not None and (opts.process_group or opts.stop_timeout is not None):
            new_main = attrs.evolve(
                main_spec,
                signal_group=opts.process_group or main_spec.signal_group,
                stop_timeout=main_spec.stop_timeout if opts.stop_timeout is None else opts.stop_timeout,
            )
            config = attrs.evolve(
                config, processes=tuple(new_main if p is main_spec else p for p in config.processes)
            )
    if opts.shutdown_timeout is not None:
        config = attrs.evolve(config, shutdown_timeout=opts.shutdown_timeout)
    if opts.log_format is not None:
        config = attrs.evolve(config, log_format=opts.log_format)
    return config
