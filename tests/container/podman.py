"""A thin harness over the podman CLI: the container runtime drives trinit from outside.

Every command is bounded; every container a test starts is removed when the test ends. Test programs
are bind-mounted read-only at /t (``scripts/``) and each test's tmp_path at /out, where they report.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
#: The base image Dockerfile.example names; .ci/container-setup builds it from Debian.
BASE_IMAGE = "docker.io/library/python:3.12-slim"
#: Dockerfile.example built unmodified from this checkout (tagged per checkout, so that two
#: checkouts on one machine never test each other's build).
IMAGE = f"localhost/trinit-example:test-{hashlib.sha256(str(REPO).encode()).hexdigest()[:12]}"
#: Generous bound for anything that should take well under a second.
SLOW = 20.0


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one podman command; fail the test with its output if it fails (unless ``check`` is off)."""
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def unavailable() -> str | None:
    """None when this machine can run the suite, else why not."""
    if os.geteuid() != 0:
        return "needs root for podman with runc and the debootstrapped base image"
    if shutil.which("podman") is None:
        return "needs podman and runc (run .ci/container-setup as root)"
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        return f"needs the base image {BASE_IMAGE} (run .ci/container-setup as root)"
    return None


def wait_for(what: Callable[[], Any], timeout: float = SLOW, message: str | Callable[[], str] = "") -> Any:
    """Poll ``what`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            pytest.fail(f"timed out after {timeout} s waiting for {text or what}")
        time.sleep(0.02)


class Container:
    """One detached container: its name, and the runtime's commands against it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def exec(self, *argv: str, timeout: float = SLOW) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *argv, timeout=timeout, check=False)

    def kill(self, signal: str) -> None:
        podman("kill", "-s", signal, self.name, timeout=SLOW)

    def stop(self, grace: int = 10) -> float:
        """``podman stop -t GRACE``; the seconds it took."""
        start = time.monotonic()
        podman("stop", "-t", str(grace), self.name, timeout=grace + SLOW)
        return time.monotonic() - start

    def running(self) -> bool:
        done = podman("inspect", "-f", "{{.State.Running}}", self.name, check=False)
        return done.stdout.strip() == "true"

    def exit_code(self) -> int:
        wait_for(lambda: not self.running(), message=f"container {self.name} to end")
        return int(podman("inspect", "-f", "{{.State.ExitCode}}", self.name).stdout)

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr


@contextmanager
def container(
    out: Path, *args: str, entrypoint: list[str] | None = None, options: Sequence[str] = ()
) -> Iterator[Container]:
    """``podman run -d [OPTIONS]`` IMAGE (ARGS are the CMD), /t and /out mounted; removed afterwards."""
    name = f"trinit-test-{uuid.uuid4().hex[:12]}"
    options = ["--name", name, *run_options(out), *options]
    if entrypoint is not None:
        options += ["--entrypoint", json.dumps(entrypoint)]  # exec form: a JSON array
    podman("run", "-d", *options, IMAGE, *args, timeout=60)
    try:
        yield Container(name)
    finally:
        podman("rm", "-f", "-t", "0", name, check=False, timeout=60)


def run_options(out: Path) -> list[str]:
    """The mounts and network of ``container``, for a ``podman run`` the test drives itself."""
    return ["--network=none", "-v", f"{SCRIPTS}:/t:ro", "-v", f"{out}:/out"]
