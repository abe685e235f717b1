"""The validated model every front end produces and the runtime consumes.

CONTRACT (shared by the config front end and the runtime; keep names and types):
values here are already normalized: durations are float seconds, signals are ints,
``command`` is the final argv (``shell = true`` makes it ``("/bin/sh", "-c", text)``),
``after`` is a tuple of (name, condition) pairs, paths are absolute where the config
file gave a relative one, and ``${VAR}`` expansion has been applied by the loader.

``ProcessSpec(...)`` and ``Config(...)`` validate on construction and raise one
``ConfigError`` listing every problem; the TOML loader goes through the same checks, so
keyword arguments and a file get the same rules and the same messages.  The value checks
(one process at a time) are at the bottom of this module; the graph checks (names,
conditions, cycles, stop jobs) are in ``_plan``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, cast

import attrs

from .._errors import ConfigError

Condition = Literal["started", "ready", "completed"]
RestartPolicy = Literal["no", "on-failure", "always"]
OnFailure = Literal["shutdown", "ignore"]
Phase = Literal["run", "stop"]
OutputMode = Literal["inherit", "prefix", "null"]
LogFormat = Literal["text", "json"]
ProbeKind = Literal["exec", "tcp", "http", "file", "log"]


@attrs.frozen
class ReadySpec:
    """A readiness probe: exactly one kind, with its timing.

    Built from a ``ready`` table by ``ProcessSpec``; constructing it directly does not
    validate (it is what the validation produces).
    """

    kind: ProbeKind
    #: exec: the argv; tcp: "host:port"; http: the URL; file: an absolute path; log: a regex.
    target: tuple[str, ...] | str
    interval: float = 0.1
    attempt_timeout: float = 1.0
    timeout: float = 60.0


@attrs.frozen(init=False)
class ProcessSpec:
    """One supervised process, as ``[process.NAME]`` describes it (SPEC §4).

    Keyword arguments take the TOML keys and values (``command`` as a list or a string,
    durations as seconds or ``"2s"``, signals as names or numbers, ``ready`` and ``env`` as
    dicts); ``None`` means "not given".  ``${VAR}`` is NOT expanded here: that is the
    loader's job, so a library user's strings are taken literally.
    """

    name: str
    command: tuple[str, ...]
    shell: bool = False
    main: bool = False
    oneshot: bool = False
    after: tuple[tuple[str, Condition], ...] = ()
    ready: ReadySpec | None = None
    restart: RestartPolicy = "no"
    restart_delay: float = 0.5
    restart_delay_max: float = 30.0
    restart_reset_after: float = 60.0
    max_restarts: int | None = None
    on_failure: OnFailure = "shutdown"
    success_codes: frozenset[int] = frozenset({0})
    timeout: float | None = None
    retries: int = 0
    phase: Phase = "run"
    #: None: SIGTERM, or for main the signal that began the shutdown.
    stop_signal: int | None = None
    stop_timeout: float = 5.0
    signal_group: bool = False
    forward_signals: bool = False
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    env_file: str | None = None
    inherit_env: bool = True
    user: str | None = None
    group: str | None = None
    output: OutputMode = "inherit"
    #: The ``after`` names given without a condition (array form).  Their condition is
    #: the default ("completed" on a oneshot, else "ready"), which ``Config`` fills in
    #: once every process is known; kept so that re-validation (``attrs.evolve``) and
    #: the "a stop job's after holds names only" rule still know what the user wrote.
    _after_implicit: frozenset[str] = attrs.field(default=frozenset(), repr=False, alias="_after_implicit")

    def __init__(
        self,
        name: str,
        command: str | Sequence[str] | None = None,
        *,
        shell: bool | None = None,
        main: bool | None = None,
        oneshot: bool | None = None,
        after: Mapping[str, str] | Sequence[str | tuple[str, str]] | None = None,
        ready: Mapping[str, Any] | ReadySpec | None = None,
        restart: str | None = None,
        restart_delay: float | str | None = None,
        restart_delay_max: float | str | None = None,
        restart_reset_after: float | str | None = None,
        max_restarts: int | None = None,
        on_failure: str | None = None,
        success_codes: Iterable[int] | None = None,
        timeout: float | str | None = None,
        retries: int | None = None,
        phase: str | None = None,
        stop_signal: int | str | None = None,
        stop_timeout: float | str | None = None,
        signal_group: bool | None = None,
        forward_signals: bool | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        env_file: str | None = None,
        inherit_env: bool | None = None,
        user: str | int | None = None,
        group: str | int | None = None,
        output: str | None = None,
        _after_implicit: Iterable[str] = (),
    ) -> None:
        given = {
            "command": command, "shell": shell, "main": main, "oneshot": oneshot, "after": after,
            "ready": ready, "restart": restart, "restart_delay": restart_delay,
            "restart_delay_max": restart_delay_max, "restart_reset_after": restart_reset_after,
            "max_restarts": max_restarts, "on_failure": on_failure, "success_codes": success_codes,
            "timeout": timeout, "retries": retries, "phase": phase, "stop_signal": stop_signal,
            "stop_timeout": stop_timeout, "signal_group": signal_group,
            "forward_signals": forward_signals, "cwd": cwd, "env": env, "env_file": env_file,
            "inherit_env": inherit_env, "user": user, "group": group, "output": output,
        }  # fmt: skip
        draft = check_process(
            name,
            {k: v for k, v in given.items() if v is not None},
            where=None,
            implicit=frozenset(_after_implicit),
        )
        if draft.errors:
            raise ConfigError(draft.errors)
        self.__attrs_init__(**draft.values)

    @classmethod
    def _trusted(cls, values: Mapping[str, Any]) -> ProcessSpec:
        """Build from values ``check_process`` already normalized (no second validation)."""
        spec = cls.__new__(cls)
        spec.__attrs_init__(**values)
        return spec

    @property
    def is_stop_job(self) -> bool:
        """A ``phase = "stop"`` oneshot: started by the shutdown, not by the start."""
        return self.phase == "stop"

    @property
    def kind(self) -> str:
        """For messages and ``trinit check``: main, service, oneshot or stop job."""
        if self.main:
            return "main"
        if self.phase == "stop":
            return "stop job"
        return "oneshot" if self.oneshot else "service"

    def is_long_running(self) -> bool:
        return not self.oneshot


@attrs.frozen(init=False)
class Config:
    """The whole config: the ``[trinit]`` keys plus the processes.

    Construction checks what needs every process at once (unknown or duplicate names,
    two mains, conditions that do not fit, cycles, stop jobs that gate each other) and
    fills in the default ``after`` conditions.
    """

    processes: tuple[ProcessSpec, ...] = ()
    shutdown_timeout: float = 9.0
    log_format: LogFormat = "text"
    ready_file: str | None = None
    #: Where the config came from, for messages ("trinit.toml"); None for keyword construction.
    source: str | None = None

    def __init__(
        self,
        processes: Iterable[ProcessSpec] = (),
        *,
        shutdown_timeout: float | str | None = None,
        log_format: str | None = None,
        ready_file: str | None = None,
        source: str | None = None,
    ) -> None:
        given = {"shutdown_timeout": shutdown_timeout, "log_format": log_format, "ready_file": ready_file}
        values, errors = check_config(
            list(processes), {k: v for k, v in given.items() if v is not None}, source=source
        )
        if errors:
            raise ConfigError(errors)
        self.__attrs_init__(**values, source=source)

    def main_process(self) -> ProcessSpec | None:
        return next((p for p in self.processes if p.main), None)

    def process(self, name: str) -> ProcessSpec:
        for p in self.processes:
            if p.name == name:
                return p
        raise KeyError(name)


# ------------------------------------------------------------------------------ value checks
#
# Each parser takes one raw value (TOML-typed, or what a library user passed) and returns
# the normalized value or raises _Bad with the message's tail (attrs style: "must be ...
# (got ...)"); Problems adds the file, process and key in front.  Bool is a subclass of
# int in Python, so every numeric parser rejects bools first: ``stop_timeout = true`` is
# an error, as TOML's types say.


class _Bad(ValueError):
    """One invalid value; the message says what it must be, without the key."""


def show(value: object) -> str:
    """A value as a message shows it: TOML's true/false, else repr, cut short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def place(source: str | None, name: str | None = None) -> str:
    """The front of a message: ``trinit.toml: process "web"``, or less when unknown."""
    parts = [source] if source else []
    if name is not None:
        parts.append(f'process "{name}"')
    return ": ".join(parts)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


