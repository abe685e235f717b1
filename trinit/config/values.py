"""The value parsers: one raw value (TOML-typed, or what a library user passed) in, the
normalized value out, or ``Bad`` with the message's tail (attrs style: "must be ... (got
...)"); ``Problems`` adds the file, process and key in front.

Bool is a subclass of int in Python, so every numeric parser rejects bools first:
``stop_timeout = true`` is an error, as TOML's types say.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, cast

from .._text import escape_controls
from ..boot.parse import parse_duration, parse_signal
from ..boot.signals import FORWARDED, INSPECTED
from . import defaults

Condition = Literal["started", "ready", "completed"]
RestartPolicy = Literal["no", "on-failure", "always"]
OnFailure = Literal["shutdown", "ignore"]
Phase = Literal["run", "stop"]
OutputMode = Literal["inherit", "prefix", "null"]
LogFormat = Literal["text", "json"]
ProbeKind = Literal["exec", "tcp", "http", "file", "log", "notify", "fd"]


#: What ``reload_signal`` may be: a forwarded signal that trinit reads in a handler.
RELOADABLE = FORWARDED - INSPECTED


class Bad(ValueError):
    """One invalid value; the message says what it must be, without the key."""


def show(value: object) -> str:
    """A value as a message shows it: TOML's true/false, else repr, cut short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def place(source: str | None, name: str | None = None) -> str:
    """The front of a message: ``trinit.toml: process "web"``, or less when unknown.

    Control characters in the path or the name are escaped: one message, one line.
    """
    parts = [escape_controls(source)] if source else []
    if name is not None:
        parts.append(f'process "{escape_controls(name)}"')
    return ": ".join(parts)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A hint for a misspelt key or name; difflib (~0.2 MB) is loaded only when one is made."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def shell_words(text: str) -> list[str]:
    """``text`` split with shell word rules (ValueError if it cannot be); shlex is loaded only
    for a command given as a string."""
    import shlex

    return shlex.split(text)


class Problems:
    """Collects the messages of one place, so that every problem is reported at once."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.errors: list[str] = []

    def add(self, key: str, message: str) -> None:
        head = ": ".join(part for part in (self.where, key) if part)
        self.errors.append(escape_controls(f"{head}: {message}" if head else message))

    def parse(self, key: str, value: object, parser: Callable[[Any], Any]) -> Any:
        """``parser(value)``, or INVALID after recording its message under ``key``."""
        try:
            return parser(value)
        except Bad as exc:
            self.add(key, str(exc))
            return INVALID


INVALID: Any = object()

_DURATION_HINT = 'must be a duration like 5, "500ms", "2s" or "1m"'


def duration(value: object) -> float:
    """Seconds, 0 or more, from a number or a string with a unit (``"500ms"``, ``"2s"``)."""
    try:
        return parse_duration(value)
    except (ValueError, OverflowError):
        pass
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value or value in (float("inf"), float("-inf")):
            raise Bad(f"must be a finite number of seconds (got {show(value)})") from None
        if value < 0:
            raise Bad(f"must not be negative (got {show(value)})") from None
    raise Bad(f"{_DURATION_HINT} (got {show(value)})")


def positive_duration(value: object) -> float:
    seconds = duration(value)
    if seconds == 0:
        raise Bad(f"must be more than 0 seconds (got {show(value)})")
    return seconds


def signal_number(value: object) -> int:
    """A signal from a name in any case, with or without SIG, or its number."""
    try:
        return parse_signal(value)
    except (ValueError, OverflowError):
        raise Bad(
            f'must be a signal name or number like "TERM", "SIGINT" or 15 (got {show(value)})'
        ) from None


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise Bad(f"must be true or false (got {show(value)})")
    return value


def count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Bad(f"must be a whole number, 0 or more (got {show(value)})")
    return value


def text(value: object) -> str:
    """A non-empty string that can go through exec (no NUL, nothing that cannot be encoded)."""
    if not isinstance(value, str):
        raise Bad(f"must be a string (got {show(value)})")
    if not value:
        raise Bad("must not be empty")
    _passable(value)
    return value


#: sun_path holds 108 bytes, the last one a NUL.
_MAX_SOCKET_PATH = 107


def socket_path(value: object) -> str | None:
    """``control_socket``: a path, ``true`` for the default one, or ``false`` for none."""
    if value is False:
        return None
    if value is True:
        return defaults.CONTROL_SOCKET
    if not isinstance(value, str):
        raise Bad(f"must be a path, true or false (got {show(value)})")
    path = text(value)
    if len(path.encode("utf-8", "surrogateescape")) > _MAX_SOCKET_PATH:
        raise Bad(
            f"is longer than {_MAX_SOCKET_PATH} bytes, the limit of a unix socket address; use a shorter path"
        )
    return path


def reload_signal(value: object) -> int:
    """``reload_signal``: a signal trinit would otherwise forward (SPEC §3), like HUP or USR1."""
    sig = signal_number(value)
    if sig not in RELOADABLE:
        raise Bad(
            f'must be a signal that trinit would otherwise forward, like "HUP" or "USR1" (got {show(value)})'
        )
    return sig


def _encodes(value: str) -> bool:
    """Whether ``value`` becomes bytes the way exec, open and getpwnam encode it."""
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _passable(value: str, item: str = "") -> None:
    """A string that can reach the OS: no NUL, no lone surrogate (Python-made, not from TOML)."""
    if "\0" in value:
        raise Bad(f"{item}must not contain a NUL character (got {show(value)})")
    if not _encodes(value):
        raise Bad(f"{item}must not contain a lone surrogate character (got {show(value)})")


def one_of(*choices: str) -> Any:
    listed = ", ".join(f'"{c}"' for c in choices[:-1]) + f' or "{choices[-1]}"'

    def parse(value: object) -> str:
        if value not in choices or not isinstance(value, str):
            raise Bad(f"must be {listed} (got {show(value)})")
        return value

    return parse


def user_or_group(value: object) -> str:
    """A name or a numeric id, kept as a string ("1000" and 1000 are the same id)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0 or value >= 2**32 - 1:
            raise Bad(f"must be a name or an id from 0 to 4294967294 (got {show(value)})")
        return str(value)
    if not isinstance(value, str) or not value or "\0" in value or ":" in value or not _encodes(value):
        raise Bad(f"must be a name or a numeric id (got {show(value)})")
    if is_id(value) and int(value) >= 2**32 - 1:
        raise Bad(f"must be a name or an id from 0 to 4294967294 (got {show(value)})")
    return value


