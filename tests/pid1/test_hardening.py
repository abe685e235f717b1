"""Least privilege per process (SPEC §12), for real: trinit as PID 1 of a fresh PID namespace,
and the truth read from the child, never from trinit: /proc/<pid>/status (Umask, NoNewPrivs,
the capability sets), /proc/<pid>/limits, /proc/<pid>/oom_score_adj, the nice value in
/proc/<pid>/stat; a non-root user binding port 80 with and without CAP_NET_BIND_SERVICE;
a setuid binary with and without no_new_privileges; and a config asking for more than trinit
has, refused before anything starts.

The children are sh, sleep, cat, perl and a copy of id: a non-root user cannot run the test's
Python (it lives under /root). The user is created with useradd when missing (needs root).
"""

from __future__ import annotations

import ctypes
import os
import pwd
import re
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import TRINIT, children_of, clean_env, read_status, wait_for
from .orch.common import orch_fixture, toml_config, wait_log, wait_trinit

pytestmark = pytest.mark.pid1

h = orch_fixture()
USER = "trinit-test"
GROUP = "trinit-test-extra"
CAP = {"SETPCAP": 8, "KILL": 5, "NET_BIND_SERVICE": 10, "NET_ADMIN": 12, "SYS_NICE": 23, "SYS_RESOURCE": 24}

#: /proc/<pid>/limits names the limits this way.
LIMIT_NAMES = {
    "nofile": "Max open files",
    "nproc": "Max processes",
    "core": "Max core file size",
    "memlock": "Max locked memory",
    "stack": "Max stack size",
    "as": "Max address space",
    "cpu": "Max cpu time",
    "fsize": "Max file size",
    "data": "Max data size",
    "msgqueue": "Max msgqueue size",
    "nice": "Max nice priority",
    "rtprio": "Max realtime priority",
    "sigpending": "Max pending signals",
    "locks": "Max file locks",
}


def caps(*names: str) -> str:
    """A capability set as /proc/<pid>/status shows it."""
    mask = 0
    for name in names:
        mask |= 1 << CAP[name]
    return f"{mask:016x}"


def limits_in(text: str) -> dict[str, tuple[str, str]]:
    """(soft, hard) per limit key from the text of /proc/<pid>/limits."""
    rows = {}
    for line in text.splitlines()[1:]:
        m = re.match(r"(Max .+?)\s{2,}(\S+)\s+(\S+)", line)
        if m:
            rows[m[1]] = (m[2], m[3])
    return {key: rows[name] for key, name in LIMIT_NAMES.items()}


def nice_in(stat: str) -> int:
    """Field 19 of /proc/<pid>/stat (after the command, which may hold spaces)."""
    return int(stat[stat.rfind(")") + 2 :].split()[16])


def read(path: str | Path) -> str:
    with open(path) as f:
        return f.read()


def child_running(trinit_pid: int, marker: str) -> int:
    """The pid of trinit's child whose command line holds ``marker``, once it has exec'd."""

    def found() -> int | None:
        for pid in children_of(trinit_pid):
            try:
                if marker in read(f"/proc/{pid}/cmdline").replace("\0", " "):
                    return pid
            except OSError:
                pass
        return None

    pid: int = wait_for(found, message=f"a child of trinit running {marker}")
    return pid


@pytest.fixture(scope="module")
def user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a user and switch to it")
    if shutil.which("useradd") is None:
        pytest.skip("needs useradd")
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/bin/sh", USER], check=True, capture_output=True)
    return pwd.getpwnam(USER)