class Problems:
    """Collects the messages of one place, so that every problem is reported at once."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.errors: list[str] = []

    def add(self, key: str, message: str) -> None:
        head = ": ".join(part for part in (self.where, key) if part)
        self.errors.append(f"{head}: {message}" if head else message)

    def parse(self, key: str, value: object, parser: Any) -> Any:
        """``parser(value)``, or _INVALID after recording its message under ``key``."""
        try:
            return parser(value)
        except _Bad as exc:
            self.add(key, str(exc))
            return _INVALID


_INVALID: Any = object()

_DURATION_HINT = 'must be a duration like 5, "500ms", "2s" or "1m"'


def duration(value: object) -> float:
    """Seconds, 0 or more, from a number or a string with a unit (``"500ms"``, ``"2s"``)."""
    from ..boot.parse import parse_duration

    try:
        return parse_duration(value)
    except (ValueError, OverflowError):
        pass
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value or value in (float("inf"), float("-inf")):
            raise _Bad(f"must be a finite number of seconds (got {show(value)})") from None
        if value < 0:
            raise _Bad(f"must not be negative (got {show(value)})") from None
    raise _Bad(f"{_DURATION_HINT} (got {show(value)})")


def positive_duration(value: object) -> float:
    seconds = duration(value)
    if seconds == 0:
        raise _Bad(f"must be more than 0 seconds (got {show(value)})")
    return seconds


def signal_number(value: object) -> int:
    """A signal from a name in any case, with or without SIG, or its number."""
    from ..boot.parse import parse_signal

    try:
        return parse_signal(value)
    except (ValueError, OverflowError):
        raise _Bad(
            f'must be a signal name or number like "TERM", "SIGINT" or 15 (got {show(value)})'
        ) from None


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"must be true or false (got {show(value)})")
    return value


def count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Bad(f"must be a whole number, 0 or more (got {show(value)})")
    return value


def text(value: object) -> str:
    """A non-empty string that can go through exec (no NUL)."""
    if not isinstance(value, str):
        raise _Bad(f"must be a string (got {show(value)})")
    if not value:
        raise _Bad("must not be empty")
    if "\0" in value:
        raise _Bad(f"must not contain a NUL character (got {show(value)})")
    return value


def one_of(*choices: str) -> Any:
    listed = ", ".join(f'"{c}"' for c in choices[:-1]) + f' or "{choices[-1]}"'

    def parse(value: object) -> str:
        if value not in choices or not isinstance(value, str):
            raise _Bad(f"must be {listed} (got {show(value)})")
        return value

    return parse


def user_or_group(value: object) -> str:
    """A name or a numeric id, kept as a string ("1000" and 1000 are the same id)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0 or value >= 2**32 - 1:
            raise _Bad(f"must be a name or an id from 0 to 4294967294 (got {show(value)})")
        return str(value)
    if not isinstance(value, str) or not value or "\0" in value or ":" in value:
        raise _Bad(f"must be a name or a numeric id (got {show(value)})")
    if is_id(value) and int(value) >= 2**32 - 1:
        raise _Bad(f"must be a name or an id from 0 to 4294967294 (got {show(value)})")
    return value


