"""The command lines of ``trinit ctl`` and ``trinit probe``, checked before anything is sent.

Bad arguments are a :class:`~trinit.boot.argv.UsageError` (exit 2, nothing sent). Options of a
command come after it; ``--socket PATH`` anywhere before ``--``, and the socket is found as trinit
finds it: ``--socket``, then ``TRINIT_CONTROL_SOCKET``, then the default. Cheap, like the rest of
the client: the duration and signal parsers of :mod:`.parse`, nothing of trio or attrs.
"""

from __future__ import annotations

import json

from ..config.defaults import CONTROL_SOCKET
from .argv import UsageError
from .ctl_client import check_socket_path
from .parse import parse_duration, parse_signal, signal_name

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms, and a probe should be quick.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["CTL_HELP", "PROBE_HELP", "REPLY_TIMEOUT", "Command", "parse_ctl", "parse_probe"]

#: How long a reply may take to a request that does not wait for anything (status, signal, a
#: probe...): a trinit that does not answer within it counts as not answering.
REPLY_TIMEOUT = 10.0
#: The longest request line trinit reads (docs/control.md).
MAX_REQUEST = 65536

CTL_HELP = f"""\
usage: trinit ctl [--socket PATH] COMMAND [ARG...]

See and steer the processes of a running trinit through its control socket.

commands:
  status [--json] [NAME...]   a table of the processes (--json: a JSON array)
  start NAME... [--wait]      start a stopped, exited or failed process, or run
                              a oneshot again; --wait: until it is ready
                              (a oneshot: until it has completed)
  stop NAME... [--wait]       stop gracefully; it stays stopped until started;
                              --wait: until it is gone
  restart NAME... [--wait]    stop, then start; --wait: as for start
  signal NAME SIG             send SIG (TERM, sighup, 1...) to one process
  wait NAME... [--for ready|exited|completed] [--timeout D]
                              until each is in that state (default ready)
  events [--json]             follow what happens, one line per event, until
                              trinit exits (Ctrl-C ends it)
  reload [--dry-run]          read the config again, apply the difference;
                              --dry-run: print the plan, change nothing
  shutdown                    shut everything down, as SIGTERM to trinit does
  version                     trinit's version, protocol and pid

options:
  --socket PATH   the control socket [env TRINIT_CONTROL_SOCKET]
                  (default {CONTROL_SOCKET}); also after COMMAND
  -h, --help      print this help

Durations: 5, 0.5, "500ms", "2s", "1m". Exit codes: 0 done; 1 refused (unknown
process, wrong state, wait timed out...), the reason on stderr; 2 usage error;
3 no trinit answers on the socket.
"""

PROBE_HELP = f"""\
usage: trinit probe ready|live [--socket PATH]

Ask a running trinit one question; exit 0 for yes, 1 for no or when no trinit
answers. Nothing on stdout (a reason on stderr when the answer is no): for a
Docker HEALTHCHECK or a Kubernetes exec probe.

  ready   everything is up: every process ready, every oneshot completed
          (what ready_file says)
  live    trinit answers, is not shutting down, and no process has failed
          (under on_failure = "shutdown") or is unhealthy

options:
  --socket PATH   the control socket [env TRINIT_CONTROL_SOCKET]
                  (default {CONTROL_SOCKET})
  -h, --help      print this help
"""

#: The options each command takes: flags, and options with a value.
_FLAGS = {
    "status": {"--json"},
    "start": {"--wait"},
    "stop": {"--wait"},
    "restart": {"--wait"},
    "events": {"--json"},
    "reload": {"--dry-run"},
}
_VALUED = {"wait": {"--for", "--timeout"}}
_COMMANDS = (
    "status",
    "start",
    "stop",
    "restart",
    "signal",
    "wait",
    "events",
    "reload",
    "shutdown",
    "version",
)
_WAIT_FOR = ("ready", "exited", "completed")
_ALL_VALUED = {option for options in _VALUED.values() for option in options}


class Command:
    """A checked command line: the request to send and how to show its reply."""

    def __init__(self, name: str, socket: str) -> None:
        self.name = name
        self.socket = socket
        self.request: dict[str, object] = {"cmd": name}
        self.json = False
        #: None: the reply comes when something has happened (--wait, wait), however long it takes.
        self.timeout: float | None = REPLY_TIMEOUT


def _split(args: list[str], valued: set[str]) -> tuple[list[str], dict[str, str], str | None, bool]:
    """Positionals, options (``--x V`` or ``--x=V``; a flag maps to ""), ``--socket`` and --help."""
    positional: list[str] = []
    options: dict[str, str] = {}
    socket: str | None = None
    wants_help = False
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional += args[i:]
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        if arg in ("-h", "--help"):
            wants_help = True
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name == "--socket" or name in valued:
            if not eq:
                if i >= len(args):
                    raise UsageError(f"option {name} needs a value")
                value = args[i]
                i += 1
            if name == "--socket":
                socket = value
            else:
                options[name] = value
        elif eq:
            raise UsageError(f"option {name} takes no value")
        else:
            options[name] = ""
    return positional, options, socket, wants_help


