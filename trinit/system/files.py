"""The ready file on disk: written atomically, never through a symbolic link, removed only if ours.

As root, trinit writes into a folder that a less privileged process may own (SPEC §4): the
temporary file is created with ``O_EXCL|O_NOFOLLOW`` and renamed into place (rename replaces
a symbolic link itself instead of following it), and the mode is 0644 with parent folders
0755 whatever the umask.
"""

from __future__ import annotations

import os


def write_atomically(path: str, content: bytes) -> int:
    """Write ``path``; return an open fd of the new file, which pins its inode for
    :func:`remove_if_ours` (the caller keeps it until then)."""
    folder = os.path.dirname(path) or "."
    _makedirs_0755(folder)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, flags, 0o644)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, content)
        os.rename(tmp, path)
    except OSError:
        os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return fd


def remove_if_ours(path: str, fd: int) -> None:
    """Unlink ``path`` if it is still the file behind ``fd``; close ``fd`` either way."""
    try:
        ours, now = os.fstat(fd), os.lstat(path)
    except FileNotFoundError:
        return
    finally:
        os.close(fd)
    if (now.st_dev, now.st_ino) == (ours.st_dev, ours.st_ino):
        os.unlink(path)


def _makedirs_0755(folder: str) -> None:
    """``os.makedirs`` with mode 0755 for what it creates, whatever the umask."""
    if os.path.isdir(folder):
        return
    parent = os.path.dirname(folder.rstrip("/"))
    if parent and parent != folder:
        _makedirs_0755(parent)
    try:
        os.mkdir(folder, 0o755)
    except FileExistsError:
        return
    os.chmod(folder, 0o755)