def is_id(name: str) -> bool:
    """A numeric user or group id ("1000"), as opposed to a name."""
    return name.isascii() and name.isdigit()


def exit_codes(value: object) -> frozenset[int]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise _Bad(f"must be a list of exit codes from 0 to 255 (got {show(value)})")
    codes = list(value)
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
            raise _Bad(f"must be a list of exit codes from 0 to 255 (got {show(code)} in it)")
    if not codes:
        raise _Bad("must not be empty: no exit code would count as success")
    return frozenset(codes)


def argv(value: object, *, shell: bool = False) -> tuple[str, ...]:
    """An argv from an array, or a string split with shell word rules (``/bin/sh -c`` with shell)."""
    import shlex

    if isinstance(value, str):
        if "\0" in value:
            raise _Bad(f"must not contain a NUL character (got {show(value)})")
        if shell:
            if not value.strip():
                raise _Bad("must not be empty")
            return ("/bin/sh", "-c", value)
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise _Bad(
                f"cannot be split with shell word rules: {str(exc).lower()} (got {show(value)})"
            ) from None
    elif isinstance(value, (list, tuple)):
        words = list(value)
        for i, word in enumerate(words, 1):
            if not isinstance(word, str):
                raise _Bad(f"item {i} must be a string (got {show(word)})")
            if "\0" in word:
                raise _Bad(f"item {i} must not contain a NUL character (got {show(word)})")
        if shell and words and not (len(words) == 3 and words[:2] == ["/bin/sh", "-c"]):
            raise _Bad("must be a string when shell = true (it runs as /bin/sh -c STRING)")
    else:
        raise _Bad(f"must be an argv array of strings or a string (got {show(value)})")
    if not words:
        raise _Bad("must not be empty")
    if not words[0]:
        raise _Bad("the program (item 1) must not be empty")
    return tuple(words)


