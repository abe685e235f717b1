"""inotify through ctypes: every create and delete in a directory, none missed however brief.

Polling for a file can miss a file that exists for a few microseconds; the kernel's event queue
cannot, and it keeps the events after the writer (here, a whole container) is gone.
"""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

IN_NONBLOCK = os.O_NONBLOCK
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name


class DirectoryEvents:
    """Which names appeared and disappeared in one directory, in order."""

    def __init__(self, directory: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        mask = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM
        if libc.inotify_add_watch(self.fd, os.fsencode(directory), mask) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch({directory}) failed")

    def read(self) -> list[tuple[str, str]]:
        """Events queued since the last call: ("created" or "deleted", name); a rename counts as both."""
        events: list[tuple[str, str]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            offset = 0
            while offset < len(data):
                _, mask, _, size = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                name = data[offset : offset + size].rstrip(b"\0").decode()
                offset += size
                events.append(("created" if mask & (IN_CREATE | IN_MOVED_TO) else "deleted", name))

    def close(self) -> None:
        os.close(self.fd)