def prefixed(run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """NAME -> its one line of output (output = "prefix")."""
    out = {}
    for line in run.stdout().splitlines():
        name, _, text = line.partition(" | ")
        out[name] = text
    return out


# ------------------------------------------------------------------------ every key, in the child


def test_every_key_reaches_the_process_and_its_exec_probe(h, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A root process keeping two capabilities: the umask, the limits, no_new_privs, the
    capability sets (the bounding set narrowed too), oom_score_adj and nice, as the kernel
    reports them for the process itself and for its exec probe (and the probe's own child)."""
    cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    limits = {
        "nofile": [256, 512],
        "nproc": [300, 400],
        "core": 0,
        "memlock": [1024, 2048],
        "stack": [1 << 20, 2 << 20],
        "as": [1 << 34, 1 << 35],
        "cpu": "unlimited" if cpu_hard == resource.RLIM_INFINITY else [cpu_hard // 2, cpu_hard],
        "fsize": [1 << 30, 1 << 31],
        "data": [1 << 33, 1 << 34],
        "msgqueue": [4096, 8192],
        "nice": 0,
        "rtprio": 0,
        "sigpending": [50, 60],
        "locks": [30, 40],
    }
    probe = tmp_path / "probe"
    probe.mkdir()
    dump = (
        f"cat /proc/self/status > {probe}/status; cat /proc/self/limits > {probe}/limits; "
        f"cat /proc/self/oom_score_adj > {probe}/oom; cat /proc/self/stat > {probe}/stat"
    )
    hardened = {
        "umask": "027",
        "rlimits": limits,
        "no_new_privileges": True,
        "capabilities": ["NET_BIND_SERVICE", "cap_kill"],
        "oom_score_adj": 500,
        "nice": 5,
    }
    cfg = toml_config(
        {
            "web": {"command": ["sleep", "987654"], **hardened, "ready": {"exec": ["/bin/sh", "-c", dump]}},
            "plain": {"command": ["sleep", "987655"]},
        }
    )
    run = h.run_config(cfg, net=False)
    trinit = wait_trinit(run)
    wait_log(run, r"web .*ready")
    web = child_running(trinit, "987654")
    status = read_status(web)
    want_limits = {
        key: (str(v[0]), str(v[1])) if isinstance(v, list) else (str(v), str(v)) for key, v in limits.items()
    }
    for who, got, lims, oom, stat in (
        ("process", status, read(f"/proc/{web}/limits"), read(f"/proc/{web}/oom_score_adj"), read(f"/proc/{web}/stat")),
        (
            "probe",
            dict(line.split(":\t", 1) for line in read(probe / "status").splitlines() if ":\t" in line),
            read(probe / "limits"),
            read(probe / "oom"),
            read(probe / "stat"),
        ),
    ):  # fmt: skip
        assert got["Umask"] == "0027", who
        assert got["NoNewPrivs"] == "1", who
        for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert got[field] == caps("NET_BIND_SERVICE", "KILL"), (who, field, got[field])
        assert got["Uid"].split() == ["0"] * 4, who
        assert limits_in(lims) == want_limits, who
        assert oom.strip() == "500", who
        assert nice_in(stat) == 5, who
    # The chain execs in place: the process is trinit's own child, with its own argv after the helpers'.
    assert status["PPid"] == str(trinit)
    assert read(f"/proc/{web}/cmdline").split("\0")[-2:] == ["987654", ""]

    # A process without any hardening key is spawned exactly as before: no helper, argv as written,
    # trinit's umask, capabilities and limits.
    plain = child_running(trinit, "987655")
    own, theirs = read_status(trinit), read_status(plain)
    assert read(f"/proc/{plain}/cmdline") == "sleep\0" + "987655\0"
    for field in ("Umask", "NoNewPrivs", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert theirs[field] == own[field], field
    assert read(f"/proc/{plain}/oom_score_adj") == read(f"/proc/{trinit}/oom_score_adj")
    assert nice_in(read(f"/proc/{plain}/stat")) == nice_in(read(f"/proc/{trinit}/stat"))
    run.send(15)
    assert run.wait(20) == 0, run.stderr()


# ------------------------------------------------------------------- capabilities for a non-root user

BIND = r"""
open(my $f, "<", "/proc/self/status") or die;
my %c; while (<$f>) { $c{$1} = $2 if /^(Cap\w+):\s+(\w+)/ }
use Socket; socket(S, PF_INET, SOCK_STREAM, 0) or die "socket: $!\n";
my $r = bind(S, sockaddr_in(80, inet_aton("127.0.0.1"))) ? "bound" : ($!{EACCES} ? "EACCES" : "error:$!");
print "bind=$r uid=$< ", join(" ", map { "$_=$c{$_}" } sort keys %c), "\n";
"""


def test_a_non_root_user_keeps_exactly_the_listed_capabilities(h, user) -> None:  # type: ignore[no-untyped-def]
    """With CAP_NET_BIND_SERVICE a non-root user binds port 80; without it, EACCES; so does root
    when its list is empty."""
    common = {"command": ["perl", "-e", BIND], "oneshot": True, "output": "prefix", "cwd": "/"}
    cfg = toml_config(
        {
            "with": {**common, "user": USER, "capabilities": ["NET_BIND_SERVICE"]},
            "without": {**common, "user": USER},
            "rootnone": {**common, "capabilities": []},
        }
    )
    run = h.run_config(cfg)  # a network namespace of its own: port 80 is free, lo is up
    assert run.wait(20) == 0, run.stderr()
    got = {name: dict(item.split("=", 1) for item in text.split()) for name, text in prefixed(run).items()}
    listed, none = caps("NET_BIND_SERVICE"), caps()
    assert got["with"] == {
        "bind": "bound",
        "uid": str(user.pw_uid),
        **dict.fromkeys(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), listed),
    }, got
    bounding = read_status(os.getpid())["CapBnd"]  # as trinit's: not narrowed without the key
    assert got["without"] == {
        "bind": "EACCES",
        "uid": str(user.pw_uid),
        **dict.fromkeys(("CapInh", "CapPrm", "CapEff", "CapAmb"), none),
        "CapBnd": bounding,
    }, got
    assert got["rootnone"] == {
        "bind": "EACCES",
        "uid": "0",
        **dict.fromkeys(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), none),
    }, got


# -------------------------------------------------------------------------------- no_new_privileges


@pytest.fixture
def setuid_id() -> Iterator[Path]:
    """A setuid-root copy of id in a folder every user can reach, on a file system without nosuid."""
    for base in ("/tmp", "/var/tmp"):
        if not os.statvfs(base).f_flag & os.ST_NOSUID:
            break
    else:
        pytest.skip("no file system without nosuid for a setuid binary")
    folder = Path(tempfile.mkdtemp(prefix="trinit-setuid-", dir=base))
    try:
        folder.chmod(0o755)
        program = folder / "id"
        shutil.copy("/usr/bin/id", program)
        os.chown(program, 0, 0)
        program.chmod(0o4755)
        yield program
    finally:
        shutil.rmtree(folder)


def test_no_new_privileges_stops_a_setuid_binary(h, user, setuid_id) -> None:  # type: ignore[no-untyped-def]
    common = {
        "command": [str(setuid_id), "-u"],
        "oneshot": True,
        "output": "prefix",
        "cwd": "/",
        "user": USER,
    }
    cfg = toml_config({"plain": common, "nnp": {**common, "no_new_privileges": True}})
    run = h.run_config(cfg, net=False)
    assert run.wait(20) == 0, run.stderr()
    assert prefixed(run) == {"plain": "0", "nnp": str(user.pw_uid)}, run.stdout()


# ----------------------------------------------------------------- more than trinit has: refused


def _less_privileged() -> None:
    """In the child, before unshare (and so trinit) is exec'd: a root without CAP_NET_ADMIN,
    CAP_SYS_RESOURCE, CAP_SYS_NICE and CAP_SETPCAP (dropped from the bounding set, they are not
    permitted after exec), with 1024 open files at most, nice 5 and oom_score_adj 100."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in ("NET_ADMIN", "SYS_RESOURCE", "SYS_NICE", "SETPCAP"):  # SETPCAP last: it drops the others
        if libc.prctl(24, CAP[cap], 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), f"PR_CAPBSET_DROP {cap}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
    resource.setrlimit(resource.RLIMIT_NICE, (0, 0))
    os.nice(5 - os.nice(0))
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("100")


def test_asking_for_more_than_trinit_has_is_a_config_error_before_anything_starts(  # type: ignore[no-untyped-def]
    h, user, tmp_path
) -> None:
    marker = tmp_path / "started"
    cfg = toml_config(
        {
            "a": {
                "command": ["touch", str(marker)],
                "user": USER,
                "capabilities": ["NET_ADMIN", "NET_BIND_SERVICE"],
                "rlimits": {"nofile": [1024, 4096], "core": 0},
                "nice": 0,
                "oom_score_adj": 0,
            },
            "b": {"command": ["touch", str(marker)], "capabilities": ["KILL"]},
        }
    )
    run = h.run_config(cfg, net=False, preexec_fn=_less_privileged)
    assert run.wait(20) == 2, run.stderr()
    path = next(tmp_path.glob("trinit-*.toml"))
    head = f'trinit: error: {path}: process "'
    assert run.log_lines() == [
        f'{head}a": capabilities: trinit does not have CAP_NET_ADMIN itself, so it cannot pass it on; grant it '
        "to the container (docker run --cap-add, or securityContext.capabilities.add) or remove it",
        f"{head}a\": rlimits.nofile: 4096 is above trinit's own hard limit (1024), and trinit lacks "
        "CAP_SYS_RESOURCE to raise it; lower it, or raise the container's limit (docker run --ulimit)",
        f'{head}a": nice: trinit runs at nice 5 without CAP_SYS_NICE, so it cannot start a process at the '
        "higher priority 0; use 5 or more, or give trinit CAP_SYS_NICE",
        f"{head}a\": oom_score_adj: trinit's own oom_score_adj is 100 and it lacks CAP_SYS_RESOURCE, so it "
        "cannot give a process the lower 0; use 100 or more, or give trinit CAP_SYS_RESOURCE",
        f'{head}b": capabilities: the process runs as root, and trinit lacks CAP_SETPCAP, which it needs to '
        "narrow root's capabilities to the list; set user to a non-root user, or give trinit CAP_SETPCAP",
    ]
    assert not marker.exists()
    # trinit check says the same, with the same exit code.
    check = subprocess.run(
        [TRINIT, "check", "-c", str(path)],
        capture_output=True,
        text=True,
        env=clean_env(),
        preexec_fn=_less_privileged,
        timeout=30,
    )
    assert check.returncode == 2, check.stderr
    assert check.stderr.splitlines() == run.log_lines()
