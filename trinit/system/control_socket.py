"""The control socket's file (SPEC §8): made safely, served to trinit's uid or root only.

The runtime serves the protocol (:mod:`trinit.runtime.control`); this module owns the
file-system and credential side: a stale socket is replaced, a live one or anything that
is not a socket never; the file is 0600 in folders made 0755; it is removed at exit only if
it is still the one trinit made.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import struct

import attrs

# Not `from typing import TYPE_CHECKING`: kept as cheap as the other system modules.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class _Sock(Protocol):
        def getsockopt(self, level: int, optname: int, buflen: int, /) -> bytes: ...


#: struct ucred: pid, uid, gid.
_UCRED = struct.Struct("3i")


class SocketInUse(OSError):
    """The path holds a live socket or something that is not a socket: left alone."""


@attrs.frozen
class BoundSocket:
    """A listening socket and the file it is bound to (to remove exactly that file later)."""

    sock: socket.socket
    path: str
    inode: tuple[int, int]


def bind_control_socket(path: str, backlog: int = 128) -> BoundSocket:
    """Create, bind and listen on ``path``: missing folders 0755, the socket 0600.

    Raises :class:`SocketInUse` for a live socket or a non-socket at ``path``, OSError for
    anything else (a read-only folder, say): the caller logs it and runs on.
    """
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        _make_folders(folder)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(path)
        # Before anyone can connect: bind made it with trinit's umask.
        os.chmod(path, 0o600)
        sock.listen(backlog)
        info = os.lstat(path)
    except BaseException:
        sock.close()
        raise
    return BoundSocket(sock, path, (info.st_dev, info.st_ino))


def remove_control_socket(bound: BoundSocket) -> None:
    """Close the socket and remove its file, unless another one has taken the path since."""
    bound.sock.close()
    try:
        info = os.lstat(bound.path)
        if (info.st_dev, info.st_ino) == bound.inode:
            os.unlink(bound.path)
    except OSError:
        pass


def peer_uid(sock: _Sock) -> int:
    """The uid of the process at the other end (SO_PEERCRED: fixed when it connected)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return int(_UCRED.unpack(raw)[1])


def own_uid() -> int:
    return os.geteuid()


def _make_folders(folder: str) -> None:
    """``mkdir -p`` with 0755 whatever the umask (SPEC §8)."""
    parent = os.path.dirname(folder.rstrip("/"))
    if parent and parent != folder and not os.path.isdir(parent):
        _make_folders(parent)
    try:
        os.mkdir(folder, 0o755)
    except FileExistsError:
        return
    os.chmod(folder, 0o755)


def _clear_stale(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketInUse(errno.EEXIST, "it exists and is not a socket; trinit does not replace it", path)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.settimeout(1.0)  # a live server with a full backlog: do not hang the start
    try:
        probe.connect(path)
    except ConnectionRefusedError:  # nobody listens: a socket left by an earlier run
        os.unlink(path)
        return
    except OSError:
        return  # cannot tell (no permission, say): bind will report it
    finally:
        probe.close()
    raise SocketInUse(errno.EADDRINUSE, "another process is serving it (is another trinit running?)", path)