def valid_name(name: object) -> bool:
    import re

    return isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.\-]+", name) is not None


def after_list(
    value: object, problems: Problems, implicit: frozenset[str]
) -> tuple[tuple[tuple[str, Condition], ...], frozenset[str]] | None:
    """``after`` as (name, condition) pairs plus the names given without a condition.

    A name without a condition gets the placeholder "ready" until ``Config`` knows
    whether it names a oneshot.
    """
    conditions = ("started", "ready", "completed")
    pairs: list[tuple[str, Condition]] = []
    plain: set[str] = set()
    ok = True
    if isinstance(value, Mapping):
        for dep, cond in value.items():
            if not isinstance(dep, str):
                problems.add("after", f"names must be strings (got {show(dep)})")
                ok = False
            elif cond not in conditions or not isinstance(cond, str):
                problems.add(f"after.{dep}", f'must be "started", "ready" or "completed" (got {show(cond)})')
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
    return tuple(pairs), frozenset(plain | (implicit & seen))


_PROBES: tuple[ProbeKind, ...] = ("exec", "tcp", "http", "file", "log")
_PROBE_TIMING = ("interval", "attempt_timeout", "timeout")


def _probe_target(kind: str, value: object) -> tuple[str, ...] | str:
    import re

    if kind == "exec":
        return argv(value)
    target = text(value)
    if kind == "tcp":
        m = re.fullmatch(r"(\[[^\]]+\]|[^\s:\[\]]+):(\d{1,5})", target)
        if m is None or not 0 < int(m[2]) < 65536:
            raise _Bad(f'must be "host:port" like "127.0.0.1:8080" (got {show(value)})')
    elif kind == "http":
        if re.fullmatch(r"https?://[^\s/]+\S*", target) is None:
            raise _Bad(
                f'must be an http:// or https:// URL like "http://127.0.0.1:8080/health" (got {show(value)})'
            )
    elif kind == "log":
        try:
            re.compile(target)
        except (re.error, RecursionError, OverflowError) as exc:
            raise _Bad(f"is not a valid regular expression: {exc} (got {show(value)})") from None
    return target


