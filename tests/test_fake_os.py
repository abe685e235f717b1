"""FakeOS is an OSLayer like RealOS (same methods, same parameters) without being a RealOS,
and its files-and-pipes part: real pipes, recorded ready files."""

from __future__ import annotations

import fcntl
import inspect
import os

import pytest
from trio.testing import MockClock

from trinit.system.protocol import OSLayer
from trinit.system.real import RealOS
from trinit.testing import Behaviour, FakeOS

MEMBERS = sorted(name for name in vars(OSLayer) if not name.startswith("_") and name not in vars(object))


def test_the_protocol_lists_the_os_layer() -> None:
    assert {"pid", "is_pid1", "spawn", "pipe", "close", "write_ready_file", "remove_ready_file"} <= set(
        MEMBERS
    )


def test_fake_os_is_not_a_real_os() -> None:
    assert not issubclass(FakeOS, RealOS)


@pytest.mark.parametrize("name", MEMBERS)
@pytest.mark.parametrize("layer", [RealOS, FakeOS])
def test_both_layers_have_every_member_with_the_same_parameters(layer: type, name: str) -> None:
    wanted = getattr(OSLayer, name)
    if name == "pid":  # a plain attribute on both
        assert getattr(layer(), name) > 0
        return
    got = getattr(layer, name)
    if isinstance(wanted, property):
        assert isinstance(got, property), f"{layer.__name__}.{name} should be a property"
        return
    assert list(inspect.signature(got).parameters) == list(inspect.signature(wanted).parameters)


def test_pipe_is_real_close_on_exec_and_tracked() -> None:
    fake = FakeOS()
    r, w = fake.pipe()
    assert fake.open_fds == {r, w}
    assert fcntl.fcntl(r, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    assert fcntl.fcntl(w, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    os.write(w, b"hi")
    assert os.read(r, 2) == b"hi"
    fake.close(w)
    assert os.read(r, 2) == b""  # the write end is really closed
    fake.close(r)
    assert fake.open_fds == set()
    with pytest.raises(OSError):
        os.fstat(r)


async def test_close_forgets_a_stand_in_pidfd(autojump_clock: MockClock) -> None:
    fake = FakeOS({"app": Behaviour.forever()})
    fake.make_watcher()
    pidfd = fake.pidfd_open(fake.spawn(["app"], env={}))
    fake.close(pidfd)  # not a real fd: nothing is closed for real
    with pytest.raises(KeyError):
        fake.wait_pidfd(pidfd)


def test_ready_file_is_recorded_not_written(tmp_path: os.PathLike[str]) -> None:
    fake = FakeOS()
    path = os.path.join(tmp_path, "sub", "ready")
    fake.write_ready_file(path, b"42\n")
    assert fake.ready_files == {path: b"42\n"}
    assert not os.path.exists(path)
    fake.remove_ready_file(path)
    fake.remove_ready_file(path)  # a missing file is fine, as with RealOS
    assert fake.ready_files == {}
    assert fake.calls == [
        ("write_ready_file", (path,)),
        ("remove_ready_file", (path,)),
        ("remove_ready_file", (path,)),
    ]


def test_real_ready_file_is_written_atomically_0644(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "sub", "ready")
    real = RealOS()
    old = os.umask(0o077)
    try:
        real.write_ready_file(path, b"42\n")
    finally:
        os.umask(old)
    with open(path, "rb") as f:
        assert f.read() == b"42\n"
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o755
    assert os.listdir(os.path.dirname(path)) == ["ready"]  # no temporary file left
    real.remove_ready_file(path)
    real.remove_ready_file(path)
    assert not os.path.exists(path)


def test_real_ready_file_never_follows_a_symlink(tmp_path: os.PathLike[str]) -> None:
    """A process that owns the ready file's folder cannot make trinit (root) overwrite another file."""
    folder = os.path.join(tmp_path, "run")
    os.mkdir(folder)
    victim = os.path.join(tmp_path, "passwd")
    with open(victim, "w") as f:
        f.write("root:x:0:0::/root:/bin/sh\n")
    path = os.path.join(folder, "ready")
    os.symlink(victim, path)
    os.symlink(victim, os.path.join(folder, f".ready.{os.getpid()}.tmp"))  # the temporary name too
    real = RealOS()
    real.write_ready_file(path, b"1\n")
    with open(victim) as f:
        assert f.read() == "root:x:0:0::/root:/bin/sh\n"
    assert not os.path.islink(path)
    with open(path, "rb") as f:
        assert f.read() == b"1\n"
    real.remove_ready_file(path)
    assert not os.path.lexists(path)
    assert os.path.exists(victim)


def test_real_ready_file_world_writable_umask_still_gives_0644_and_0755(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "a", "b", "ready")
    old = os.umask(0)
    try:
        RealOS().write_ready_file(path, b"1\n")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o755
    assert os.stat(os.path.dirname(os.path.dirname(path))).st_mode & 0o777 == 0o755


def test_real_ready_file_removes_only_what_it_created(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "ready")
    real = RealOS()
    real.write_ready_file(path, b"1\n")
    os.unlink(path)
    with open(path, "w") as f:  # somebody else's file now stands there
        f.write("theirs\n")
    real.remove_ready_file(path)
    assert os.path.exists(path)
    never = os.path.join(tmp_path, "never-made")
    with open(never, "w") as f:
        f.write("x\n")
    real.remove_ready_file(never)
    assert os.path.exists(never)
