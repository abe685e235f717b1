"""The public API is typed for users: a program using it passes ``mypy --strict``, and a
program misusing it is caught (so the types are real, not ``Any``).

mypy cannot follow setuptools' editable-install import hook, so the package is found through
MYPYPATH (the repository root); ``--follow-imports=silent`` treats trinit like an installed
package: its own code is type-checked for the user's program but not reported on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import trinit

ROOT = Path(trinit.__file__).resolve().parent.parent

pytest.importorskip("mypy")

USER_PROGRAM = '''
"""A small user program: load or build a config, supervise it, look at it, wait for it."""

from __future__ import annotations

import signal
import sys

import trio

import trinit


def build() -> trinit.Config:
    try:
        return trinit.load_config("trinit.toml")
    except trinit.ConfigError as exc:
        problems: list[str] = exc.errors
        print("\\n".join(problems), file=sys.stderr)
    web = trinit.ProcessSpec(
        name="web",
        command=["python3", "-m", "http.server", "8080"],
        ready={"tcp": "127.0.0.1:8080", "timeout": 10},
        stop_timeout="2s",
        restart="on-failure",
    )
    job = trinit.ProcessSpec(name="job", command="sh -c 'echo hi'", oneshot=True, after={"web": "ready"})
    main = trinit.ProcessSpec(name="main", command=["sleep", "5"], main=True, after=["web"])
    return trinit.Config(processes=[web, job, main], shutdown_timeout=9)


async def supervise(config: trinit.Config) -> int:
    async with trinit.open_supervisor(config) as sup:
        await sup.wait_ready("web")
        statuses: dict[str, trinit.ProcessStatus] = sup.status()
        for name, status in statuses.items():
            pid: int | None = status.pid
            restarts: int = status.restarts
            last: trinit.ExitStatus | None = status.last_exit
            code: int | None = last.exit_code if last is not None else None
            print(name, status.state, pid, restarts, code)
        try:
            sup.send_signal("web", signal.SIGHUP)
        except ProcessLookupError:
            pass
        await sup.restart("web")
        await sup.stop("web")
        exit_code: int = await sup.wait()
        return exit_code


def main() -> int:
    config = build()
    code: int = trio.run(supervise, config)
    if code:
        return code
    return trinit.run(config, handle_signals=True, reap_orphans=False)


if __name__ == "__main__":
    sys.exit(main())
'''

MISUSE = """
from __future__ import annotations

import trinit


async def bad(config: trinit.Config) -> None:
    async with trinit.open_supervisor(config) as sup:
        sup.send_signal(1, "HUP")
        name: str = sup.status()["web"].pid
        await sup.wait_ready()
        trinit.open_supervisor(config, handle_signal=True)
"""


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    program = tmp_path / "program.py"
    program.write_text(textwrap.dedent(source))
    env = dict(os.environ, MYPYPATH=str(ROOT))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            "--config-file",
            os.devnull,
            str(program),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )


def test_a_user_program_passes_mypy_strict(tmp_path: Path) -> None:
    result = _mypy(tmp_path, USER_PROGRAM)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_misuse_of_the_api_is_a_type_error(tmp_path: Path) -> None:
    result = _mypy(tmp_path, MISUSE)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert out.count("error:") >= 5, out
    for needle in ('"send_signal"', "Incompatible types in assignment", '"wait_ready"', '"handle_signal"'):
        assert needle in out, out
