"""Starting children: the spawning part of :class:`~trinit.system.real.RealOS`.

One process at a time through subprocess's C helper (:mod:`.launch`), or plain ones two at a
time through glibc's posix_spawn (:mod:`.pspawn`, loaded at the first batch). Like the rest of
the OS layer, this module imports neither attrs nor trio: the fast start loads it.
"""

from __future__ import annotations

import errno
import os

from ..boot.signals import INSPECTED
from .exec_shim import shim_argv
from .spawn import resolve_program

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Callable, Mapping, Sequence
    from typing import Literal

    from ..config.hardening import Hardening
    from .environ import Credentials
    from .pspawn import BatchSpawner, Stdio

    _Key = tuple[str, str | None, str | None]
else:
    import _signal  # the C module: see real.py

#: Fewer plain processes than this at once start one at a time until a bigger run comes: the batch
#: spawner (its module, buffers and thread: ~0.1 MB for good) saves ~0.25 ms a process, which
#: only counts by the hundred.
BATCH_FROM = 8


class Spawning:
    """How :class:`~trinit.system.real.RealOS` starts a child (its other half)."""

    def __init__(self) -> None:
        self._programs: dict[_Key, str] = {}
        self._child_nofile: tuple[int, int] | None = None
        self._batch: BatchSpawner | Literal[False] | None = None  # None: not made yet; False: cannot be

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None = None,
        creds: Credentials | None = None,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        inherit_environ: bool = False,
        hardening: Hardening | None = None,
        move_fd: tuple[int, int] | None = None,
        pid_env: str | None = None,
    ) -> int:
        """Start a child in its own process group, ``hardening`` applied (system/harden); its pid.
        Raises OSError if it cannot start (HardeningError: a helper program is missing).

        ``move_fd`` (trinit's fd, the child's number) and ``pid_env`` (a variable set to the
        child's pid) go through :mod:`.exec_shim`, the only way to do them in the child.

        subprocess's C helper does the vfork+exec (:mod:`.launch`: never a Python preexec_fn, so
        threads are safe). The child inherits the calling thread's mask, which the runtime keeps
        empty, and trinit's handlers reset to the default across exec. No Popen object is made,
        and nothing but the reaper waits for a started child."""
        key, path, cached = self._program(argv[0], env.get("PATH"), cwd)
        shim = (move_fd, pid_env) if move_fd is not None or pid_env is not None else None
        env_or_ours, stdio = None if inherit_environ else env, (stdin, stdout, stderr)
        _nofile(self._child_nofile, children=True)
        try:
            return self._start(path, argv, env_or_ours, cwd, creds, stdio, hardening, shim)
        except OSError as exc:
            if not (cached and _moved(exc, path)):
                raise
            path = self._programs[key] = resolve_program(argv[0], env, cwd)
            return self._start(path, argv, env_or_ours, cwd, creds, stdio, hardening, shim)
        finally:
            _nofile(self._child_nofile, children=False)

    def spawn_plain(
        self, jobs: Sequence[tuple[Sequence[str], Stdio]], *, env: Mapping[str, str]
    ) -> list[int | OSError]:
        """Start each (argv, stdio) as :meth:`spawn` with trinit's own environment ``env`` would,
        two at a time (:mod:`.pspawn`); its pid or why not, in order. The stdio fds must stay
        open (inherited, /dev/null): the file actions that dup them are kept."""
        batch = self._batch
        if batch is None and len(jobs) < BATCH_FROM:
            batch = False  # a few: not worth loading the batch spawner for (yet)
        elif batch is None:
            from .pspawn import batch_spawner  # not at the top: ctypes, which the fast start never needs

            batch = self._batch = batch_spawner() or False

        def alone(argv: Sequence[str], stdio: Stdio) -> int | OSError:
            return _outcome(self.spawn, argv, stdio, env=env, inherit_environ=True)

        if not batch:  # a few, or not glibc >= 2.34
            return [alone(argv, stdio) for argv, stdio in jobs]
        results: list[int | OSError] = []
        todo: list[tuple[int, str, bool]] = []  # (index, path, from the cache)
        for i, (argv, _) in enumerate(jobs):
            try:
                _, path, cached = self._program(argv[0], env.get("PATH"), None)
            except OSError as exc:
                results.append(exc)
                continue
            results.append(0)
            todo.append((i, path, cached))
        _nofile(self._child_nofile, children=True)
        try:
            started = batch.spawn_all(
                [(os.fsencode(path), [os.fsencode(a) for a in jobs[i][0]], jobs[i][1]) for i, path, _ in todo]
            )
        finally:
            _nofile(self._child_nofile, children=False)
        for (i, path, cached), result in zip(todo, started, strict=True):
            moved = isinstance(result, OSError) and cached and _moved(result, path)
            results[i] = alone(*jobs[i]) if moved else result  # looked up again, and started alone
        return results

    def _program(self, name: str, search: str | None, cwd: str | None) -> tuple[_Key, str, bool]:
        """The path to exec for ``name``, and whether it came from the cache: looked up once per
        command, PATH and cwd, and again only when it is no longer there (:func:`_moved`)."""
        key = (name, search, cwd)
        path = self._programs.get(key)
        if path is not None:
            return key, path, True
        path = self._programs[key] = resolve_program(name, {} if search is None else {"PATH": search}, cwd)
        return key, path, False

    def _start(
        self,
        path: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        cwd: str | None,
        creds: Credentials | None,
        stdio: tuple[int | None, int | None, int | None],
        hardening: Hardening | None,
        shim: tuple[tuple[int, int] | None, str | None] | None,
    ) -> int:
        from . import launch  # not at the top: it loads a C module the fast start never needs

        umask = -1
        if hardening is not None:
            from .harden import wrap  # not at the top: the fast start never needs it

            path, argv, creds, umask = wrap(path, argv, creds, hardening)
        keep: tuple[int, ...] = ()
        if shim is not None:  # first, as trinit's user: then the hardening chain, then the program
            move_fd, pid_env = shim
            argv = shim_argv(path, list(argv), move_fd, pid_env)
            path, keep = argv[0], (move_fd[0],) if move_fd is not None else ()
        ids = (creds.uid, creds.gid, list(creds.groups)) if creds is not None else None
        entries = None if env is None else launch.environment(dict(env))
        # The child inherits this thread's mask: lift the block of the inspected signals
        # (read from a signalfd, see runtime/bootstrap) for the spawn, so it starts empty.
        held = _signal.pthread_sigmask(_signal.SIG_UNBLOCK, INSPECTED)
        try:
            if launch.USABLE:
                return launch.launch(path, argv, entries, cwd, stdio, keep=keep, ids=ids, umask=umask)
            return _popen(path, argv, env, cwd, stdio, keep, ids, umask)  # pragma: no cover - 3.14+
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, held)

    def release(self, pid: int, status: int) -> None:
        """The reaper has the status of ``pid`` (nothing to tell: subprocess never waits for it)."""



