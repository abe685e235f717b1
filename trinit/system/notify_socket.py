"""The socket behind a process's ``NOTIFY_SOCKET`` (sd_notify, SPEC §9), and reading it.

A datagram socket in the abstract namespace (``@`` + a name the kernel picks, so nothing
on disk: a read-only root file system works, and nothing is left behind), with
``SO_PASSCRED``: the kernel attaches the sender's pid to every datagram, whatever the
sender did, so trinit can tell its process's messages from anyone else's. File
descriptors sent along (``BARRIER=1``, ``FDSTORE=1``) are closed at once: trinit keeps none,
and closing is what a barrier waits for.
"""

from __future__ import annotations

import os
import socket
import struct

import trio

#: The most a message may hold (systemd's limit too); a longer one is cut and ignored.
MAX_MESSAGE = 4096
_CREDS = struct.Struct("iII")  # struct ucred: pid, uid, gid
_ANCILLARY = socket.CMSG_SPACE(_CREDS.size) + socket.CMSG_SPACE(64 * 4)


def open_notify_socket() -> tuple[trio.socket.SocketType, str]:
    """A bound socket and its address as ``NOTIFY_SOCKET`` gives it (``@name``)."""
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        raw.bind("")  # an empty address: the kernel binds a unique abstract name (autobind)
        name = raw.getsockname()
    except OSError:
        raw.close()
        raise
    assert isinstance(name, bytes) and name[:1] == b"\0", name
    return trio.socket.from_stdlib_socket(raw), "@" + name[1:].decode("ascii")


async def receive(sock: trio.socket.SocketType) -> tuple[bytes, int | None, bool]:
    """One datagram: (its bytes, the sender's pid or None, whether it was cut short)."""
    data, ancillary, flags, _ = await sock.recvmsg(MAX_MESSAGE, _ANCILLARY, socket.MSG_CMSG_CLOEXEC)
    pid = None
    for level, kind, payload in ancillary:
        if level != socket.SOL_SOCKET:
            continue
        if kind == socket.SCM_CREDENTIALS and len(payload) >= _CREDS.size:
            pid = _CREDS.unpack_from(payload)[0]
        elif kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            for (fd,) in struct.iter_unpack("i", payload[:usable]):
                os.close(fd)
    return data, pid, bool(flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC))
