"""A process's environment and identity, worked out at each start (pure, no trio).

The runtime calls these each time it starts a process, so an ``env_file`` edited
between restarts takes effect, and a user added to a group is seen on the next start.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from .._errors import ConfigError
from ..config.model import is_id

if TYPE_CHECKING:
    from ..config.model import Config, ProcessSpec


@attrs.frozen
class Credentials:
    """Whom a process runs as: ids for ``setgid``/``setgroups``/``setuid``, and the passwd
    facts for HOME, USER and LOGNAME (``name``/``home`` are None when unknown or when only
    ``group`` was given, and then those variables are left alone)."""

    uid: int
    gid: int
    #: Supplementary groups: the user's (``getgrouplist``), never trinit's (root's) own.
    groups: tuple[int, ...]
    name: str | None = None
    home: str | None = None


def credentials_of(config: Config) -> dict[str, Credentials | None]:
    """Each process's ids, and every ``env_file`` read once: a problem is a ConfigError, before
    anything (of a reload, anything new) starts."""
    creds = {p.name: resolve_credentials(p) for p in config.processes}
    check_env_files_of(config, creds)
    return creds


def check_env_files_of(config: Config, creds: Mapping[str, Credentials | None]) -> None:
    """``check_env_files`` with each error naming the file its process is defined in."""
    errors: list[str] = []
    by_file: dict[str | None, list[ProcessSpec]] = {}
    for spec in config.processes:
        by_file.setdefault(config.source_of(spec.name), []).append(spec)
    for source, specs in by_file.items():
        try:
            check_env_files(specs, creds, source)
        except ConfigError as exc:
            errors += exc.errors
    if errors:
        raise ConfigError(errors)


def resolve_credentials(spec: ProcessSpec) -> Credentials | None:
    """The ids ``spec.user``/``spec.group`` stand for, read now.

    None when neither is set, and None when trinit is not root: validation already
    refused ids other than trinit's own then, so there is nothing to switch, and
    ``setgroups`` would fail without privileges.  Raises ConfigError when a name no
    longer exists (the passwd database changed since the config was checked).
    """
    if (spec.user is None and spec.group is None) or os.geteuid() != 0:
        return None
    import grp  # the door: a run without user or group never reads the user databases
    import pwd

    where = f'process "{spec.name}"'
    name = home = None
    if spec.user is not None:
        try:
            entry = pwd.getpwuid(int(spec.user)) if is_id(spec.user) else pwd.getpwnam(spec.user)
        except KeyError:
            if not is_id(spec.user):
                raise ConfigError([f'{where}: user: no user named "{spec.user}"']) from None
            uid, gid = int(spec.user), None
        else:
            uid, gid, name, home = entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir
    else:
        uid, gid = os.geteuid(), None
    if spec.group is not None:
        try:
            gid = (
                grp.getgrgid(int(spec.group)).gr_gid if is_id(spec.group) else grp.getgrnam(spec.group).gr_gid
            )
        except KeyError:
            if not is_id(spec.group):
                raise ConfigError([f'{where}: group: no group named "{spec.group}"']) from None
            gid = int(spec.group)
    if gid is None:
        raise ConfigError(
            [f"{where}: user: uid {spec.user} has no passwd entry, so its group is unknown: set group too"]
        )
    groups: tuple[int, ...] = (gid,)
    if name is not None:
        # The user's own groups, with the chosen primary group first; none of trinit's.
        groups = tuple(dict.fromkeys([gid, *os.getgrouplist(name, gid)]))
    return Credentials(uid=uid, gid=gid, groups=groups, name=name, home=home)


def build_env(spec: ProcessSpec, base: Mapping[str, str], creds: Credentials | None) -> dict[str, str]:
    """The environment of one start: trinit's (``inherit_env``), then HOME/USER/LOGNAME of
    ``user``, then ``env_file`` (read now), then ``env``; each later one wins.

    Putting the user's variables before the files lets a config override HOME.
    Raises ConfigError when the env file cannot be read or has a bad line.
    """
    env = dict(base) if spec.inherit_env else {}
    if creds is not None and creds.name is not None:
        env["USER"] = env["LOGNAME"] = creds.name
        if creds.home is not None:
            env["HOME"] = creds.home
    if spec.env_file is not None:
        try:
            env.update(read_env_file(spec.env_file, creds))
        except ConfigError as exc:
            raise ConfigError([f'process "{spec.name}": env_file: {e}' for e in exc.errors]) from None
    env.update(spec.env)
    return env


_LINE = re.compile(
    r"""\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)\s*=\s*"""
    r"""(?:"(?P<dq>(?:[^"\\]|\\.)*)"\s*(?:\#.*)?|'(?P<sq>[^']*)'\s*(?:\#.*)?|(?P<raw>.*))"""
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def check_env_files(
    specs: Iterable[ProcessSpec], creds: Mapping[str, Credentials | None], source: str | None
) -> None:
    """Read every ``env_file`` once before anything starts (SPEC §4): a missing, unreadable
    or bad file is a config error then, not a failed start after others are running."""
    errors: list[str] = []
    for spec in specs:
        if spec.env_file is None:
            continue
        try:
            read_env_file(spec.env_file, creds.get(spec.name))
        except ConfigError as exc:
            head = f'{source}: process "{spec.name}"' if source else f'process "{spec.name}"'
            errors += [f"{head}: env_file: {e}" for e in exc.errors]
    if errors:
        raise ConfigError(errors)