def ready_probe(value: object, problems: Problems) -> ReadySpec | None:
    if isinstance(value, ReadySpec):
        return value
    if not isinstance(value, Mapping):
        problems.add("ready", f'must be a table like {{ tcp = "127.0.0.1:8080" }} (got {show(value)})')
        return None
    before = len(problems.errors)
    for key in value:
        if key not in _PROBES and key not in _PROBE_TIMING:
            hint = did_you_mean(str(key), _PROBES + _PROBE_TIMING)
            problems.add("ready", f'unknown key "{key}"{hint}')
    kinds = [k for k in _PROBES if k in value]
    if not kinds:
        problems.add("ready", "needs one probe: exec, tcp, http, file or log")
    elif len(kinds) > 1:
        problems.add("ready", f"has {' and '.join(kinds)}: give exactly one probe")
    target: Any = _INVALID
    if len(kinds) == 1:
        target = problems.parse(f"ready.{kinds[0]}", value[kinds[0]], lambda v: _probe_target(kinds[0], v))
    timing = {
        key: problems.parse(f"ready.{key}", value[key], positive_duration)
        for key in _PROBE_TIMING
        if key in value
    }
    if len(problems.errors) > before:
        return None
    return ReadySpec(kind=kinds[0], target=target, **timing)


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
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            problems.add("env", f'{show(key)} is not a variable name (it must be non-empty, without "=")')
        elif not isinstance(val, str):
            hint = (
                f'; quote it: "{val}"' if isinstance(val, (int, float)) and not isinstance(val, bool) else ""
            )
            problems.add(f"env.{key}", f"must be a string (got {show(val)}){hint}")
        elif "\0" in val:
            problems.add(f"env.{key}", f"must not contain a NUL character (got {show(val)})")
    if len(problems.errors) > before:
        return None
    return tuple(items)


def _identity(values: dict[str, Any], problems: Problems) -> None:
    """``user``/``group`` must exist, and differ from trinit's own only when trinit is root.

    Checked here, before anything starts, so that a container never half-starts and
    then fails on a setuid.
    """
    import grp
    import os
    import pwd

    user, group = values.get("user"), values.get("group")
    uid = gid = None
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if is_id(user) else pwd.getpwnam(user)
            uid, gid = entry.pw_uid, entry.pw_gid
        except KeyError:
            if not is_id(user):
                problems.add("user", f'no user named "{user}" (not in the passwd database)')
            elif group is None:
                problems.add(
                    "user", f"uid {user} has no passwd entry, so its group is unknown: set group too"
                )
            else:
                uid = int(user)
    if group is not None:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if is_id(group) else grp.getgrnam(group).gr_gid
        except KeyError:
            if is_id(group):
                gid = int(group)
            else:
                problems.add("group", f'no group named "{group}" (not in the group database)')
    euid = os.geteuid()
    if euid == 0:
        return
    if uid is not None and uid != euid:
        problems.add(
            "user",
            f'trinit runs as uid {euid}, not root, so it cannot switch to user "{user}" '
            "(privileges are checked before anything starts)",
        )
    elif gid is not None and gid != os.getegid():
        key, what = (
            ("group", f'group "{group}"') if group is not None else ("user", f'the group of user "{user}"')
        )
        problems.add(
            key,
            f"trinit runs as gid {os.getegid()}, not root, so it cannot switch to {what} "
            "(privileges are checked before anything starts)",
        )


