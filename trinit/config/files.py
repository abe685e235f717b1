"""Config files on disk: reading one (bounded, UTF-8, TOML with line and column), and the
files ``[trinit] include`` names (SPEC §10).

Every error names the file it is about, as the user would find it: an included file is shown
as the config file's folder joined with what the glob matched (``conf.d/web.toml`` next to a
``trinit.toml`` given as a relative path).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from .._errors import ConfigError
from .values import show

#: The largest config read: `-c /dev/zero` (or a pipe that never ends) must not read without bound.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def read_toml(path: str, shown: str) -> dict[str, Any]:
    """Read and parse one config file (``shown`` is its name in messages); raises ConfigError.

    The file is read once, whole, from the path: a file replaced by a rename while trinit runs
    is read either old or new, and a half-written one fails to parse, never half taken.
    """
    try:
        with open(path, "rb") as f:  # a FIFO works too: read to its writer's end
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{shown}: cannot read the config: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                f"{shown}: the config is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB, "
                "the most trinit reads; give -c a TOML file"
            ]
        )
    try:
        document = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([f"{shown}: line {line}: the config is not UTF-8 text"]) from None
    return parse_toml(document, shown)


def parse_toml(document: str, source: str) -> dict[str, Any]:
    """TOML text to a dict; a syntax error becomes ``FILE: line L, column C: message``."""
    import tomllib  # not at the top: the CLI lets the parser go once its config is read (boot/main)

    try:
        return tomllib.loads(document)
    except RecursionError:
        raise ConfigError([f"{source}: invalid TOML: arrays or tables are nested too deeply"]) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if m:
            where = f"line {m[1]}, column {m[2]}"
            message = message[: m.start()]
        else:
            lines = document.count("\n") + (0 if document.endswith("\n") else 1)
            where = f"line {max(lines, 1)}, end of file" if "end of document" in message else ""
            message = re.sub(r"\s*\(at end of document\)$", "", message)
        message = message[:1].lower() + message[1:]
        raise ConfigError([": ".join(p for p in (source, where, f"invalid TOML: {message}") if p)]) from None


_GLOB_CHARS = re.compile(r"[*?\[]")


def include_patterns(value: object, where: str) -> tuple[list[str], list[str]]:
    """``[trinit] include``: an array of glob patterns (the patterns, and the errors)."""
    hint = 'must be an array of file patterns like ["conf.d/*.toml"]'
    if not isinstance(value, list):
        return [], [f"{where}: include: {hint} (got {show(value)})"]
    bad = [item for item in value if not isinstance(item, str) or not item or "\0" in item]
    if bad:
        return [], [f"{where}: include: {hint} (got {show(bad[0])})"]
    return list(value), []


def included_files(
    patterns: Sequence[str], base_dir: str, shown_dir: str, where: str
) -> tuple[list[tuple[str, str]], list[str]]:
    """The files ``patterns`` name, as (path to read, name shown), each once: the patterns in
    order, each one's matches sorted; relative patterns are taken from ``base_dir``.

    A pattern without wildcards must name a file that exists; a wildcard may match nothing
    (an empty ``conf.d`` is fine).
    """
    if not patterns:
        return [], []
    import glob  # the door: only a config with ``include`` loads glob

    files: list[tuple[str, str]] = []
    seen: set[str] = set()
    errors: list[str] = []
    for pattern in patterns:
        absolute = os.path.isabs(pattern)
        matches = sorted(glob.glob(pattern) if absolute else glob.glob(pattern, root_dir=base_dir))
        if not matches and not _GLOB_CHARS.search(pattern):
            errors.append(f"{where}: include: {pattern}: no such file (a pattern without * must name a file)")
        for match in matches:
            path = match if absolute else os.path.normpath(os.path.join(base_dir, match))
            if path in seen or os.path.isdir(path):
                continue
            seen.add(path)
            files.append((path, match if absolute else os.path.normpath(os.path.join(shown_dir, match))))
    return files, errors