def read_env_file(path: str, creds: Credentials | None = None) -> dict[str, str]:
    """Parse a dotenv file: ``KEY=value`` lines, ``#`` comments, blank lines, ``export KEY=value``.

    Values may be quoted: single quotes take the text as it is, double quotes know
    ``\\n``, ``\\t``, ``\\"`` and ``\\\\``; an unquoted value ends at a ``#`` that starts it
    or follows a space, and loses its surrounding spaces.  Nothing is expanded: the file
    says what the variable holds.  Raises ConfigError naming the file and the line, never
    the line's content (env files hold secrets).

    With ``creds`` (a process that runs as another user) the file must be readable by that
    user: trinit, usually root, reads it on the process's behalf and must not hand it a
    file it could not read itself.
    """
    try:
        with open(path, encoding="utf-8") as f:
            if creds is not None and not _may_read(os.fstat(f.fileno()), creds):
                raise ConfigError(
                    [
                        f"{path}: user {creds.name or creds.uid} may not read this env file "
                        "(trinit reads it with the permissions of the process's user; "
                        "make it readable by that user or its group)"
                    ]
                )
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"{path}: cannot read the env file: {reason}"]) from None
    values: dict[str, str] = {}
    errors: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.fullmatch(line)
        if m is None:
            errors.append(
                f"{path}: line {number}: expected KEY=value (the line is not shown: it may hold a secret)"
            )
            continue
        if m["dq"] is not None:
            value = re.sub(r"\\(.)", lambda e: _ESCAPES.get(e[1], "\\" + e[1]), m["dq"])
        elif m["sq"] is not None:
            value = m["sq"]
        else:
            value = re.split(r"(?:^|\s)#", m["raw"], maxsplit=1)[0].strip()
            if value[:1] in ("'", '"'):
                errors.append(
                    f"{path}: line {number}: the quote {value[0]} is not closed, or text follows it"
                )
                continue
        if "\0" in value:
            errors.append(f"{path}: line {number}: the value must not contain a NUL character")
            continue
        values[m["key"]] = value
    if errors:
        raise ConfigError(errors)
    return values


def _may_read(st: os.stat_result, creds: Credentials) -> bool:
    """The classic permission check of ``open(O_RDONLY)`` for ``creds`` (root may read all)."""
    if creds.uid == 0:
        return True
    if st.st_uid == creds.uid:
        return bool(st.st_mode & 0o400)
    if st.st_gid == creds.gid or st.st_gid in creds.groups:
        return bool(st.st_mode & 0o040)
    return bool(st.st_mode & 0o004)