def _popen(
    path: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    cwd: str | None,
    stdio: tuple[int | None, int | None, int | None],
    keep: tuple[int, ...],
    ids: tuple[int, int, list[int]] | None,
    umask: int,
) -> int:  # pragma: no cover - only where launch.USABLE is False (CPython 3.14, say)
    """The same start through ``subprocess.Popen``; its status stays the reaper's: with a
    returncode, subprocess never waits for it, and the object is dropped."""
    import subprocess

    uid, gid, groups = ids if ids is not None else (None, None, None)
    proc = subprocess.Popen(
        list(argv),
        executable=path,
        env=None if env is None else dict(env),
        cwd=cwd,
        stdin=stdio[0],
        stdout=stdio[1],
        stderr=stdio[2],
        close_fds=True,
        pass_fds=keep,
        restore_signals=True,
        process_group=0,
        user=uid,
        group=gid,
        extra_groups=groups,
        umask=umask,
    )
    proc.returncode = 0
    return proc.pid


def _nofile(limits: tuple[int, int] | None, *, children: bool) -> None:
    """Children keep the open-files limit trinit started with (``limits``, see
    ``RealOS.raise_nofile``): set it for a spawn (``children``), then trinit's own again."""
    if limits is not None:
        import resource  # only when trinit raised its own limit

        resource.setrlimit(resource.RLIMIT_NOFILE, limits if children else (limits[1], limits[1]))


def _moved(exc: OSError, path: str) -> bool:
    """True if exec'ing a cached ``path`` failed because it moved or went: look it up again."""
    return exc.errno in (errno.ENOENT, errno.EACCES) and exc.filename == path


def _outcome(spawn: Callable[..., int], argv: Sequence[str], stdio: Stdio, **how: object) -> int | OSError:
    """``spawn(argv, stdin=, stdout=, stderr=, **how)``'s pid, or the OSError it raised."""
    try:
        return spawn(argv, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], **how)
    except OSError as exc:
        return exc