_FIELDS: dict[str, attrs.Attribute[Any]] = {f.alias or f.name: f for f in attrs.fields(ProcessSpec)}
PROCESS_KEYS = tuple(k for k in _FIELDS if k not in ("name", "_after_implicit"))
_DEFAULTS: dict[str, Any] = {k: f.default for k, f in _FIELDS.items() if f.default is not attrs.NOTHING}
_SIMPLE: dict[str, Any] = {
    "shell": boolean,
    "main": boolean,
    "oneshot": boolean,
    "restart": one_of("no", "on-failure", "always"),
    "restart_delay": positive_duration,
    "restart_delay_max": positive_duration,
    "restart_reset_after": positive_duration,
    "max_restarts": count,
    "on_failure": one_of("shutdown", "ignore"),
    "success_codes": exit_codes,
    "timeout": positive_duration,
    "retries": count,
    "phase": one_of("run", "stop"),
    "stop_signal": signal_number,
    "stop_timeout": duration,
    "signal_group": boolean,
    "forward_signals": boolean,
    "cwd": text,
    "env_file": text,
    "inherit_env": boolean,
    "user": user_or_group,
    "group": user_or_group,
    "output": one_of("inherit", "prefix", "null"),
}
#: Keys that only fit some kinds of process; each is an error elsewhere unless it has its
#: default value (so ``oneshot = false`` on main is fine, and ``attrs.evolve`` works).
_NOT_ON_MAIN = {
    "oneshot": "its exit ends trinit, it cannot be a oneshot",
    "restart": "its exit ends trinit, so it is never restarted",
    "restart_delay": "it is never restarted",
    "restart_delay_max": "it is never restarted",
    "restart_reset_after": "it is never restarted",
    "max_restarts": "it is never restarted",
    "retries": "only oneshots have retries",
    "phase": "only oneshots have a phase",
    "on_failure": "its end is the end of everything",
}
_NOT_ON_ONESHOT = {
    "restart": "a oneshot runs to completion; use retries to run failed attempts again",
    "restart_reset_after": "a oneshot is not restarted; use retries",
    "max_restarts": "a oneshot is not restarted; use retries",
}
_ONLY_ON_ONESHOT = {
    "retries": "only for oneshots (a long-running process uses restart)",
    "phase": 'only for oneshots (a stop job is a oneshot with phase = "stop")',
    "timeout": "only for oneshots and the main process (a long-running process has no end to wait for)",
}


@attrs.define
class Draft:
    """One process as far as it validated: ``values`` holds the keys that are fine."""

    name: str
    values: dict[str, Any]
    errors: list[str]


def check_process(
    name: str, given: Mapping[str, Any], *, where: str | None, implicit: frozenset[str] = frozenset()
) -> Draft:
    """Validate and normalize one process's keys; ``where`` is the config source, if any."""
    problems = Problems(place(where, name))
    if not valid_name(name):
        problems.add("", 'the name may only hold letters, digits, "_", "-" and "."')
    for key in given:
        if key not in PROCESS_KEYS:
            problems.add("", f'unknown key "{key}"{did_you_mean(str(key), PROCESS_KEYS)}')
    values: dict[str, Any] = dict(_DEFAULTS, name=name)
    for key, parser in _SIMPLE.items():
        if key in given:
            values[key] = problems.parse(key, given[key], parser)
    if "command" not in given:
        problems.add("command", "is required: an argv array, or a string split with shell word rules")
        values["command"] = _INVALID
    else:
        shell = values["shell"] is True
        values["command"] = problems.parse("command", given["command"], lambda v: argv(v, shell=shell))
    if "after" in given:
        after = after_list(given["after"], problems, implicit)
        values["after"], values["_after_implicit"] = after if after is not None else (_INVALID, _INVALID)
    if "ready" in given:
        values["ready"] = ready_probe(given["ready"], problems) or _INVALID
    if "env" in given:
        env = environment(given["env"], problems)
        values["env"] = _INVALID if env is None else env
    if "signal_group" not in given:
        values["signal_group"] = values["shell"] is True
    if "forward_signals" not in given:
        values["forward_signals"] = values["main"] is True
    values = {k: v for k, v in values.items() if v is not _INVALID}
    delay, cap = values.get("restart_delay"), values.get("restart_delay_max")
    if delay is not None and cap is not None and delay > cap:
        problems.add(
            "restart_delay_max" if "restart_delay_max" in given else "restart_delay",
            f"restart_delay ({delay:g} s) is more than restart_delay_max ({cap:g} s), which caps it; "
            "raise restart_delay_max or lower restart_delay",
        )
    _kind_rules(given, values, problems)
    _identity(values, problems)
    return Draft(name, values, problems.errors)


