"""Signals read with their sender: a signalfd (SPEC §3, the faults and SIGPIPE/SIGXFSZ).

A Python signal handler never sees ``si_code`` or ``si_pid``, so it cannot tell a ``kill``
from another process from a signal the kernel raised for trinit's own code. The caller
keeps these signals blocked in every thread and reads them here instead.
"""

from __future__ import annotations

import ctypes
import os
import struct

SFD_NONBLOCK = os.O_NONBLOCK
SFD_CLOEXEC = os.O_CLOEXEC
#: struct signalfd_siginfo: 128 bytes; ssi_signo, ssi_errno, ssi_code, ssi_pid lead it.
_SIGINFO_SIZE = 128


def open_signalfd(signals: frozenset[int]) -> int:
    """A non-blocking signalfd for ``signals`` (which the caller keeps blocked in every thread)."""
    words = (ctypes.c_ulong * (1024 // (8 * ctypes.sizeof(ctypes.c_ulong))))()
    bits = 8 * ctypes.sizeof(ctypes.c_ulong)
    for signum in signals:
        words[(signum - 1) // bits] |= 1 << ((signum - 1) % bits)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.signalfd(-1, ctypes.byref(words), SFD_NONBLOCK | SFD_CLOEXEC))
    if fd < 0:  # pragma: no cover - needs a kernel without signalfd
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return fd


def read_signalfd(fd: int) -> list[tuple[int, int, int]]:
    """Every signal pending on ``fd`` as (number, si_code, sender pid); [] if none."""
    found: list[tuple[int, int, int]] = []
    while True:
        try:
            data = os.read(fd, 16 * _SIGINFO_SIZE)
        except BlockingIOError:
            return found
        for offset in range(0, len(data) - _SIGINFO_SIZE + 1, _SIGINFO_SIZE):
            signo, _errno, code, pid = struct.unpack_from("=IiiI", data, offset)
            found.append((signo, code, pid))
        if not data:
            return found