def is_id(name: str) -> bool:
    """A numeric user or group id ("1000"), as opposed to a name."""
    return name.isascii() and name.isdigit()


def exit_codes(value: object) -> frozenset[int]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise Bad(f"must be a list of exit codes from 0 to 255 (got {show(value)})")
    codes = list(value)
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
            raise Bad(f"must be a list of exit codes from 0 to 255 (got {show(code)} in it)")
    if not codes:
        raise Bad("must not be empty: no exit code would count as success")
    return frozenset(codes)


def argv(value: object, *, shell: bool = False) -> tuple[str, ...]:
    """An argv from an array, or a string split with shell word rules (``/bin/sh -c`` with shell)."""
    if isinstance(value, str):
        _passable(value)
        if shell:
            if not value.strip():
                raise Bad("must not be empty")
            return ("/bin/sh", "-c", value)
        try:
            words = shell_words(value)
        except ValueError as exc:
            raise Bad(
                f"cannot be split with shell word rules: {str(exc).lower()} (got {show(value)})"
            ) from None
    elif isinstance(value, (list, tuple)):
        words = list(value)
        for i, word in enumerate(words, 1):
            if not isinstance(word, str):
                raise Bad(f"item {i} must be a string (got {show(word)})")
            _passable(word, f"item {i} ")
        if shell and words and not (len(words) == 3 and words[:2] == ["/bin/sh", "-c"]):
            raise Bad("must be a string when shell = true (it runs as /bin/sh -c STRING)")
    else:
        raise Bad(f"must be an argv array of strings or a string (got {show(value)})")
    if not words:
        raise Bad("must not be empty")
    if not words[0]:
        raise Bad("the program (item 1) must not be empty")
    return tuple(map(sys.intern, words))  # 10,000 copies of one command share its strings


