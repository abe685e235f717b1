"""The lifecycle hook keys of a process (SPEC §9): ``pre_start``, ``pre_stop``, ``stop_delay``,
``post_stop`` and ``hook_timeout``.

A hook is written like ``command``: an argv array, or a string split with shell word rules (run by
``/bin/sh -c`` when the process has ``shell = true``). ``pre_start`` may hold several commands, as an
array of arrays; the others are one command each. Every kind of process may have hooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import defaults
from .values import INVALID, Bad, Problems, argv, duration, positive_duration, show

#: A hook's command, as its final argv.
Hook = tuple[str, ...]

DEFAULTS: dict[str, Any] = {
    "pre_start": (),
    "pre_stop": None,
    "stop_delay": 0.0,
    "post_stop": None,
    "hook_timeout": defaults.HOOK_TIMEOUT,
}

HOOKS = ("pre_start", "pre_stop", "post_stop")

_SEVERAL = 'an array of commands like [["render-config", "/etc/app.conf"], ["migrate"]]'


def _one(value: object, shell: bool, what: str = "a command: an argv array of strings or a string") -> Hook:
    """One command: a string (shell word rules, or ``/bin/sh -c`` with ``shell``) or an argv array."""
    if isinstance(value, (list, tuple)):
        return argv(value)  # an array is an argv, whatever ``shell`` says
    if isinstance(value, str):
        return argv(value, shell=shell)
    raise Bad(f"must be {what} (got {show(value)})")


def one_command(shell: bool) -> Any:
    """``pre_stop`` and ``post_stop``: exactly one command."""

    def parse(value: object) -> Hook:
        if isinstance(value, (list, tuple)) and any(isinstance(item, (list, tuple)) for item in value):
            raise Bad(
                "must be one command (an argv array or a string); to run several, "
                "put them in a script, or use /bin/sh -c"
            )
        return _one(value, shell)

    return parse


def commands(shell: bool) -> Any:
    """``pre_start``: one command, or an array of commands run in order (``[]``: none)."""

    def parse(value: object) -> tuple[Hook, ...]:
        if not isinstance(value, (list, tuple)) or not any(isinstance(item, (list, tuple)) for item in value):
            if isinstance(value, (list, tuple)) and not value:
                return ()
            return (_one(value, shell, f"a command (an argv array or a string), or {_SEVERAL}"),)
        if not all(isinstance(item, (list, tuple)) for item in value):
            raise Bad(f"mixes commands and words: write one argv array, or {_SEVERAL}")
        out = []
        for i, item in enumerate(value, 1):
            try:
                out.append(argv(item))
            except Bad as exc:
                raise Bad(f"command {i}: {exc}") from None
        return tuple(out)

    return parse


def hook_rules(given: Mapping[str, Any], values: dict[str, Any], problems: Problems) -> None:
    """Parse the hook keys into ``values``; ``hook_timeout`` needs a hook to bound."""
    if DEFAULTS.keys().isdisjoint(given):  # most processes: their defaults are in values already
        return
    shell = values.get("shell") is True
    parsers = {
        "pre_start": commands(shell),
        "pre_stop": one_command(shell),
        "post_stop": one_command(shell),
        "stop_delay": duration,
        "hook_timeout": positive_duration,
    }
    for key, parser in parsers.items():
        if key in given:
            values[key] = problems.parse(key, given[key], parser)
    has_hooks = any(key in given and values[key] not in ((), None) for key in HOOKS)
    timeout = values.get("hook_timeout")
    if (
        not has_hooks
        and "hook_timeout" in given
        and timeout is not INVALID
        and timeout != DEFAULTS["hook_timeout"]
    ):
        problems.add(
            "hook_timeout",
            "bounds each run of pre_start, pre_stop and post_stop, and the process has none of them "
            "(remove it, or add a hook)",
        )
