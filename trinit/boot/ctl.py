"""``trinit ctl`` and ``trinit probe``: talk to a running trinit through its control socket (SPEC §8).

Dispatched by :mod:`trinit.boot.main` before anything else happens (no signal is blocked, nothing
heavy is imported): stdlib socket and json, the cheap parsers of :mod:`.parse`, nothing of trio or
attrs, so a status or a probe returns in a few tens of milliseconds. Arguments are checked before
connecting (exit 2); every reply is one line of JSON (:mod:`.ctl_client`); exit 0 done, 1 refused
(the reason on stderr), 3 no trinit answers. ``probe`` prints nothing on stdout and exits 0 or 1.
"""

from __future__ import annotations

import json
import os
import sys

from .._text import escape_controls, escape_json_controls
from .argv import UsageError
from .ctl_args import CTL_HELP, PROBE_HELP, REPLY_TIMEOUT, Command, parse_ctl, parse_probe
from .ctl_client import Connection, NoAnswer
from .ctl_render import event_line, status_table

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms, and a probe should be quick.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import NoReturn

__all__ = ["main", "run_ctl", "run_probe"]


def _write(text: str) -> None:
    if sys.stdout is not None:  # None: started with stdout closed (`>&-`)
        sys.stdout.write(text)
        sys.stdout.flush()


def _say(text: str) -> None:
    """One message on stderr, if there is a stderr that takes it (the exit code says it anyway)."""
    try:
        if sys.stderr is not None:
            sys.stderr.write(text)
            sys.stderr.flush()
    except OSError:
        pass


def _refused(prog: str, reply: Mapping[str, object]) -> int:
    errors = reply.get("errors")
    lines = [str(e) for e in errors] if isinstance(errors, list) and errors else []
    lines = lines or [str(reply.get("error") or f"refused ({reply.get('code', 'no reason given')})")]
    _say("".join(f"{prog}: {escape_controls(line)}\n" for line in lines))
    return 1


def run_ctl(cmd: Command) -> int:
    """Send the request, show the reply; the exit code (NoAnswer → the caller's exit 3)."""
    with Connection(cmd.socket, cmd.timeout) as conn:
        conn.send(cmd.request)
        reply = conn.reply()
        if not reply["ok"]:
            return _refused("trinit ctl", reply)
        if cmd.name == "status":
            processes = reply.get("processes")
            if not isinstance(processes, list):
                raise NoAnswer("its status reply has no list of processes")
            _write(json.dumps(processes, indent=2) + "\n" if cmd.json else status_table(processes))
        elif cmd.name == "events":
            conn.set_timeout(None)
            return _follow(conn, cmd.json)
        elif cmd.name == "version":
            _write(
                f"trinit {reply.get('version')} (protocol {reply.get('protocol')}, pid {reply.get('pid')})\n"
            )
        elif cmd.name == "reload":
            plan = reply.get("plan")
            if isinstance(plan, list):
                plan = "\n".join(str(line) for line in plan)
            if plan:
                _write("".join(escape_controls(line) + "\n" for line in str(plan).splitlines()))
    return 0


def _follow(conn: Connection, raw: bool) -> int:
    """Print each event as it comes; 0 once trinit closes the stream after its shutdown."""
    done = False
    for line, event in conn.lines():
        kind = event.get("event")
        # raw: as trinit sent it, but with DEL, C1 and U+2028 as \u escapes (the same JSON value)
        _write(escape_json_controls(line.decode("utf-8")) + "\n" if raw else event_line(event) + "\n")
        if kind == "overflow":
            _say(
                "trinit ctl: trinit ended the event stream: this follower fell 10,000 events behind "
                "(is its output read fast enough?)\n"
            )
            return 1
        done = done or kind == "shutdown_done"
    if not done:
        raise NoAnswer("it closed the event stream before its shutdown was done")
    return 0


def run_probe(what: str, path: str) -> int:
    """0 when trinit answers yes; 1 otherwise, with the reason on stderr."""
    try:
        with Connection(path, REPLY_TIMEOUT) as conn:
            conn.send({"cmd": "probe", "what": what})
            reply = conn.reply()
    except NoAnswer as exc:
        _say(f"trinit probe: no trinit answers on {escape_controls(path)} ({exc})\n")
        return 1
    if not reply["ok"]:
        return _refused("trinit probe", reply)
    if reply.get(what) is True:
        return 0
    reason = reply.get("reason")
    _say(f"trinit probe: not {what}" + (f": {escape_controls(str(reason))}\n" if reason else "\n"))
    return 1


def _exit(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except OSError:  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


def main(args: list[str], environ: Mapping[str, str] | None = None) -> NoReturn:
    """``trinit ctl ...`` or ``trinit probe ...`` (``args[0]`` says which)."""
    environ = os.environ if environ is None else environ
    prog = f"trinit {args[0]}"
    following = False
    try:
        if args[0] == "probe":
            probe = parse_probe(args[1:], environ)
            if probe is None:
                _write(PROBE_HELP)
                _exit(0)
            _exit(run_probe(*probe))
        cmd = parse_ctl(args[1:], environ)
        if cmd is None:
            _write(CTL_HELP)
            _exit(0)
        following = cmd.name == "events"
        try:
            _exit(run_ctl(cmd))
        except NoAnswer as exc:
            _say(
                f"trinit ctl: no trinit answers on {escape_controls(cmd.socket)} ({exc}); "
                "is trinit running with its control socket on?\n"
            )
            _exit(3)
    except UsageError as exc:
        _say(f"{prog}: {exc}\nRun '{prog} --help' for usage.\n")
        _exit(2)
    except BrokenPipeError:  # `trinit ctl events | head`: the reader has had enough
        _exit(0)
    except KeyboardInterrupt:  # Ctrl-C ends a follow as asked; anything else was interrupted
        _exit(0 if following else 130)
