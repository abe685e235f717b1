"""The environment a process gets, for real (SPEC §3–§4): env, env_file (re-read at each
start), inherit_env, ${VAR:-default} expansion, cwd relative to the config's folder, a relative
program path, stdin /dev/null for non-main processes, and user/group (uid, gid, supplementary
groups, HOME/USER/LOGNAME; none of root's groups).

trinit runs as PID 1 of a fresh PID namespace. The user tests create a user and a group with
useradd/groupadd when missing (they need root; they skip with the reason otherwise).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from .helpers import PY
from .orch.common import KID, Events, orch_fixture, toml_config

pytestmark = pytest.mark.pid1

h = orch_fixture()
USER = "trinit-test"
GROUP = "trinit-test-extra"
#: trinit gets these supplementary groups (as root): the child must not keep them.
ROOT_GROUPS = [0, 4, 27, 100]


@pytest.fixture
def ev(tmp_path: Path) -> Events:
    return Events(tmp_path / "events")


def test_env_env_file_expansion_cwd_and_stdin(h, ev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "cfg"
    (folder / "sub").mkdir(parents=True)
    (folder / "vars.env").write_text("# comment\nF=from-file\nG=file-only\nFOO=file-wins-over-inherited\n")
    script = folder / "sub" / "run.sh"
    script.write_text(f"#!/bin/sh\nexec {PY} {KID} {ev.path} rel exit=0\n")
    script.chmod(0o755)
    info = tmp_path / "e.json"
    bare = tmp_path / "bare.json"
    cfg = toml_config(
        {
            "e": {
                "command": ev.kid("e", "mark=cmd-${FOO}-${NOPE:-dflt}", f"info={info}", "exit=0"),
                "oneshot": True,
                "cwd": "sub",
                "env_file": "vars.env",
                "env": {
                    "A": "plain",
                    "B": "${FOO}",
                    "C": "${UNSET_THING:-dflt}",
                    "D": "${EMPTY_THING:-dd}",
                    "E": "$$literal $HOME",
                    "F": "from-env",
                },
            },
            "bare": {
                "command": ev.kid("bare", f"info={bare}", "exit=0"),
                "oneshot": True,
                "inherit_env": False,
                "env": {"ONLY": "1"},
            },
            "rel": {"command": ["./run.sh"], "cwd": "sub", "oneshot": True},
        }
    )
    run = h.run_config(
        cfg, net=False, folder=folder, env={"FOO": "fromtrinit", "EMPTY_THING": "", "INHERITED": "yes"}
    )
    assert run.wait(20) == 0, run.stderr()
    got = json.loads(info.read_text())
    env = got["env"]
    assert {k: env.get(k) for k in "ABCDEFG"} == {
        "A": "plain",
        "B": "fromtrinit",  # expanded from trinit's environment when loaded
        "C": "dflt",
        "D": "dd",
        "E": "$literal $HOME",
        "F": "from-env",  # env wins over env_file
        "G": "file-only",
    }
    assert env["FOO"] == "file-wins-over-inherited" and env["INHERITED"] == "yes"
    assert got["cwd"] == str(folder / "sub")
    assert got["stdin"] == "/dev/null"
    assert ev.of("e", "cmd-fromtrinit-dflt")
    # inherit_env = false: only what the config gives (Python may add LC_CTYPE itself)
    assert set(json.loads(bare.read_text())["env"]) - {"LC_CTYPE"} == {"ONLY"}
    # a relative program is taken from the process's cwd
    assert ev.of("rel", "exit 0")


def test_env_file_is_read_again_at_each_start(h, ev, tmp_path) -> None:  # type: ignore[no-untyped-def]
    vars_file = tmp_path / "r.env"
    vars_file.write_text("V=one\nGONE=soon\n")
    stamp, dummy = tmp_path / "r.crashed", tmp_path / "dummy"
    dummy.touch()
    cfg = toml_config(
        {
            "r": {
                "command": ev.kid(
                    "r", "on=TERM:exit", "env=V", "env=GONE", f"crashonce={stamp},{dummy}", "forever"
                ),
                "env_file": str(vars_file),
                "restart": "on-failure",
                "restart_delay": 0.1,
            }
        }
    )
    run = h.run_config(cfg, net=False)
    ev.wait("r", "env GONE", run=run)
    vars_file.write_text("V=two\n")
    Path(f"{stamp}.go").touch()
    ev.wait("r", "env GONE", count=2, run=run)
    assert [e.what for e in ev.of("r", "env")] == [
        "env V=one",
        "env GONE=soon",
        "env V=two",
        "env GONE unset",
    ]
    run.send(signal.SIGTERM)
    assert run.wait(20) == 0, run.stderr()


# --- user and group ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def test_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a user and switch to it")
    if shutil.which("useradd") is None or shutil.which("groupadd") is None:
        pytest.skip("needs useradd and groupadd")
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run(["groupadd", GROUP], check=True, capture_output=True)
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/bin/sh", "-G", GROUP, USER], check=True, capture_output=True)
    return pwd.getpwnam(USER)


REPORT = (
    'echo "uid=$(id -u) gid=$(id -g) groups=$(id -G | tr " " ,) home=$HOME user=${USER-} '
    'logname=${LOGNAME-} stdin=$(readlink /proc/self/fd/0)"'
)


def reports(run) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    out = {}
    lines = run.stdout().splitlines()
    for line in lines:
        name, _, text = line.partition(" | ")
        out[name] = dict(item.split("=", 1) for item in text.split())
    assert len(out) == len(lines), lines
    return out


def test_user_and_group(h, test_user) -> None:  # type: ignore[no-untyped-def]
    extra = grp.getgrnam(GROUP).gr_gid
    common = {"command": ["/bin/sh", "-c", REPORT], "oneshot": True, "output": "prefix", "cwd": "/"}
    cfg = toml_config(
        {
            "byname": {**common, "user": USER},
            "byid": {**common, "user": test_user.pw_uid},
            "withgroup": {**common, "user": USER, "group": GROUP},
            "grouponly": {**common, "group": GROUP},
            "nopasswd": {**common, "user": 54321, "group": 54322},
        }
    )
    run = h.run_config(cfg, net=False, preexec_fn=lambda: os.setgroups(ROOT_GROUPS))
    assert run.wait(20) == 0, run.stderr()
    got = reports(run)
    assert set(got) == {"byname", "byid", "withgroup", "grouponly", "nopasswd"}, run.stdout()
    user_groups = {str(g) for g in os.getgrouplist(USER, test_user.pw_gid)}
    assert str(extra) in user_groups
    for name in ("byname", "byid"):
        r = got[name]
        assert (r["uid"], r["gid"]) == (str(test_user.pw_uid), str(test_user.pw_gid)), r
        assert set(r["groups"].split(",")) == user_groups, r  # the user's groups, none of root's
        assert (r["home"], r["user"], r["logname"]) == (test_user.pw_dir, USER, USER), r
        assert r["stdin"] == "/dev/null"
    w = got["withgroup"]
    assert (w["uid"], w["gid"]) == (str(test_user.pw_uid), str(extra)), w
    assert str(extra) in w["groups"].split(",") and "0" not in w["groups"].split(","), w
    assert not {"4", "27", "100"} & set(w["groups"].split(",")), w
    g = got["grouponly"]
    assert (g["uid"], g["gid"], g["groups"]) == ("0", str(extra), str(extra)), g
    n = got["nopasswd"]
    assert (n["uid"], n["gid"], n["groups"]) == ("54321", "54322", "54322"), n
