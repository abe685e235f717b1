"""Plain processes started two at a time: glibc's posix_spawn through ctypes, on two threads.

Most of a spawn's time is the kernel's (the vfork child's way to its exec), and on 3.11
neither ``os.posix_spawn`` nor subprocess's helper lets go of the GIL for it: one thread can
only wait. A ctypes call does, so two threads keep both CPUs busy with execs. The start loop
hands over up to 64 plain processes at a time and waits for them (no trio checkpoint in
between, so the reaper cannot see a pid before the runtime watches it); bench/README.md has
the figures.

Only what a plain process needs is offered: the program, its arguments, trinit's own
environment, stdio dup'ed from given fds. The child gets its own process group, an empty
mask, every disposition reset (glibc's internal signals 32 and 33 included, which
``sigaddset`` refuses and posix_spawn would leave ignored) and no fd above 2. A child that
fails to exec is reaped by glibc, which reports its errno. Without glibc 2.34's
``posix_spawn_file_actions_addclosefrom_np`` (musl, say), :func:`batch_spawner` gives None
and :mod:`.real` spawns them one by one.
"""

from __future__ import annotations

import ctypes
import os
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

#: (stdin, stdout, stderr) of a child: an fd to dup onto 0, 1, 2, or None to inherit trinit's.
Stdio = tuple[int | None, int | None, int | None]

_SETPGROUP, _SETSIGDEF, _SETSIGMASK = 0x02, 0x04, 0x08
#: Bytes kept for a posix_spawnattr_t (336 on x86-64) or file actions (80): room to spare.
_OPAQUE = 1024
_NEEDED = (
    "posix_spawn",
    "posix_spawnattr_init",
    "posix_spawnattr_setflags",
    "posix_spawnattr_setpgroup",
    "posix_spawnattr_setsigdefault",
    "posix_spawnattr_setsigmask",
    "posix_spawn_file_actions_init",
    "posix_spawn_file_actions_adddup2",
    "posix_spawn_file_actions_addclosefrom_np",
)


def batch_spawner() -> BatchSpawner | None:
    """The batch spawner of this libc, or None where it cannot be made."""
    try:
        libc = ctypes.CDLL(None)
        environ = ctypes.c_void_p.in_dll(libc, "environ")
    except (OSError, ValueError):  # pragma: no cover - not a glibc-like libc
        return None
    if not all(hasattr(libc, name) for name in _NEEDED):  # pragma: no cover - musl, glibc < 2.34
        return None
    return BatchSpawner(libc, environ)


class BatchSpawner:
    """glibc's posix_spawn with one set of attributes for every child (see the module's docstring)."""

    def __init__(self, libc: ctypes.CDLL, environ: ctypes.c_void_p) -> None:
        self._libc = libc
        self._environ = environ  # the C variable itself: read at each spawn, as exec would
        self._attr = ctypes.create_string_buffer(_OPAQUE)
        every = (ctypes.c_ubyte * 128)(*([0xFF] * 8))  # a sigset_t with signals 1 to 64
        empty = (ctypes.c_ubyte * 128)()
        for call, *args in (
            (libc.posix_spawnattr_init,),
            (libc.posix_spawnattr_setflags, ctypes.c_short(_SETPGROUP | _SETSIGDEF | _SETSIGMASK)),
            (libc.posix_spawnattr_setpgroup, 0),
            (libc.posix_spawnattr_setsigdefault, every),
            (libc.posix_spawnattr_setsigmask, empty),
        ):
            _check(call(self._attr, *args))
        #: File actions per stdio: plain processes use a handful (inherited, /dev/null).
        self._actions: dict[Stdio, ctypes.Array[ctypes.c_char]] = {}

    def spawn_all(self, jobs: Sequence[tuple[bytes, Sequence[bytes], Stdio]]) -> list[int | OSError]:
        """Start each (program path, argv, stdio); its pid or why it did not start, in order.
        Every other one is started on a second thread while this one starts the rest."""
        for stdio in {stdio for _, _, stdio in jobs}:  # made here: the threads only read them
            self._file_actions(stdio)
        results: list[int | OSError | None] = [None] * len(jobs)

        def start(first: int) -> None:
            for i in range(first, len(jobs), 2):
                results[i] = self._spawn(*jobs[i])

        if len(jobs) > 1:
            helper = threading.Thread(target=start, args=(1,), name="trinit spawn", daemon=True)
            helper.start()
            start(0)
            helper.join()
        else:
            start(0)
        # A job the helper did not get to (it died: MemoryError, say) is started here.
        return [self._spawn(*jobs[i]) if r is None else r for i, r in enumerate(results)]

    def _spawn(self, path: bytes, argv: Sequence[bytes], stdio: Stdio) -> int | OSError:
        args = (ctypes.c_char_p * (len(argv) + 1))(*argv, None)
        pid = ctypes.c_int()
        actions = self._actions[stdio]
        code = self._libc.posix_spawn(ctypes.byref(pid), path, actions, self._attr, args, self._environ)
        if code:
            return OSError(code, os.strerror(code), os.fsdecode(path))
        return pid.value

    def _file_actions(self, stdio: Stdio) -> ctypes.Array[ctypes.c_char]:
        actions = self._actions.get(stdio)
        if actions is None:
            libc, actions = self._libc, ctypes.create_string_buffer(_OPAQUE)
            _check(libc.posix_spawn_file_actions_init(actions))
            for target, fd in enumerate(stdio):
                if fd is not None:
                    _check(libc.posix_spawn_file_actions_adddup2(actions, fd, target))
            _check(libc.posix_spawn_file_actions_addclosefrom_np(actions, 3))
            self._actions[stdio] = actions
        return actions


def _check(code: int) -> None:
    if code:  # pragma: no cover - ENOMEM or EBADF from a setup call
        raise OSError(code, os.strerror(code))