def _socket_path(given: str | None, environ: Mapping[str, str]) -> str:
    """``--socket``, then ``TRINIT_CONTROL_SOCKET``, then the default: as trinit finds it."""
    if given is not None:
        source, path = "option --socket", given
    elif environ.get("TRINIT_CONTROL_SOCKET"):
        source, path = "TRINIT_CONTROL_SOCKET", environ["TRINIT_CONTROL_SOCKET"]
    else:
        return CONTROL_SOCKET
    problem = check_socket_path(path)
    if problem:
        raise UsageError(f"{source}: {problem}")
    return path


def parse_ctl(args: list[str], environ: Mapping[str, str]) -> Command | None:
    """``trinit ctl`` ARGS → the command to run; None for --help."""
    positional, options, socket, wants_help = _split(args, _ALL_VALUED)
    if wants_help:
        return None
    if not positional:
        raise UsageError(f"no command given: use one of {', '.join(_COMMANDS)}")
    name, rest = positional[0], positional[1:]
    if name not in _COMMANDS:
        raise UsageError(f"unknown command {name!r}: use one of {', '.join(_COMMANDS)}")
    allowed = _FLAGS.get(name, set()) | _VALUED.get(name, set())
    for option in options:
        if option not in allowed:
            takes = f"it takes {', '.join(sorted(allowed))}" if allowed else "it takes none"
            raise UsageError(f"{name}: unknown option {option!r} ({takes})")
    if any(not n for n in rest):
        raise UsageError(f"{name}: a process name is empty")
    cmd = Command(name, _socket_path(socket, environ))
    cmd.json = "--json" in options
    if name == "status":
        if rest:
            cmd.request["names"] = rest
    elif name in ("start", "stop", "restart", "wait"):
        if not rest:
            raise UsageError(f"{name}: name at least one process: trinit ctl {name} NAME...")
        cmd.request["names"] = rest
        if name == "wait":
            _wait_options(cmd, options)
        else:
            cmd.request["wait"] = "--wait" in options
            if "--wait" in options:
                cmd.timeout = None
    elif name == "signal":
        if len(rest) != 2:
            raise UsageError("signal: give a process and a signal: trinit ctl signal NAME SIG")
        try:
            number = parse_signal(rest[1])
        except ValueError:
            raise UsageError(
                f"signal: invalid signal {rest[1]!r} (a name or number like HUP, sigusr1 or 15)"
            ) from None
        cmd.request.update(name=rest[0], signal=signal_name(number))
    elif rest:
        raise UsageError(f"{name}: unexpected argument {rest[0]!r}")
    elif name == "reload":
        cmd.request["dry_run"] = "--dry-run" in options
        if not cmd.request["dry_run"]:
            cmd.timeout = None  # the reply comes once the changed processes have stopped (their grace)
    elif name == "events":
        cmd.timeout = REPLY_TIMEOUT  # for the first reply; the stream itself may be idle for ever
    if len(json.dumps(cmd.request)) + 8 > MAX_REQUEST:  # + the "v" the client adds
        raise UsageError(
            f"{name}: the request is longer than trinit reads (64 KiB): name fewer processes at once"
        )
    return cmd


def _wait_options(cmd: Command, options: dict[str, str]) -> None:
    target = options.get("--for", "ready")
    if target not in _WAIT_FOR:
        raise UsageError(f"wait: option --for: invalid value {target!r} (ready, exited or completed)")
    timeout: float | None = None
    if "--timeout" in options:
        try:
            timeout = parse_duration(options["--timeout"])
        except ValueError:
            raise UsageError(
                f"wait: option --timeout: invalid value {options['--timeout']!r} "
                '(a duration like 5, 0.5, "500ms" or "1m")'
            ) from None
    cmd.request.update({"for": target, "timeout": timeout})
    cmd.timeout = None


def parse_probe(args: list[str], environ: Mapping[str, str]) -> tuple[str, str] | None:
    """``trinit probe`` ARGS → (ready|live, socket path); None for --help."""
    positional, options, socket, wants_help = _split(args, set())
    if wants_help:
        return None
    if options:
        raise UsageError(f"probe: unknown option {next(iter(options))!r} (it takes --socket PATH)")
    if len(positional) != 1 or positional[0] not in ("ready", "live"):
        raise UsageError("probe: ask one question: trinit probe ready|live [--socket PATH]")
    return positional[0], _socket_path(socket, environ)
