"""How a process ended, as one small value shared by the reaper, the runtime and the CLI."""

from __future__ import annotations

import errno
import os
import signal as _signal

import attrs


@attrs.frozen
class ExitStatus:
    """A process's end: an exit code or the signal that killed it.

    ``spawn_errno`` is set when the process could not be started at all; such a status
    maps to 127 (the program was not found) or 126 (not executable) like a shell's, and
    to 1 for any other reason (SPEC §2).
    """

    code: int | None = None
    signal: int | None = None
    spawn_errno: int | None = None

    @classmethod
    def from_wait_status(cls, status: int) -> ExitStatus:
        if os.WIFSIGNALED(status):
            return cls(signal=os.WTERMSIG(status))
        return cls(code=os.WEXITSTATUS(status))

    @property
    def exit_code(self) -> int:
        """The code a shell would report: the code, 128+N for signal N, 127/126/1 for spawn errors."""
        if self.spawn_errno is not None:
            if self.spawn_errno == errno.ENOENT:
                return 127
            return 126 if self.spawn_errno in (errno.EACCES, errno.ENOEXEC) else 1
        if self.signal is not None:
            return 128 + self.signal
        return self.code if self.code is not None else 0

    def describe(self) -> str:
        if self.spawn_errno is not None:
            return f"could not start ({os.strerror(self.spawn_errno)})"
        if self.signal is not None:
            try:
                name = _signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"was killed by {name}"
        return f"exited with code {self.code}"
