"""trinit.system.launch: a child started through subprocess's C helper, as Popen would start it."""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

import pytest

from trinit.system import launch

pytestmark = pytest.mark.skipif(not launch.USABLE, reason="launch is used on CPython 3.11 to 3.13 only")


def _run(argv: list[str], **kwargs: object) -> tuple[int, int, bytes]:
    """Start argv with its stdout on a pipe: (pid, wait status, output)."""
    r, w = os.pipe()
    try:
        env, cwd = kwargs.pop("env", None), kwargs.pop("cwd", None)
        pid = launch.launch(argv[0], argv, env, cwd, (None, w, None), **kwargs)  # type: ignore[arg-type]
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    return pid, status, out


def test_runs_in_its_own_group_with_the_given_environment(tmp_path: Path) -> None:
    pid, status, out = _run(
        ["/bin/sh", "-c", 'echo "$HELLO $(pwd) $(ps -o pgid= -p $$ | tr -d " ") $$"'],
        env=launch.environment({"HELLO": "world", "PATH": os.environ["PATH"]}),
        cwd=str(tmp_path),
    )
    assert os.waitstatus_to_exitcode(status) == 0
    hello, cwd, pgid, own = out.decode().split()
    assert (hello, cwd) == ("world", str(tmp_path))
    assert int(pgid) == int(own) == pid


def test_signal_state_is_clean() -> None:
    """SIGPIPE (ignored by Python) is back to the default; the mask is the caller's (empty)."""
    _, _, out = _run(["/bin/grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"])
    fields = dict(line.split(":\t") for line in out.decode().splitlines())
    assert int(fields["SigIgn"], 16) == 0
    assert int(fields["SigBlk"], 16) == 0


def test_umask_and_kept_fd(tmp_path: Path) -> None:
    keep_r, keep_w = os.pipe2(os.O_CLOEXEC)
    try:
        _, _, out = _run(["/bin/bash", "-c", f"umask; echo kept >&{keep_w}"], keep=(keep_w,), umask=0o027)
    finally:
        os.close(keep_w)
    assert out.decode().strip() == "0027"
    with os.fdopen(keep_r, "rb") as f:
        assert f.read() == b"kept\n"


def test_other_fds_are_closed() -> None:
    extra_r, extra_w = os.pipe()  # inheritable, but not kept
    try:
        _, _, out = _run(["/bin/bash", "-c", f"echo x >&{extra_w} && echo wrote; echo done"])
    finally:
        os.close(extra_r)
        os.close(extra_w)
    assert out == b"done\n"


def test_missing_program_raises_enoent_and_leaves_no_zombie(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    before = _children()
    with pytest.raises(FileNotFoundError) as info:
        launch.launch(missing, [missing], None, None, (None, None, None))
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == missing
    assert _children() == before


def test_not_executable_raises_eacces(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    script.chmod(stat.S_IRUSR)  # no x bit at all: even root may not execute it
    with pytest.raises(PermissionError) as info:
        launch.launch(str(script), [str(script)], None, None, (None, None, None))
    assert info.value.filename == str(script)


def test_missing_folder_names_the_folder(tmp_path: Path) -> None:
    gone = str(tmp_path / "gone")
    with pytest.raises(FileNotFoundError) as info:
        launch.launch("/bin/true", ["true"], None, gone, (None, None, None))
    assert info.value.filename == gone


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_switches_user_and_groups() -> None:
    _, status, out = _run(["/usr/bin/id"], ids=(65534, 65534, [65534]))
    assert os.waitstatus_to_exitcode(status) == 0
    assert out.decode().split()[0] == "uid=65534(nobody)"


def test_environment_rejects_an_equals_sign_in_a_name() -> None:
    with pytest.raises(ValueError, match="illegal environment variable name"):
        launch.environment({"A=B": "c"})


@pytest.mark.parametrize(
    ("report", "kind", "code", "filename"),
    [
        (b"OSError:2:", FileNotFoundError, errno.ENOENT, "/p"),
        (b"OSError:d:", PermissionError, errno.EACCES, "/p"),
        (b"OSError:2:noexec:chdir", FileNotFoundError, errno.ENOENT, "/cwd"),
        (b"OSError:1:noexec", PermissionError, errno.EPERM, "/cwd" if sys.version_info < (3, 13) else None),
    ],
)
def test_reports_become_the_errors_popen_raises(
    report: bytes, kind: type[OSError], code: int, filename: str | None
) -> None:
    exc = launch._child_error(report, "/p", "/cwd")
    assert type(exc) is kind
    assert isinstance(exc, OSError)
    assert (exc.errno, exc.filename) == (code, filename)


def test_an_unreadable_report_is_still_an_oserror() -> None:
    assert isinstance(launch._child_error(b"garbage", "/p", None), OSError)
    assert "SubprocessError" in str(launch._child_error(b"SubprocessError:0:", "/p", None))


def _children() -> set[int]:
    me = os.getpid()
    found: set[int] = set()
    for task in os.listdir(f"/proc/{me}/task"):
        with open(f"/proc/{me}/task/{task}/children") as f:
            found.update(int(p) for p in f.read().split())
    return found