_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def after_list(
    value: object, problems: Problems, implicit: frozenset[str], restart: frozenset[str] = frozenset()
) -> tuple[tuple[tuple[str, Condition], ...], frozenset[str], frozenset[str]] | None:
    """``after`` as (name, condition) pairs, the names given without a condition, and the
    names whose restarts this process follows (``{ when = "ready", restart = true }``, SPEC §10).

    A name without a condition gets the placeholder "ready" until ``Config`` knows
    whether it names a oneshot.  ``implicit`` and ``restart`` carry what an earlier
    validation knew (``attrs.evolve`` passes the pairs only).
    """
    conditions = ("started", "ready", "completed")
    pairs: list[tuple[str, Condition]] = []
    plain: set[str] = set()
    follows: set[str] = set()
    ok = True
    if isinstance(value, Mapping):
        for dep, cond in value.items():
            if isinstance(dep, str) and isinstance(cond, Mapping):
                cond = _condition_table(dep, cond, problems, follows)
                if cond is None:
                    ok = False
                    continue
                if cond == "":
                    plain.add(dep)
                    cond = "ready"
            if not isinstance(dep, str):
                problems.add("after", f"names must be strings (got {show(dep)})")
                ok = False
            elif cond not in conditions or not isinstance(cond, str):
                problems.add(
                    f"after.{dep}",
                    f'must be "started", "ready" or "completed", or a table like '
                    f'{{ when = "ready", restart = true }} (got {show(cond)})',
                )
                ok = False
            else:
                pairs.append((dep, cast(Condition, cond)))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value, 1):
            if isinstance(item, str):
                pairs.append((item, "ready"))
                plain.add(item)
            elif (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and item[1] in conditions
                and isinstance(item[1], str)
            ):
                pairs.append(item)
            else:
                problems.add("after", f"item {i} must be a process name (got {show(item)})")
                ok = False
    else:
        problems.add(
            "after",
            f'must be a table like {{ db = "ready" }} or an array of names like ["db"] (got {show(value)})',
        )
        return None
    seen: set[str] = set()
    for dep, _ in pairs:
        if dep in seen:
            problems.add("after", f'names "{dep}" twice')
            ok = False
        seen.add(dep)
    if not ok:
        return None
    return tuple(pairs), frozenset(plain | (implicit & seen)), frozenset(follows | (restart & seen))


def _condition_table(dep: str, table: Mapping[Any, Any], problems: Problems, follows: set[str]) -> str | None:
    """``{ when = "ready", restart = true }``: the condition ("" when ``when`` is not given,
    so the default applies), or None after recording what is wrong."""
    ok = True
    for key in table:
        if key not in ("when", "restart"):
            hint = did_you_mean(str(key), ("when", "restart"))
            problems.add(f"after.{dep}", f'unknown key "{key}"{hint}; a condition table has when and restart')
            ok = False
    when = table.get("when", "")
    if when != "" and (not isinstance(when, str) or when not in ("started", "ready", "completed")):
        problems.add(f"after.{dep}.when", f'must be "started", "ready" or "completed" (got {show(when)})')
        ok = False
    restart = table.get("restart", False)
    if not isinstance(restart, bool):
        problems.add(f"after.{dep}.restart", f"must be true or false (got {show(restart)})")
        ok = False
    elif restart:
        follows.add(dep)
    return str(when) if ok else None


def environment(value: object, problems: Problems) -> tuple[tuple[str, str], ...] | None:
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)) and all(isinstance(i, tuple) and len(i) == 2 for i in value):
        items = list(value)
    else:
        problems.add("env", f'must be a table like {{ NAME = "value" }} (got {show(value)})')
        return None
    before = len(problems.errors)
    for key, val in items:
        if not isinstance(key, str) or not key or "=" in key or "\0" in key or not _encodes(key):
            problems.add("env", f'{show(key)} is not a variable name (it must be non-empty, without "=")')
        elif not isinstance(val, str):
            hint = (
                f'; quote it: "{val}"' if isinstance(val, (int, float)) and not isinstance(val, bool) else ""
            )
            problems.add(f"env.{key}", f"must be a string (got {show(val)}){hint}")
        elif "\0" in val:
            problems.add(f"env.{key}", f"must not contain a NUL character (got {show(val)})")
        elif not _encodes(val):
            problems.add(f"env.{key}", f"must not contain a lone surrogate character (got {show(val)})")
    if len(problems.errors) > before:
        return None
    return tuple(items)
