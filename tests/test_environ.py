"""A process's environment and credentials, as the runtime builds them at each start."""

from __future__ import annotations

import os
import pathlib
import pwd

import pytest

from trinit._errors import ConfigError
from trinit.config.model import ProcessSpec
from trinit.system.environ import Credentials, build_env, read_env_file, resolve_credentials


def write(tmp_path: pathlib.Path, text: str) -> str:
    path = tmp_path / "app.env"
    path.write_text(text)
    return str(path)


def test_env_file_syntax(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        "# a comment\n"
        "\n"
        "A=1\n"
        "  B = two words  \n"
        "export C=3\n"
        'D="quoted # not a comment"  # a comment\n'
        "E='single $HOME \\n'\n"
        'F="esc\\n\\t\\"q\\" \\\\ \\x"\n'
        "G=a#b\n"
        "H=a #b\n"
        "I=\n"
        "J=x=y\n"
        "K.dotted-name=1\n"
        "A=last wins\n",
    )
    assert read_env_file(path) == {
        "A": "last wins",
        "B": "two words",
        "C": "3",
        "D": "quoted # not a comment",
        "E": "single $HOME \\n",
        "F": 'esc\n\t"q" \\ \\x',
        "G": "a#b",
        "H": "a",
        "I": "",
        "J": "x=y",
        "K.dotted-name": "1",
    }


def test_env_file_bad_lines_are_all_reported(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "OK=1\nnot a pair\n=value\nQ=\"open\nR='x' trailing\n1A=x\n")
    with pytest.raises(ConfigError) as info:
        read_env_file(path)
    assert info.value.errors == [
        f"{path}: line 2: expected KEY=value (the line is not shown: it may hold a secret)",
        f"{path}: line 3: expected KEY=value (the line is not shown: it may hold a secret)",
        f'{path}: line 4: the quote " is not closed, or text follows it',
        f"{path}: line 5: the quote ' is not closed, or text follows it",
        f"{path}: line 6: expected KEY=value (the line is not shown: it may hold a secret)",
    ]


def test_env_file_missing(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_env_file(str(tmp_path / "nope.env"))
    assert info.value.errors == [f"{tmp_path}/nope.env: cannot read the env file: No such file or directory"]


def test_build_env_order(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "FROM_FILE=file\nBOTH=file\nBASE=file\n")
    spec = ProcessSpec(name="a", command="x", env_file=path, env={"BOTH": "env", "ONLY": "env"})
    env = build_env(spec, {"BASE": "base", "KEEP": "base"}, None)
    assert env == {"BASE": "file", "KEEP": "base", "FROM_FILE": "file", "BOTH": "env", "ONLY": "env"}


def test_build_env_without_inheritance() -> None:
    spec = ProcessSpec(name="a", command="x", inherit_env=False, env={"A": "1"})
    assert build_env(spec, {"PATH": "/bin"}, None) == {"A": "1"}


def test_build_env_rereads_the_file_each_start(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "V=1\n")
    spec = ProcessSpec(name="a", command="x", env_file=path)
    assert build_env(spec, {}, None)["V"] == "1"
    write(tmp_path, "V=2\n")
    assert build_env(spec, {}, None)["V"] == "2"


def test_build_env_names_the_process(tmp_path: pathlib.Path) -> None:
    spec = ProcessSpec(name="web", command="x", env_file=str(tmp_path / "gone.env"))
    with pytest.raises(ConfigError) as info:
        build_env(spec, {}, None)
    assert info.value.errors[0].startswith('process "web": env_file: ')


def test_build_env_user_variables_can_be_overridden() -> None:
    creds = Credentials(uid=1, gid=1, groups=(1,), name="daemon", home="/usr/sbin")
    spec = ProcessSpec(name="a", command="x", env={"HOME": "/data"})
    env = build_env(spec, {"HOME": "/root", "USER": "root"}, creds)
    assert env["USER"] == env["LOGNAME"] == "daemon" and env["HOME"] == "/data"
    group_only = Credentials(uid=0, gid=5, groups=(5,))
    assert build_env(ProcessSpec(name="a", command="x"), {"USER": "root"}, group_only) == {"USER": "root"}


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)


def test_credentials_of_a_named_user(as_root: None) -> None:
    entry = pwd.getpwnam("nobody")
    creds = resolve_credentials(ProcessSpec(name="a", command="x", user="nobody"))
    assert creds is not None
    assert (creds.uid, creds.gid, creds.name, creds.home) == (
        entry.pw_uid,
        entry.pw_gid,
        "nobody",
        entry.pw_dir,
    )
    assert creds.groups[0] == entry.pw_gid
    assert set(creds.groups) == set(os.getgrouplist("nobody", entry.pw_gid))
    # By uid too, and with another primary group.
    creds = resolve_credentials(ProcessSpec(name="a", command="x", user=str(entry.pw_uid), group="0"))
    assert creds is not None and creds.gid == 0 and creds.groups[0] == 0 and creds.name == "nobody"


def test_credentials_of_ids_without_entries(as_root: None) -> None:
    creds = resolve_credentials(ProcessSpec(name="a", command="x", user=48213, group=48213))
    assert creds == Credentials(uid=48213, gid=48213, groups=(48213,), name=None, home=None)


def test_credentials_of_a_group_only(as_root: None) -> None:
    creds = resolve_credentials(ProcessSpec(name="a", command="x", group="0"))
    assert creds == Credentials(uid=0, gid=0, groups=(0,))


def test_no_credentials_without_user_or_group(as_root: None) -> None:
    assert resolve_credentials(ProcessSpec(name="a", command="x")) is None


def test_no_credentials_when_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation made sure the ids are trinit's own; setgroups would fail anyway."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    spec = ProcessSpec(name="a", command="x", user="root")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert resolve_credentials(spec) is None


def test_a_bad_line_is_never_shown(tmp_path: pathlib.Path) -> None:
    """Env files hold secrets: the error names the file and the line, never its content."""
    path = tmp_path / "secrets.env"
    path.write_text("root:$6$SECRETHASH$abc:19000:0:99999:7:::\n")
    with pytest.raises(ConfigError) as info:
        read_env_file(str(path))
    assert "SECRETHASH" not in str(info.value.errors)
    assert info.value.errors == [
        f"{path}: line 1: expected KEY=value (the line is not shown: it may hold a secret)"
    ]


@pytest.mark.usefixtures("pid1")  # needs root (skips on a laptop, fails in CI)
def test_the_env_file_is_read_with_the_process_users_permissions(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "root-only.env"
    path.write_text("TOKEN=s3cret\n")
    path.chmod(0o600)
    nobody = Credentials(uid=65534, gid=65534, groups=(), name="nobody")
    with pytest.raises(ConfigError) as info:
        read_env_file(str(path), nobody)
    assert info.value.errors == [
        f"{path}: user nobody may not read this env file (trinit reads it with the permissions of the "
        "process's user; make it readable by that user or its group)"
    ]
    path.chmod(0o604)
    assert read_env_file(str(path), nobody) == {"TOKEN": "s3cret"}
    path.chmod(0o640)
    os.chown(path, 0, 65534)
    assert read_env_file(str(path), nobody) == {"TOKEN": "s3cret"}
    root = Credentials(uid=0, gid=0, groups=())
    path.chmod(0o000)
    assert read_env_file(str(path), root) == {"TOKEN": "s3cret"}
