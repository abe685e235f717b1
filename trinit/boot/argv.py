"""The command line, read: argv and the environment → :class:`Options`.

Pure and cheap (no attrs, no trio, nothing printed): the fast start calls it before the
main process is spawned, and :mod:`trinit.boot.main` turns a :class:`UsageError` into
one line on stderr and exit 2.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms before the main process starts.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Mapping
else:
    import _signal  # the C module: `signal` builds enums (and imports enum) before the main process starts

USAGE = (
    "usage: trinit [OPTIONS] [--] COMMAND [ARG...]\n"
    "       trinit -c FILE [OPTIONS] [-- COMMAND...]\n"
    "       trinit check [-c FILE] | trinit check --diff OLD NEW\n"
    "       trinit ctl [--socket PATH] status|start|stop|restart|signal|wait|events|...\n"
    "       trinit probe ready|live [--socket PATH]\n"
)



def help_text() -> str:
    """``trinit --help``: built when asked, as the defaults it quotes (config.defaults, a package
    and a module) are not worth loading before the main process starts."""
    from ..config.defaults import CONTROL_SOCKET, LOG_FORMAT, SHUTDOWN_TIMEOUT, STOP_TIMEOUT

    return (
        USAGE
        + f"""
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
                            (repeatable; names or numbers: -r TERM:QUIT; -r TSTP:HUP
                            forwards a job-control signal trinit otherwise keeps)
  -t, --stop-timeout SECS   grace of the main process between its stop signal and SIGKILL
                            (default {STOP_TIMEOUT:g})
      --shutdown-timeout SECS
                            budget of the whole shutdown (default {SHUTDOWN_TIMEOUT:g}, inside Docker's 10 s;
                            use the orchestrator's grace minus 1 s)
                            [env TRINIT_SHUTDOWN_TIMEOUT]
  -v, -q                    more / less of trinit's own log on stderr: by default
                            warnings and errors only with a COMMAND (as tini), and the
                            lifecycle too with -c; each -v adds a level (lifecycle, then
                            debug), each -q takes one away [env TRINIT_VERBOSITY=N]
      --log-format text|json
                            trinit's log lines, and prefixed process output
                            (default {LOG_FORMAT})
      --control-socket PATH
                            the control socket `trinit ctl` and `trinit probe` use
                            (default {CONTROL_SOCKET} with -c; off without -c
                            unless given) [env TRINIT_CONTROL_SOCKET]
      --version             print the version
  -h, --help                print this help

Durations: 5, 0.5, "500ms", "2s", "1m". Signals: TERM, sigterm, SIGTERM or 15.
Exit codes: the main process's code, 128+N if signal N killed it; 127 command not found,
126 not executable, 2 bad usage or config (nothing was started), 70 internal error.

  trinit -- python3 app.py              zero-config: a drop-in for tini / dumb-init
  trinit -c trinit.toml                 an app plus sidecars and one-shot jobs
  trinit check -c trinit.toml           validate a config, print the start and stop plan
  trinit ctl status                     see and steer a running trinit (trinit ctl -h)
  trinit probe live                     exit 0 or 1: for HEALTHCHECK and exec probes
"""
    )


class UsageError(Exception):
    """The command line is wrong: one line for stderr, then exit 2."""


class Options:
    """The command line, merged with the environment (command line wins).

    A plain class, not attrs: it is built before the main process starts. ``None`` means
    "not given", so the config file's value (or the default) applies.
    """

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
        #: The control socket's path (SPEC §8); None: the config's (or none in zero-config mode).
        self.control_socket: str | None = None
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
    "--control-socket": "control_socket",
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


def parse_args(argv: list[str], environ: Mapping[str, str]) -> Options:
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
                    if not value:
                        raise UsageError(f"option {name}: the config path is empty")
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
                    received = parse_signal(source)
                    if received in _UNCATCHABLE:
                        raise UsageError(
                            f"option {name}: {_UNCATCHABLE[received]} cannot be caught, so it cannot be rewritten"
                        )
                    if received == _signal.SIGCHLD:
                        raise UsageError(
                            f"option {name}: SIGCHLD tells trinit that a child exited, so it cannot be "
                            "rewritten (trinit reaps on it and never passes it on)"
                        )
                    opts.rewrite[received] = parse_signal(target, allow_zero=True)
                elif what in ("stop_timeout", "shutdown_timeout"):
                    setattr(opts, what, parse_duration(value))
                elif what == "log_format":
                    if value not in ("text", "json"):
                        raise ValueError(value)
                    opts.log_format = value
                elif what == "control_socket":
                    opts.control_socket = _socket_path(value, name)
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
    if opts.control_socket is None and environ.get("TRINIT_CONTROL_SOCKET"):
        opts.control_socket = _socket_path(environ["TRINIT_CONTROL_SOCKET"], "TRINIT_CONTROL_SOCKET")
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


_UNCATCHABLE = {int(_signal.SIGKILL): "SIGKILL", int(_signal.SIGSTOP): "SIGSTOP"}

_EXPECTED = {
    "config": "a file",
    "pdeathsig": "a signal name or number like TERM or 15",
    "success_exit": "an exit code from 0 to 255",
    "rewrite": "FROM:TO with signal names or numbers, like TERM:QUIT or 15:0",
    "stop_timeout": 'a duration like 5, 0.5, "500ms" or "2s"',
    "shutdown_timeout": 'a duration like 9, "500ms" or "1m"',
    "log_format": "text or json",
}


#: sun_path holds 108 bytes, the last one a NUL.
MAX_SOCKET_PATH = 107


def _socket_path(value: str, name: str) -> str:
    if not value:
        raise UsageError(f"{name}: the control socket path is empty")
    if len(value.encode("utf-8", "surrogateescape")) > MAX_SOCKET_PATH:
        raise UsageError(
            f"{name}: the control socket path is longer than {MAX_SOCKET_PATH} bytes, "
            "the limit of a unix socket address; use a shorter path"
        )
    return value


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")
