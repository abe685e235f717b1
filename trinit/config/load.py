"""From a TOML file (or argv) to a validated Config.

The loader does what only a file can need: TOML parsing with line and column in the
message, ``${VAR}`` expansion from trinit's environment, and relative paths taken from
the config file's folder.  Everything else (types, values, kinds, the graph) is the
model's validation, so a file and keyword arguments obey the same rules.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from .._errors import ConfigError
from . import defaults
from .files import MAX_CONFIG_BYTES, include_patterns, included_files, parse_toml, read_toml
from .graph import check_graph
from .hooks import HOOKS
from .model import Config, ProcessSpec
from .schedule import zone_problem
from .validate import PROCESS_KEYS, Draft, check_process, check_trinit, resolve_after
from .values import Problems, did_you_mean, place, shell_words, show

TOP_LEVEL = ("trinit", "process")


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate a config file and the files it includes; every problem is one
    line of the ConfigError, naming the file it is in.

    ``environ`` is trinit's environment for ``${VAR}`` (default ``os.environ``).
    Messages name the file as the caller gave it (``Config.source``).
    """
    source = os.fspath(path)
    with _no_cycle_collection():
        data = read_toml(source, source)
        return config_from_mapping(
            data, source=source, base_dir=os.path.dirname(os.path.abspath(source)), environ=environ
        )


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector while a config is parsed and built.

    That allocates a few dozen objects per process and makes no reference cycles, so
    the collector's passes over them find nothing; with 10,000 processes they cost
    about a fifth of ``trinit check``.  Reference counting still frees everything.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def config_from_mapping(
    data: Mapping[str, Any],
    *,
    source: str | None = None,
    base_dir: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """A Config from a parsed TOML document (a dict of ``trinit`` and ``process`` tables).

    ``base_dir`` makes relative paths absolute (the config file's folder); ``environ``
    is what ``${VAR}`` reads (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    errors: list[str] = []
    for key in data:
        if key not in TOP_LEVEL:
            errors.append(
                f'{place(source) or "config"}: unknown table "{key}"{did_you_mean(str(key), TOP_LEVEL)}; '
                "the config has [trinit] and [process.NAME] tables"
            )
    trinit_problems = Problems(f"{source}: [trinit]" if source else "[trinit]")
    trinit = data.get("trinit", {})
    settings: dict[str, Any] = {}
    patterns: list[str] = []
    if not isinstance(trinit, Mapping):
        trinit_problems.add("", f"must be a table (got {show(trinit)})")
    else:
        trinit = dict(trinit)
        if "include" in trinit:
            patterns, bad = include_patterns(trinit.pop("include"), trinit_problems.where)
            errors += bad
        if isinstance(trinit.get("ready_file"), str) and trinit["ready_file"]:
            trinit["ready_file"] = _absolute(trinit["ready_file"], base_dir)
        if isinstance(trinit.get("control_socket"), str) and trinit["control_socket"]:
            trinit["control_socket"] = _absolute(trinit["control_socket"], base_dir)
        settings = check_trinit(trinit, trinit_problems)
        # A config file serves the control socket unless it says otherwise (SPEC §8).
        settings.setdefault("control_socket", defaults.CONTROL_SOCKET)
    errors += trinit_problems.errors

    drafts: list[Draft] = []
    origin: dict[str, str | None] = {}
    _read_processes(data.get("process", {}), source, base_dir, env, drafts, origin, errors)
    files, bad = included_files(
        patterns, base_dir or os.getcwd(), os.path.dirname(source or ""), trinit_problems.where
    )
    errors += bad
    for path, shown in files:
        try:
            document = read_toml(path, shown)
        except ConfigError as exc:
            errors += exc.errors
            continue
        for key in document:
            if key != "process":
                errors.append(
                    f'{place(shown)}: an included file holds [process.NAME] tables only (found "{key}"); '
                    f"put [{key}] in {place(source) or 'the config file'}"
                )
        _read_processes(
            document.get("process", {}), shown, os.path.dirname(path), env, drafts, origin, errors
        )

    errors += check_graph(drafts, source=source)
    cron_jobs = [d for d in drafts if d.values.get("schedule") is not None]
    if cron_jobs:  # cron times are read in the zone of TZ (SPEC §11): it must be one
        problem = zone_problem(env)
        if problem is not None:
            errors += [f"{place(d.source or source, d.name)}: schedule: {problem}" for d in cron_jobs]
    if errors:
        # Each process's problems together, in file order; file-wide ones first.
        raise ConfigError(sorted(errors, key=_by_process(source, drafts)))
    # Validated above, graph included: build the model without checking it all again.
    processes = [ProcessSpec._trusted(d.values) for d in resolve_after(drafts)]
    origins = {d.name: d.source for d in drafts if d.source is not None and d.source != source}
    return Config._trusted(processes, settings, source=source, origins=origins)


def _read_processes(
    tables: object,
    source: str | None,
    base_dir: str | None,
    environ: Mapping[str, str],
    drafts: list[Draft],
    origin: dict[str, str | None],
    errors: list[str],
) -> None:
    """The ``[process.NAME]`` tables of one file as drafts; a name that another file defined
    already is an error naming both files."""
    if not isinstance(tables, Mapping):
        errors.append(
            f"{place(source) or 'config'}: process: must be tables like [process.NAME] (got {show(tables)})"
        )
        return
    for name, table in tables.items():
        if name in origin:
            errors.append(
                f"{place(source, name)}: is defined in {place(origin[name]) or 'the config'} already; "
                "a process name is defined once (rename one of them)"
            )
            continue
        origin[name] = source
        if not isinstance(table, Mapping):
            errors.append(f"{place(source, name)}: must be a table of keys (got {show(table)})")
            continue
        problems = Problems(place(source, name))
        table = prepare_process(table, problems, base_dir=base_dir, environ=environ)
        draft = check_process(name, table, where=source)
        draft.source = source
        errors += problems.errors + draft.errors
        drafts.append(draft)


def _by_process(source: str | None, drafts: Sequence[Draft]) -> Callable[[str], int]:
    """Sort key: the position (files in order) of the process an error names, -1 for file-wide ones."""
    rank: dict[str, int] = {}
    for i, d in enumerate(drafts):
        rank.setdefault(f"{place(d.source or source, d.name)}: ", i)
    fronts = {place(d.source or source, "")[: -len('"')] for d in drafts}  # 'trinit.toml: process "'

    def key(error: str) -> int:
        for front in fronts:
            if not error.startswith(front):
                continue
            # The name ends at the first '": ' that makes a known head (a name may hold '"').
            end = error.find('": ', len(front))
            while end != -1:
                head = error[: end + 3]
                if head in rank:
                    return rank[head]
                end = error.find('": ', end + 1)
        return -1

    return key


# ------------------------------------------------------------------------------- expansion

_EXPANSION = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


class ExpansionError(ValueError):
    """An unset ``${VAR}`` without a default."""


def expand(text: str, environ: Mapping[str, str]) -> str:
    """``${VAR}``, ``${VAR:-default}`` (also when VAR is empty) and ``$$`` -> ``$``.

    Any other ``$`` is kept as it is, so ``$1`` or ``$HOME`` reach a shell intact.
    The default is taken literally (no nested expansion).
    """
    if "$" not in text:
        return text
    missing: list[str] = []

    def one(m: re.Match[str]) -> str:
        if m[1]:
            return "$"
        value = environ.get(m[2])
        if m[3] is not None:
            return value if value else m[3]
        if value is None:
            missing.append(m[2])
            return m.group(0)
        return value

    out = _EXPANSION.sub(one, text)
    if missing:
        names = ", ".join(f"${{{n}}}" for n in dict.fromkeys(missing))
        verb = "is" if len(set(missing)) == 1 else "are"
        raise ExpansionError(
            f"{names} {verb} not set in trinit's environment "
            f"(set it, give a default like ${{{missing[0]}:-value}}, or write $$ for a literal $)"
        )
    return out


def prepare_process(
    table: Mapping[str, Any], problems: Problems, *, base_dir: str | None, environ: Mapping[str, str]
) -> dict[str, Any]:
    """What the file adds to a process's raw keys: expansion and absolute paths.

    A string ``command`` or hook (without ``shell``) is split first and each word expanded
    after, so a value with spaces stays one argument and is never parsed as quotes;
    with ``shell = true`` the string is expanded whole and ``/bin/sh`` does the rest.
    Values of the wrong type are left for the model's checks to report.
    """
    out = dict(table)

    def expanded(key: str, value: str) -> str:
        try:
            return expand(value, environ)
        except ExpansionError as exc:
            problems.add(key, str(exc))
            return value

    def expanded_command(key: str, command: object) -> object:
        if isinstance(command, str) and out.get("shell") is not True:
            # A string that cannot be split is left for the model, which reports it with the
            # same message as for keyword arguments.
            with contextlib.suppress(ValueError):
                command = shell_words(command)
        if isinstance(command, str):
            return expanded(key, command)
        if isinstance(command, list):
            return [expanded(key, w) if isinstance(w, str) else w for w in command]
        return command

    if "command" in out:
        out["command"] = expanded_command("command", out["command"])
    for key in HOOKS:  # commands too; pre_start may be an array of them
        hook = out.get(key)
        if isinstance(hook, list) and any(isinstance(c, list) for c in hook):
            out[key] = [
                expanded_command(f"{key}: command {i}", c) if isinstance(c, list) else c
                for i, c in enumerate(hook, 1)
            ]
        elif key in out:
            out[key] = expanded_command(key, hook)
    if isinstance(out.get("cwd"), str) and out["cwd"]:
        out["cwd"] = _absolute(expanded("cwd", out["cwd"]), base_dir)
    if isinstance(out.get("env"), Mapping):
        out["env"] = {k: expanded(f"env.{k}", v) if isinstance(v, str) else v for k, v in out["env"].items()}
    if isinstance(out.get("env_file"), str) and out["env_file"]:
        out["env_file"] = _absolute(out["env_file"], base_dir)
    for key in ("ready", "health"):  # a file probe's relative path
        probe = out.get(key)
        if isinstance(probe, Mapping) and isinstance(probe.get("file"), str) and probe["file"]:
            out[key] = dict(probe, file=_absolute(probe["file"], base_dir))
    return out


def _absolute(path: str, base_dir: str | None) -> str:
    if base_dir is None or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base_dir, path))


# ---------------------------------------------------------------------------- command line


def with_main_command(config: Config, argv: Sequence[str]) -> Config:
    """``trinit -c FILE -- CMD``: CMD replaces the main process's command, or becomes a
    main process named ``main`` when the config has none.  An empty ``argv`` changes nothing.

    The replaced main runs CMD as an argv (``shell`` off); its other keys stay.
    """
    if not argv:
        return config
    main = config.main_process()
    if main is not None:
        # The new command is checked (attrs.evolve validates this one process again).
        new = attrs.evolve(main, command=tuple(argv), shell=False)
        processes = [new if p is main else p for p in config.processes]
    else:
        if any(p.name == "main" for p in config.processes):
            raise ConfigError(
                [
                    f"{place(config.source) or 'config'}: -- COMMAND: the config has no main process, and the "
                    'process named "main" is not one; set main = true on it, or rename it'
                ]
            )
        processes = [*config.processes, ProcessSpec(name="main", command=list(argv), main=True)]
    # The graph is unchanged (a command is not part of it; a new "main" has no after and
    # its name is free), so the rest is not checked again.
    return Config._trusted(processes, config.settings(), source=config.source, origins=config.origins)


__all__ = [
    "MAX_CONFIG_BYTES",
    "PROCESS_KEYS",
    "ExpansionError",
    "config_from_mapping",
    "expand",
    "load_config",
    "parse_toml",
    "read_toml",
    "with_main_command",
]
