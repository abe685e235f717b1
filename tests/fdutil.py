"""Pipe helpers shared by the FdWriter and pump tests (not a test module)."""

from __future__ import annotations

import fcntl
import os
import re

#: An RFC 3339 UTC timestamp with milliseconds, as trinit writes them.
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def small_pipe() -> tuple[int, int]:
    """A pipe with the smallest kernel buffer, so it fills after a few KiB."""
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    return r, w


def read_exactly(fd: int, n: int) -> bytes:
    """Blocking read of n bytes (run in a thread)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        b = os.read(fd, min(65536, n - got))
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def read_to_eof(fd: int) -> bytes:
    parts: list[bytes] = []
    while b := os.read(fd, 65536):
        parts.append(b)
    return b"".join(parts)
