"""Start one child through subprocess's C helper, without a ``subprocess.Popen`` per child.

Popen does the right thing (vfork+exec in C, no Python in the child, an exec error sent back
through a close-on-exec pipe) wrapped in ~40 µs of Python per child that trinit does not need:
the object, its bookkeeping, handle juggling for pipes trinit never asks it for. At 10,000
processes that is most of what trinit adds to the floor of starting them. This module calls the
same helper, ``_posixsubprocess.fork_exec``, with the arguments Popen would pass, reads the error
pipe as Popen does, and reaps a child that failed to exec as Popen does (the reaper never learns
its pid). The helper's argument list is private to CPython; it is the same from 3.11 to 3.13,
and :data:`USABLE` is False elsewhere (another version, another Python), where
:mod:`.real` uses Popen itself.
"""

from __future__ import annotations

import builtins
import os
import sys
from _posixsubprocess import fork_exec as _typed_fork_exec

# Not `from typing import TYPE_CHECKING`: this module loads on the way to the first spawn.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

#: Untyped here: typeshed's signature of the private helper is narrower than what CPython takes.
_fork_exec: Callable[..., int] = _typed_fork_exec

#: The helper's arguments are the ones this module passes (CPython 3.11 to 3.13; 3.14 dropped one).
USABLE = (
    sys.implementation.name == "cpython"
    and (3, 11) <= sys.version_info[:2] <= (3, 13)
)

#: Before 3.13 the helper says only "noexec" for any error before the exec, which Popen takes
#: to be the folder's (it says "noexec:chdir" from 3.13 on).
_NOEXEC_IS_CHDIR = sys.version_info < (3, 13)

#: Popen's own bound on what it reads of a child's error report.
_REPORT_MAX = 50_000


def launch(
    path: str,
    argv: Sequence[str],
    env: Sequence[bytes] | None,
    cwd: str | None,
    stdio: tuple[int | None, int | None, int | None],
    *,
    keep: tuple[int, ...] = (),
    ids: tuple[int, int, list[int]] | None = None,
    umask: int = -1,
) -> int:
    """vfork+exec ``path`` in its own process group, as ``Popen(..., close_fds=True,
    restore_signals=True, process_group=0)`` would; its pid. ``env``: ``KEY=value`` entries, or
    None for trinit's own; ``keep``: fds the child keeps; ``ids``: (uid, gid, groups) to switch
    to; ``umask``: -1 leaves it. Raises OSError as Popen does (``filename`` is ``path``, or
    ``cwd`` when the folder is what failed)."""
    stdin, stdout, stderr = stdio
    uid, gid, groups = ids if ids is not None else (None, None, None)
    report_r, report_w = os.pipe()
    try:
        pid = _fork_exec(
            argv, (os.fsencode(path),), True, tuple(sorted({*keep, report_w})) if keep else (report_w,),
            cwd, env, -1 if stdin is None else stdin, -1, -1, -1 if stdout is None else stdout,
            -1, -1 if stderr is None else stderr, report_r, report_w,
            True, False, 0, gid, groups, uid, umask, None, True,
        )  # fmt: skip
    finally:
        os.close(report_w)
    try:
        report = _read_report(report_r)
    finally:
        os.close(report_r)
    if not report:
        return pid
    try:  # it wrote its error and exited: reap it here, like Popen (nobody else knows the pid)
        os.waitpid(pid, 0)
    except ChildProcessError:  # pragma: no cover - a SIGCHLD handler got there first
        pass
    raise _child_error(report, path, cwd)


def environment(env: dict[str, str]) -> list[bytes]:
    """``env`` as the helper takes it (Popen's check of the names included)."""
    entries = []
    for key, value in env.items():
        name = os.fsencode(key)
        if b"=" in name:
            raise ValueError("illegal environment variable name")
        entries.append(name + b"=" + os.fsencode(value))
    return entries


def _read_report(fd: int) -> bytes:
    """Empty once the exec has closed the pipe; else what the child wrote before it exited."""
    data = b""
    while True:
        part = os.read(fd, _REPORT_MAX)
        data += part
        if not part or len(data) > _REPORT_MAX:
            return data


def _child_error(report: bytes, path: str, cwd: str | None) -> Exception:
    """The exception Popen would raise for the child's report ``OSError:<hex errno>:<where>``."""
    try:
        name, hex_errno, where = report.split(b":", 2)
        kind = getattr(builtins, name.decode("ascii"), None)
        code = int(hex_errno, 16)
    except ValueError:
        return OSError(f"the child sent a report that cannot be read: {report[:80]!r}")
    if not (isinstance(kind, type) and issubclass(kind, OSError)) or not code:
        return OSError(where.decode(errors="surrogatepass") or f"{name.decode('ascii')} in the child")
    text = os.strerror(code)
    if where == b"noexec:chdir" or (where == b"noexec" and _NOEXEC_IS_CHDIR):
        return kind(code, text, cwd)
    if where == b"noexec":
        return kind(code, text)
    return kind(code, text, path)
