"""RealOS.spawn_plain: plain processes started two at a time through glibc's posix_spawn.

A child started this way must be the same as one :meth:`RealOS.spawn` starts: its own process
group, an empty mask, every disposition at its default (glibc's internal signals included),
no fd of trinit's beside 0, 1 and 2, trinit's environment; and the results come back in the
order of the jobs, an error in the slot of the job that failed.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from trinit.system.pspawn import batch_spawner
from trinit.system.real import RealOS
from trinit.system.spawning import BATCH_FROM

pytestmark = pytest.mark.skipif(batch_spawner() is None, reason="needs glibc 2.34 or later (posix_spawn closefrom)")


@pytest.fixture
def real() -> Iterator[RealOS]:
    os_layer = RealOS()
    os_layer._batch = batch_spawner()  # as after a first big run: the batches below are small
    yield os_layer
    os.close(os_layer.devnull())


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _reap(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_children_are_as_spawn_makes_them(real: RealOS, tmp_path: Path) -> None:
    mine = tmp_path / "trinit's own file"
    leaked = os.open(mine, os.O_RDONLY | os.O_CREAT)  # inheritable: the child must not get it
    os.set_inheritable(leaked, True)
    before = signal.signal(signal.SIGUSR1, lambda *_: None)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        pids = real.spawn_plain([(["sleep", "100"], (real.devnull(), None, None))] * 5, env=os.environ)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, before)
        os.close(leaked)
    try:
        assert all(isinstance(pid, int) for pid in pids) and len(set(pids)) == 5
        for pid in pids:
            assert isinstance(pid, int)
            status = _status(pid)
            assert (status["SigBlk"], status["SigIgn"], status["SigCgt"]) == ("0" * 16,) * 3
            assert os.getpgid(pid) == pid
            # Just after its exec the loader may hold its own fd 3 (ld.so.cache, libc) for a moment.
            fds = {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
            assert {"0", "1", "2"} <= fds.keys() and str(mine) not in fds.values()
            assert os.readlink(f"/proc/{pid}/fd/0") == os.devnull
            assert os.readlink(f"/proc/{pid}/fd/1") == os.readlink("/proc/self/fd/1")
    finally:
        _reap([pid for pid in pids if isinstance(pid, int)])


def test_results_keep_the_order_of_the_jobs(real: RealOS, tmp_path: Path) -> None:
    fds = [os.open(tmp_path / f"out{i}", os.O_WRONLY | os.O_CREAT) for i in range(7)]
    try:
        jobs: list[tuple[list[str], tuple[int | None, int | None, int | None]]] = [
            (["sh", "-c", f"echo {i}"], (real.devnull(), fd, fd)) for i, fd in enumerate(fds)
        ]
        jobs.insert(3, (["no-such-program-anywhere"], (real.devnull(), None, None)))
        results = real.spawn_plain(jobs, env=os.environ)
        missing = results.pop(3)
        assert isinstance(missing, FileNotFoundError) and missing.filename == "no-such-program-anywhere"
        for pid in results:
            assert isinstance(pid, int)
            assert os.waitpid(pid, 0)[1] == 0
    finally:
        for fd in fds:
            os.close(fd)
    assert [(tmp_path / f"out{i}").read_text() for i in range(7)] == [f"{i}\n" for i in range(7)]


def test_a_program_that_went_is_looked_up_again(real: RealOS, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        program = folder / "prog"
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(stat.S_IRWXU)
    env = {"PATH": f"{first}:{second}"}
    [pid] = real.spawn_plain([(["prog"], (real.devnull(), None, None))], env=env)
    assert isinstance(pid, int) and os.waitpid(pid, 0)[1] == 0
    (first / "prog").unlink()  # the cached path is gone: found again in the second folder
    results = real.spawn_plain([(["prog"], (real.devnull(), None, None))] * 2, env=env)
    assert all(isinstance(pid, int) and os.waitpid(pid, 0)[1] == 0 for pid in results)
    (second / "prog").chmod(0o644)  # found, but not executable: 126 as a shell would say
    [denied] = real.spawn_plain([(["prog"], (real.devnull(), None, None))], env=env)
    assert isinstance(denied, PermissionError)


def test_a_failed_exec_is_reaped_and_reported(real: RealOS, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x7fELF not really")
    garbage.chmod(stat.S_IRWXU)
    before = _zombies()
    results = real.spawn_plain([([str(garbage)], (real.devnull(), None, None))] * 3, env=os.environ)
    assert all(isinstance(r, OSError) and r.filename == str(garbage) for r in results)
    assert _zombies() == before  # glibc reaped the children that could not exec


def _zombies() -> set[int]:
    kids: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            kids.update(int(pid) for pid in f.read().split())
    return {pid for pid in kids if _status(pid).get("State", "").startswith("Z")}


def test_two_threads_start_a_batch_and_none_is_left(real: RealOS) -> None:
    seen: list[str] = []
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        seen.append(thread.name)
        original(thread)

    threading.Thread.start = start  # type: ignore[method-assign,assignment]
    try:
        pids = real.spawn_plain([(["true"], (real.devnull(), None, None))] * 4, env=os.environ)
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
    assert seen == ["trinit spawn"]
    assert not [t for t in threading.enumerate() if t.name == "trinit spawn"]
    assert all(isinstance(pid, int) and os.waitpid(pid, 0)[1] == 0 for pid in pids)


def test_a_few_start_one_at_a_time_until_a_bigger_run_comes() -> None:
    real = RealOS()
    try:
        pids = real.spawn_plain([(["true"], (real.devnull(), None, None))] * (BATCH_FROM - 1), env=os.environ)
        assert real._batch is None  # not loaded for a few
        pids += real.spawn_plain([(["true"], (real.devnull(), None, None))] * BATCH_FROM, env=os.environ)
        assert real._batch is not None and real._batch is not False
        assert all(isinstance(pid, int) and os.waitpid(pid, 0)[1] == 0 for pid in pids)
    finally:
        os.close(real.devnull())
