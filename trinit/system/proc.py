"""Who is whose: the process tree as /proc shows it.

``descendants`` finds what trinit's processes left behind (the sweep of SPEC §5);
``belongs_to`` tells whether a notification's sender is one of a process's own (SPEC §9).
Imports nothing heavy: :class:`~trinit.system.real.RealOS` is built by the fast start.
"""

from __future__ import annotations

import errno
import os

#: How far up the tree ``belongs_to`` looks before it gives up (a pid namespace is not that deep).
_MAX_DEPTH = 4096


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from /proc, None if it is gone (or /proc is not there)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def belongs_to(pid: int, root: int) -> bool:
    """``pid`` is ``root``, a descendant of it, or in its process group (a worker that its
    parent left behind, adopted by trinit, is still the service's)."""
    if pid == root:
        return True
    if pid <= 0:  # 0: a sender from outside our pid namespace
        return False
    try:
        if os.getpgid(pid) == root:
            return True
    except OSError:
        return False  # gone already: nothing tells whose it was
    for _ in range(_MAX_DEPTH):
        parent = parent_of(pid)
        if parent is None or parent <= 1:
            return False
        if parent == root:
            return True
        pid = parent
    return False


def namespace_pids(own: int) -> list[int] | None:
    """Every process of our PID namespace but us (``podman exec`` ones too), None without /proc."""
    try:
        return [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != own]
    except OSError:
        return None


def descendants(own: int) -> list[int]:
    """The descendants of ``own`` (children, grandchildren, …), from /proc.

    Raises OSError when /proc cannot be read (not mounted, say): then nothing can be
    found, and the caller must say so rather than believe nothing is left.
    """
    try:
        return _descendants_from_children(own)
    except OSError:  # no CONFIG_PROC_CHILDREN, or no /proc: the full scan tells which
        pass
    parents: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError as exc:
        raise OSError(exc.errno, f"/proc cannot be read: {exc.strerror}") from exc
    if "self" not in entries:
        raise OSError(errno.ENOENT, "/proc is not mounted")
    for entry in entries:
        if not entry.isdigit():
            continue
        parent = parent_of(int(entry))
        if parent is not None:
            parents.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    todo = [own]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _descendants_from_children(own: int) -> list[int]:
    """Each process's ``children`` file from ours down: no full scan of /proc, so a process
    that keeps re-forking is caught between two of its forks. OSError if there is none."""
    found: list[int] = []
    todo = [own]
    while todo:
        pid = todo.pop()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            if pid == own:
                raise
            continue  # gone meanwhile
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                    kids = [int(kid) for kid in f.read().split()]
            except OSError:
                if pid == own:
                    raise
                continue
            found += kids
            todo += kids
    return found