def _kind_rules(given: Mapping[str, Any], values: dict[str, Any], problems: Problems) -> None:
    def off_default(key: str) -> bool:
        return key in given and key in values and values[key] != _DEFAULTS[key]

    if values.get("main") is True:
        for key, why in _NOT_ON_MAIN.items():
            if off_default(key):
                problems.add(key, f"not allowed on the main process: {why}")
        return
    if values.get("oneshot") is True:
        for key, why in _NOT_ON_ONESHOT.items():
            if off_default(key):
                problems.add(key, f"not allowed on a oneshot: {why}")
        if values.get("phase") == "stop":
            if values.get("ready") is not None:
                problems.add("ready", "not allowed on a stop job: nothing waits for it to be ready")
            explicit = [d for d, _ in values.get("after", ()) if d not in values.get("_after_implicit", ())]
            if explicit:
                names = ", ".join(f'"{d}"' for d in explicit)
                problems.add(
                    "after",
                    "a stop job's after holds names only, the processes that must have stopped "
                    f"before it runs (write after = [{names}])",
                )
    elif values.get("oneshot") is False:
        for key, why in _ONLY_ON_ONESHOT.items():
            if off_default(key):
                problems.add(key, why)


# --------------------------------------------------------------------------- [trinit] keys

TRINIT_KEYS = ("shutdown_timeout", "log_format", "ready_file")


def check_config(
    processes: Sequence[object], given: Mapping[str, Any], *, source: str | None
) -> tuple[dict[str, Any], list[str]]:
    """Validate the ``[trinit]`` keys and everything that needs all processes at once.

    Returns the values for ``Config.__attrs_init__`` (processes with their default
    ``after`` conditions filled in) and the errors.
    """
    from .plan import check_graph

    problems = Problems(f"{source}: [trinit]" if source else "")
    values = check_trinit(given, problems)
    errors = problems.errors
    specs: list[ProcessSpec] = []
    for i, spec in enumerate(processes, 1):
        if isinstance(spec, ProcessSpec):
            specs.append(spec)
        else:
            errors.append(f"processes: item {i} must be a ProcessSpec (got {show(spec)})")
    drafts = [Draft(s.name, {k: getattr(s, f.name) for k, f in _FIELDS.items()}, []) for s in specs]
    errors += check_graph(drafts, source=source)
    values["processes"] = tuple(ProcessSpec._trusted(d.values) for d in resolve_after(drafts))
    return values, errors


def check_trinit(given: Mapping[str, Any], problems: Problems) -> dict[str, Any]:
    """Validate the ``[trinit]`` keys; returns the ones that are fine, normalized."""
    for key in given:
        if key not in TRINIT_KEYS:
            problems.add("", f'unknown key "{key}"{did_you_mean(str(key), TRINIT_KEYS)}')
    values = {
        key: problems.parse(key, given[key], parser)
        for key, parser in _TRINIT_PARSERS.items()
        if key in given
    }
    return {k: v for k, v in values.items() if v is not _INVALID}


_TRINIT_PARSERS: dict[str, Any] = {
    "shutdown_timeout": duration,
    "log_format": one_of("text", "json"),
    "ready_file": text,
}


def resolve_after(drafts: Sequence[Draft]) -> list[Draft]:
    """Give each ``after`` name written without a condition its default: "completed" on a
    oneshot, "ready" on anything else."""
    oneshots = {d.name for d in drafts if d.values.get("oneshot") is True}
    out = []
    for d in drafts:
        implicit = d.values.get("_after_implicit", frozenset())
        after = d.values.get("after")
        if after is not None and implicit:
            after = tuple(
                (dep, ("completed" if dep in oneshots else "ready") if dep in implicit else cond)
                for dep, cond in after
            )
            d = Draft(d.name, dict(d.values, after=after), d.errors)
        out.append(d)
    return out
