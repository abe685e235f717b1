"""`trinit -c BAD.toml` for every config of the bad corpus: exit 2, one clear line per problem
on stderr, no traceback, and nothing started.

"Nothing started" is checked for real: every program the corpus names (and `sh`) is put on
PATH as a stand-in that leaves a marker file when it runs.
"""

from __future__ import annotations

import os
import pathlib
import stat
import subprocess
import sys

import pytest

CONFIGS = pathlib.Path(__file__).parent / "configs" / "bad"
BAD = sorted(CONFIGS.glob("*.toml"))
NAMES = ["x", "y", "web", "j", "app", "a", "echo", "ls", "sh", "sleep", "true", "python3"]


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    root = tmp_path_factory.mktemp("stand-ins")
    bin_dir, markers = root / "bin", root / "ran"
    bin_dir.mkdir()
    markers.mkdir()
    for name in NAMES:
        program = bin_dir / name
        program.write_text(f"#!/bin/sh\ntouch {markers}/{name}\n")
        program.chmod(program.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir, markers


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_starts_nothing(path: pathlib.Path, stand_ins: tuple[pathlib.Path, pathlib.Path]) -> None:
    bin_dir, markers = stand_ins
    env = {k: v for k, v in os.environ.items() if k not in ("NOPE", "ALSO_NOPE")}
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    proc = subprocess.run(
        [sys.executable, "-m", "trinit", "-v", "-c", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=path.parent,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and all(line.startswith("trinit: error: ") for line in lines), proc.stderr
    assert " started" not in proc.stderr
    assert proc.stdout == ""
    assert list(markers.iterdir()) == [], f"{path.name} started {[m.name for m in markers.iterdir()]}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c"], "trinit: check: option -c needs a value"),
        (["--config"], "trinit: check: option --config needs a value"),
        (["-c", ""], "trinit: check: option -c: the config path is empty"),
    ],
)
def test_check_usage_errors_say_what_is_wrong(args: list[str], message: str) -> None:
    out = subprocess.run([sys.executable, "-m", "trinit", "check", *args], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.splitlines()[0] == message


@pytest.mark.parametrize(
    ("env_text", "message"),
    [
        (
            "GOOD=1\nSECRET_HASH$6$abc\n",
            "line 2: expected KEY=value (the line is not shown: it may hold a secret)",
        ),
        (None, "cannot read the env file: No such file or directory"),
    ],
    ids=["bad-line", "missing"],
)
def test_a_bad_env_file_is_a_config_error_before_anything_starts(
    tmp_path: pathlib.Path, env_text: str | None, message: str
) -> None:
    """SPEC §4: env_file is checked before anything starts; the line's content is never shown."""
    if env_text is not None:
        (tmp_path / "app.env").write_text(env_text)
    marker = tmp_path / "side-started"
    (tmp_path / "trinit.toml").write_text(
        f"""
[process.side]
command = ["sh", "-c", "touch {marker}; sleep 5"]

[process.app]
command = ["true"]
main = true
env_file = "app.env"
after = {{ side = "started" }}
"""
    )
    proc = subprocess.run(
        [sys.executable, "-m", "trinit", "-c", "trinit.toml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f'trinit: error: trinit.toml: process "app": env_file: {tmp_path / "app.env"}: {message}'
    ]
    assert "SECRET_HASH" not in proc.stderr
    assert not marker.exists(), "nothing may start before the env files are checked"
