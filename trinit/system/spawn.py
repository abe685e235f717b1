"""Starting the main process from the fast start: find the program, fork, exec.

Kept in ``trinit/system/`` (the one package that forks, execs and makes pipes) but free
of attrs, trio and subprocess, so ``trinit -- CMD`` can exec CMD a few milliseconds after
trinit starts. :class:`~trinit.system.real.RealOS` reuses :func:`resolve_program`.
"""

from __future__ import annotations

import errno
import os

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms before the main process starts.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Mapping, Sequence
else:
    import _signal  # the C module: `signal` builds enums (and imports enum) before the main process starts

#: Every signal a child's disposition is reset for (all that can be caught).
_RESETTABLE = frozenset(_signal.valid_signals()) - {_signal.SIGKILL, _signal.SIGSTOP}


def resolve_program(program: str, env: Mapping[str, str], cwd: str | None) -> str:
    """The file to exec for ``program``: taken from ``cwd`` if it has a slash, else looked up on PATH.

    Raises OSError(ENOENT) when nothing is found and OSError(EACCES) when only
    non-executable files are, so the caller can report 127 or 126 as a shell would.
    """
    if "/" in program:
        path = program if os.path.isabs(program) or cwd is None else os.path.join(cwd, program)
        return path
    denied = False
    for folder in env.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", program)
        if not os.path.isabs(candidate) and cwd is not None:
            candidate = os.path.join(cwd, candidate)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            denied = True
    code = errno.EACCES if denied else errno.ENOENT
    raise OSError(code, os.strerror(code), program)


def fork_exec(path: str, argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Start the main process from the CLI's fast start, while trinit is still single-threaded.

    Not posix_spawn: glibc's leaves its internal signals 32 and 33 ignored in the child.
    Not subprocess: importing it costs milliseconds before the main process may start. The
    child gets its own process group and, when stdin is a terminal, the terminal's
    foreground before it can read (no SIGTTIN race); then every disposition is reset and
    the mask emptied right before exec. An exec error comes back through a CLOEXEC pipe.
    """
    errors_r, errors_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits
        try:
            os.close(errors_r)
            os.setpgid(0, 0)
            if os.isatty(0):
                _signal.signal(_signal.SIGTTOU, _signal.SIG_IGN)
                try:
                    os.tcsetpgrp(0, os.getpid())
                except OSError:
                    pass
            for signum in _RESETTABLE:
                try:
                    _signal.signal(signum, _signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
            _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
            os.execve(path, list(argv), env)
        except OSError as exc:
            os.write(errors_w, str(exc.errno or errno.ENOEXEC).encode())
        finally:
            os._exit(127)
    os.close(errors_w)
    try:
        report = os.read(errors_r, 16)  # empty once the exec has closed the pipe
    finally:
        os.close(errors_r)
    if report:
        os.waitpid(pid, 0)  # nobody else waits yet: the reaper starts later
        code = int(report)
        raise OSError(code, os.strerror(code), argv[0])
    return pid
