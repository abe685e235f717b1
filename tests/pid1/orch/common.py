"""Helpers of the orchestration tests (on top of ../helpers.py).

* :func:`toml_config` writes a config from Python values.
* :class:`Events` reads the ``EVENT <ns> NAME WHAT`` lines that ``kid.py`` children append to
  one file, and builds their argv.
* :class:`OrchHarness` runs ``trinit -c CONFIG`` as PID 1 of fresh PID (and, by default,
  network) namespaces: ``unshare --pid --fork --mount-proc --net sh -c 'ip link set lo up &&
  exec trinit ...'``, so fixed ports never clash; ``sh`` execs trinit, which stays PID 1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from ..helpers import (
    PY,
    SLOW,
    TRINIT,
    Harness,
    Trinit,
    clean_env,
    needs_own_socket,
    read_status,
    require_namespaces,
    sig_mask,
    wait_for,
)

KID = Path(__file__).resolve().with_name("kid.py")
NET_SETUP = 'ip link set lo up && exec "$@"'


# --- configs ------------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Iterable):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def toml_config(processes: Mapping[str, Mapping[str, Any]], **trinit: Any) -> str:
    """``{name: {key: value}}`` (and the ``[trinit]`` keys) as TOML text."""
    out: list[str] = []
    if trinit:
        out.append("[trinit]")
        out += [f"{k} = {toml_value(v)}" for k, v in trinit.items()]
        out.append("")
    for name, keys in processes.items():
        out.append(f"[process.{name}]")
        out += [f"{k} = {toml_value(v)}" for k, v in keys.items()]
        out.append("")
    return "\n".join(out)


# --- events -------------------------------------------------------------------------------


class Event(NamedTuple):
    ns: int
    name: str
    what: str


class Events:
    """The events file of one test (``kid.py`` children append to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def kid(self, name: str, *actions: object) -> list[str]:
        return [PY, str(KID), str(self.path), name, *(str(a) for a in actions)]

    def read(self) -> list[Event]:
        out = []
        for line in self.path.read_text().splitlines():
            parts = line.split(" ", 3)
            if len(parts) == 4 and parts[0] == "EVENT":
                out.append(Event(int(parts[1]), parts[2], parts[3]))
        return out

    def of(self, name: str, what: str = "") -> list[Event]:
        """Events of NAME whose WHAT starts with ``what``, in order."""
        return [e for e in self.read() if e.name == name and e.what.startswith(what)]

    def t(self, name: str, what: str, index: int = 0) -> int:
        found = self.of(name, what)
        assert len(found) > index, f"no event #{index} {name!r} {what!r}; events:\n{self.dump()}"
        return found[index].ns

    def wait(
        self, name: str, what: str, count: int = 1, timeout: float = SLOW, run: Trinit | None = None
    ) -> list[Event]:
        def seen() -> list[Event] | None:
            if run is not None and not run.running() and len(self.of(name, what)) < count:
                pytest.fail(
                    f"trinit exited ({run.proc.returncode}) before {count} x {name} {what!r}:\n"
                    f"{run.stderr()}\nevents:\n{self.dump()}"
                )
            got = self.of(name, what)
            return got if len(got) >= count else None

        return list(
            wait_for(seen, timeout, message=lambda: f"{count} x {name} {what!r}; events:\n{self.dump()}")
        )

    def dump(self) -> str:
        return self.path.read_text()


# --- the harness ----------------------------------------------------------------------------


class OrchHarness(Harness):
    """Harness.start with a config file and, by default, a network namespace of its own."""

    def run_config(
        self,
        config: str,
        *args: str,
        net: bool = True,
        env: dict[str, str] | None = None,
        folder: Path | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> Trinit:
        folder = folder or self.tmp
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"trinit-{self._count + 1}.toml"
        path.write_text(config)
        return self.start_net(["-c", str(path), *args], net=net, env=env, preexec_fn=preexec_fn)

    def start_net(
        self,
        args: Iterable[str],
        *,
        net: bool = True,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> Trinit:
        require_namespaces()
        self._count += 1
        args = list(args)
        if "-c" in args and needs_own_socket(args, env):  # each config run's socket in its own folder
            env = {**(env or {}), "TRINIT_CONTROL_SOCKET": str(self.tmp / f"ctl-{self._count}.sock")}
        stderr_path = self.tmp / f"trinit-{self._count}.stderr"
        stdout_path = self.tmp / f"trinit-{self._count}.stdout"
        argv = ["unshare", "--pid", "--fork", "--mount-proc"]
        if net:
            argv += ["--net", "sh", "-c", NET_SETUP, "sh"]
        argv += [TRINIT, *args]
        with open(stderr_path, "wb") as err, open(stdout_path, "wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=clean_env(env),
                cwd=self.tmp,
                preexec_fn=preexec_fn,
            )
        run = Trinit(proc, pid1=True, stderr_path=stderr_path, stdout_path=stdout_path)
        self.runs.append(run)
        return run


def orch_fixture() -> Any:
    """A fixture giving an :class:`OrchHarness` in tmp_path (after the ``pid1`` check of conftest)."""

    @pytest.fixture
    def h(tmp_path: Path, pid1: None) -> Any:
        harness = OrchHarness(tmp_path)
        try:
            yield harness
        finally:
            harness.close()

    return h


def wait_trinit(run: Trinit) -> int:
    """trinit's pid once it runs trinit (not unshare, not sh) and handles SIGTERM."""
    pid = run.pid
    python = os.path.realpath(PY)

    def up() -> bool:
        if not run.running():
            pytest.fail(f"trinit exited ({run.proc.returncode}) while starting:\n{run.stderr()}")
        try:
            if os.readlink(f"/proc/{pid}/exe") != python:
                return False
        except OSError:
            return False
        return signal.SIGTERM in sig_mask(read_status(pid).get("SigCgt", "0"))

    wait_for(up, message="trinit to handle signals")
    return pid


def log_line(run: Trinit, pattern: str) -> str:
    """The first line of trinit's log matching the regex ``pattern`` (fails if none)."""
    for line in run.log_lines():
        if re.search(pattern, line):
            return line
    pytest.fail(f"no log line matches {pattern!r}; log:\n{run.stderr()}")


def wait_log(run: Trinit, pattern: str, timeout: float = SLOW) -> str:
    def seen() -> str | None:
        for line in run.log_lines():
            if re.search(pattern, line):
                return line
        if not run.running():
            pytest.fail(f"trinit exited ({run.proc.returncode}) before logging {pattern!r}:\n{run.stderr()}")
        return None

    return str(wait_for(seen, timeout, message=lambda: f"log line {pattern!r}; log:\n{run.stderr()}"))


def now_ns() -> int:
    return time.monotonic_ns()


def secs(ns: int) -> float:
    return ns / 1e9
