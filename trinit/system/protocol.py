"""What the runtime needs from the operating system: the :class:`OSLayer` Protocol.

The runtime takes an ``OSLayer`` as a parameter and calls nothing else that touches
processes, signals, pipes or the ready file; :class:`trinit.system.real.RealOS` is the
real one and :class:`trinit.testing.FakeOS` the fake on trio's clock. Both are checked
against this Protocol by mypy, so a fake cannot drift from the real thing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..config.hardening import Hardening
    from .environ import Credentials


class OSLayer(Protocol):
    """The syscalls of the runtime, one method each."""

    @property
    def pid(self) -> int: ...

    @property
    def is_pid1(self) -> bool: ...

    # -- process-wide settings (the bootstrap calls these once) --------------------------------
    def set_subreaper(self) -> None: ...

    def set_pdeathsig(self, sig: int) -> None: ...

    def raise_nofile(self) -> None: ...

    # -- files and pipes ---------------------------------------------------------------------
    def devnull(self) -> int: ...

    def pipe(self) -> tuple[int, int]:
        """A pipe (read end, write end), both close-on-exec."""
        ...

    def close(self, fd: int) -> None: ...

    def write_ready_file(self, path: str, content: bytes) -> None:
        """Create ``path`` atomically (a temporary file renamed into place), never through a
        symbolic link, mode 0644, missing parent folders 0755 whatever the umask."""
        ...

    def remove_ready_file(self, path: str) -> None:
        """Remove the ready file trinit created (a missing file is fine)."""
        ...

    # -- processes ---------------------------------------------------------------------------
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
        """Start a child; ``hardening`` is applied in it before its program runs (SPEC §12).
        ``move_fd``: (trinit's fd, the number the child gets it as); ``pid_env``: a variable
        the child finds set to its own pid (``WATCHDOG_PID``)."""
        ...

    def spawn_plain(
        self,
        jobs: Sequence[tuple[Sequence[str], tuple[int | None, int | None, int | None]]],
        *,
        env: Mapping[str, str],
    ) -> list[int | OSError]:
        """Start each (argv, (stdin, stdout, stderr)) as :meth:`spawn` with ``inherit_environ``
        would (``env`` is trinit's own); its pid or the OSError, in order. The fds stay open."""
        ...

    def release(self, pid: int, status: int) -> None: ...

    def kill(self, pid: int, sig: int) -> None: ...

    def killpg(self, pgid: int, sig: int) -> None: ...

    def kill_all(self, sig: int, spare_groups: frozenset[int] = frozenset()) -> int:
        """Signal every process left (see RealOS), except members of the ``spare_groups``."""
        ...

    def group_alive(self, pgid: int) -> bool:
        """True while any process (a zombie included) is in process group ``pgid``."""
        ...

    def descendants(self) -> list[int]: ...

    def belongs_to(self, pid: int, root: int) -> bool:
        """``pid`` is ``root``, its descendant, or in its process group (a notification's sender)."""
        ...

    def describe(self, pid: int) -> str: ...

    def wait_any(self) -> tuple[int, int] | None: ...

    def pidfd_open(self, pid: int) -> int: ...

    def wait_pidfd(self, pidfd: int) -> int | None: ...

    def pidfd_send_signal(self, pidfd: int, sig: int) -> None: ...

    def last_resort_stop(self, pid: int | None, budget: float = 5.0) -> None: ...

    # -- the terminal ------------------------------------------------------------------------
    def give_terminal(self, pgid: int) -> bool: ...

    def take_terminal(self) -> None: ...
