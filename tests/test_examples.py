"""Static checks of the shipped examples (no container engine needed), and a run of the provisioner
example's programs by hand, without trinit, to show they work on their own."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "provisioner"
CONFIG = EXAMPLE / "trinit.toml"
DOCKERFILE = ROOT / "Dockerfile.example"
POD = ROOT / "examples" / "kubernetes" / "pod.yaml"

# The keys of SPEC §4 (and §9's health and watchdog).
TRINIT_KEYS = {"shutdown_timeout", "log_format", "ready_file"}
PROCESS_KEYS = {
    "command", "shell", "main", "oneshot", "after", "ready", "restart", "restart_delay", "restart_delay_max",
    "restart_reset_after", "max_restarts", "on_failure", "success_codes", "timeout", "retries", "phase",
    "stop_signal", "stop_timeout", "signal_group", "forward_signals", "cwd", "env", "env_file", "inherit_env",
    "user", "group", "output", "schedule", "every", "jitter", "overlap", "run_on_start", "health", "watchdog",
}  # fmt: skip
READY_KINDS = {"exec", "tcp", "http", "file", "log", "notify", "fd"}
READY_KEYS = READY_KINDS | {"interval", "attempt_timeout", "timeout"}


def seconds(value: Any) -> float:
    """A SPEC §4 duration: a number of seconds, or a string with a unit."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", value)
    assert match, f"bad duration {value!r}"
    return float(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    with open(CONFIG, "rb") as f:
        return tomllib.load(f)


# -- examples/provisioner/trinit.toml ------------------------------------------------------------------


def test_config_uses_only_spec_keys(config: dict[str, Any]) -> None:
    assert set(config) <= {"trinit", "process"}
    assert set(config["trinit"]) <= TRINIT_KEYS
    for name, process in config["process"].items():
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", name)
        assert set(process) <= PROCESS_KEYS, f"{name}: unknown keys {set(process) - PROCESS_KEYS}"
        if "ready" in process:
            ready = process["ready"]
            assert set(ready) <= READY_KEYS
            assert len(set(ready) & READY_KINDS) == 1, f"{name}: ready needs exactly one probe"


def test_config_wiring(config: dict[str, Any]) -> None:
    procs = config["process"]
    assert set(procs) == {"app", "cache", "provision", "snapshot", "flush"}
    assert [name for name, p in procs.items() if p.get("main")] == ["app"]

    app, cache, provision, flush = procs["app"], procs["cache"], procs["provision"], procs["flush"]
    assert app["after"] == {"cache": "ready"}
    assert "http" in app["ready"] or "tcp" in app["ready"]
    for key in ("oneshot", "restart", "retries", "phase", "on_failure"):
        assert key not in app, f"{key} is an error on main"

    assert cache["restart"] == "on-failure"
    assert "tcp" in cache["ready"]
    assert "after" not in cache

    assert provision["oneshot"] is True
    assert provision["after"] == {"app": "ready"}
    assert provision["retries"] >= 1
    assert seconds(provision["timeout"]) > 0
    assert provision.get("phase", "run") == "run"

    snapshot = procs["snapshot"]
    assert snapshot["oneshot"] is True
    assert seconds(snapshot["every"]) >= 60 and seconds(snapshot["jitter"]) < seconds(snapshot["every"])
    assert snapshot["run_on_start"] is True
    assert snapshot["after"] == {"cache": "ready"}  # gates its first run
    assert "on_failure" not in snapshot  # "ignore", the default of a scheduled job
    assert snapshot["env"]["CACHE_PORT"] == cache["env"]["CACHE_PORT"]

    assert flush["oneshot"] is True
    assert flush["phase"] == "stop"
    assert flush["after"] == ["app"]  # stop jobs' `after` holds names only
    assert seconds(flush["timeout"]) > 0

    for p in procs.values():
        assert p.get("output") == "prefix"
    assert config["trinit"]["ready_file"].startswith("/")


def test_config_ports_match_probes(config: dict[str, Any]) -> None:
    """Probes are not expanded (SPEC §4), so the ports the programs get must be the probed ones."""
    procs = config["process"]
    app_port = procs["app"]["env"]["PORT"]
    cache_port = procs["cache"]["env"]["CACHE_PORT"]
    assert procs["app"]["ready"]["http"] == f"http://127.0.0.1:{app_port}/healthz"
    assert procs["cache"]["ready"]["tcp"] == f"127.0.0.1:{cache_port}"
    assert procs["app"]["health"]["http"] == procs["app"]["ready"]["http"]
    assert procs["cache"]["health"]["tcp"] == procs["cache"]["ready"]["tcp"]
    assert procs["app"]["health"]["action"] != "restart"  # an error on main
    assert procs["app"]["env"]["CACHE_PORT"] == cache_port
    assert procs["flush"]["env"]["CACHE_PORT"] == cache_port


def test_config_commands_exist_and_expansions_have_defaults(config: dict[str, Any]) -> None:
    for name, p in config["process"].items():
        argv = p["command"]
        assert isinstance(argv, list) and argv[0] == "python3", name
        assert (EXAMPLE / argv[1]).is_file(), f"{name}: {argv[1]} missing"
        assert p["cwd"] in (".", "${APP_DIR:-.}"), name  # relative to the config's folder
        for value in [*argv, p["cwd"], *p.get("env", {}).values()]:
            for var in re.findall(r"\$\{([^}]*)\}", value):
                assert ":-" in var, f"{name}: ${{{var}}} has no default: the example must run with no env"


def test_config_stop_path_fits_budget(config: dict[str, Any]) -> None:
    """The longest stop path (provision, app, flush, snapshot, cache) fits inside shutdown_timeout."""
    procs = config["process"]
    budget = seconds(config["trinit"]["shutdown_timeout"])
    path = (
        seconds(procs["provision"].get("stop_timeout", 5))
        + seconds(procs["app"].get("stop_timeout", 5))
        + seconds(procs["flush"]["timeout"])
        + seconds(procs["snapshot"].get("stop_timeout", 5))
        + seconds(procs["cache"].get("stop_timeout", 5))
    )
    assert path < budget


def test_config_loads_with_trinit(monkeypatch: pytest.MonkeyPatch) -> None:
    import trinit

    load_config = getattr(trinit, "load_config", None)
    if load_config is None:
        pytest.skip("trinit.load_config is not there yet")
    for var in ("APP_DIR", "TENANT", "TRINIT_EXAMPLE_DIR"):
        monkeypatch.delenv(var, raising=False)
    cfg = load_config(str(CONFIG))
    names = {p.name for p in cfg.processes}
    assert names == {"app", "cache", "provision", "snapshot", "flush"}


def test_trinit_check_accepts_example() -> None:
    script = Path(sys.executable).with_name("trinit")
    exe = str(script) if script.exists() else shutil.which("trinit")
    if importlib.util.find_spec("trinit.boot.main") is None:
        pytest.skip("the trinit CLI is not there yet")
    if exe is None:
        pytest.skip("no trinit console script")
    result = subprocess.run([exe, "check", "-c", str(CONFIG)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "warn" not in (result.stdout + result.stderr).lower(), result.stdout + result.stderr
    for name in ("app", "cache", "provision", "snapshot", "flush"):
        assert name in result.stdout + result.stderr
    assert "Scheduled jobs (the next three fire times" in result.stdout


# -- Dockerfile.example --------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and `\\` continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending
    return instructions


def test_dockerfile() -> None:
    instructions = dockerfile_instructions()
    by_kind: dict[str, list[str]] = {}
    for keyword, args in instructions:
        by_kind.setdefault(keyword, []).append(args)

    assert by_kind["FROM"] == ["python:3.12-slim"]

    (entrypoint,) = by_kind["ENTRYPOINT"]
    argv = json.loads(entrypoint)  # exec form: a JSON array, so trinit is PID 1
    assert isinstance(argv, list) and argv[0] == "trinit"
    assert argv[-1] == "--"
    config_path = argv[argv.index("-c") + 1]

    (cmd,) = by_kind["CMD"]
    cmd_argv = json.loads(cmd)
    assert cmd_argv[0] == "python3" and cmd_argv[-1].endswith("app.py")

    runs = " ".join(by_kind["RUN"])
    assert "pip install" in runs
    assert "compileall" in runs

    copies = [args.split() for args in by_kind["COPY"]]
    assert ["examples/provisioner/trinit.toml", config_path] in copies
    assert any(c[0] == "examples/provisioner/" for c in copies)
    app_dir = next(c[1] for c in copies if c[0] == "examples/provisioner/").rstrip("/")
    assert cmd_argv[-1] == f"{app_dir}/app.py"
    envs = " ".join(by_kind["ENV"])
    assert f"APP_DIR={app_dir}" in envs  # the config's cwd = "${APP_DIR:-.}"

    assert by_kind["STOPSIGNAL"] == ["SIGTERM"]
    (healthcheck,) = by_kind["HEALTHCHECK"]
    assert healthcheck.endswith('CMD ["trinit", "probe", "live"]')  # exec form: no shell needed
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["trinit", "--"]' in text  # the zero-config form, in a comment
    assert "shutdown_timeout" in text


# -- examples/kubernetes/pod.yaml ----------------------------------------------------------------------


def yaml_block(lines: list[str], key: str) -> list[str]:
    """The lines nested under the first `key:` line (by indentation)."""
    for i, line in enumerate(lines):
        if line.strip().startswith(f"{key}:"):
            indent = len(line) - len(line.lstrip())
            block = []
            for nested in lines[i + 1 :]:
                if nested.strip() and len(nested) - len(nested.lstrip()) <= indent:
                    break
                block.append(nested)
            return block
    raise AssertionError(f"no {key}: in {POD}")


def pod_env(lines: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    name = None
    for line in yaml_block(lines, "env"):
        text = line.split("#", 1)[0].strip()
        if text.startswith("- name:"):
            name = text.split(":", 1)[1].strip()
        elif text.startswith("value:") and name:
            env[name] = text.split(":", 1)[1].strip().strip("\"'")
            name = None
    return env


def test_pod_grace_matches_shutdown_timeout(config: dict[str, Any]) -> None:
    lines = POD.read_text().splitlines()
    (grace_line,) = [line for line in lines if line.strip().startswith("terminationGracePeriodSeconds:")]
    grace = int(grace_line.split(":", 1)[1].split("#")[0])
    env = pod_env(lines)
    shutdown_timeout = float(env.get("TRINIT_SHUTDOWN_TIMEOUT", config["trinit"]["shutdown_timeout"]))
    assert grace >= shutdown_timeout + 1
    assert grace <= shutdown_timeout + 5  # a budget much shorter than the grace wastes it


def test_pod_probes_ask_trinit(config: dict[str, Any]) -> None:
    lines = POD.read_text().splitlines()
    readiness = "\n".join(yaml_block(lines, "readinessProbe"))
    assert 'command: ["trinit", "probe", "ready"]' in readiness
    liveness = "\n".join(yaml_block(lines, "livenessProbe"))
    assert 'command: ["trinit", "probe", "live"]' in liveness
    assert config["trinit"]["ready_file"] in POD.read_text()  # named as the file-based alternative
    text = POD.read_text()
    assert "command:" not in text.split("containers:", 1)[1].split("readinessProbe:", 1)[0], (
        "command: would replace the image's ENTRYPOINT, so trinit would not be PID 1"
    )
    assert "image: trinit-example" in text


# -- examples/kubernetes/hardened.toml with the pod's securityContext -----------------------------------

HARDENED = ROOT / "examples" / "kubernetes" / "hardened.toml"


def test_hardened_config_is_the_example_with_hardening_keys(config: dict[str, Any]) -> None:
    with open(HARDENED, "rb") as f:
        hardened = tomllib.load(f)
    assert hardened["trinit"] == config["trinit"]
    hardening = {"user", "umask", "no_new_privileges", "capabilities", "rlimits", "oom_score_adj", "nice"}
    for name, table in config["process"].items():
        keys = hardened["process"][name]
        assert {k: v for k, v in keys.items() if k not in hardening} == table, name
        assert keys["user"] == "nobody" and keys["no_new_privileges"] is True, name
    assert hardened["process"].keys() == config["process"].keys()


def test_hardened_config_loads_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    import trinit

    if os.geteuid() != 0:
        pytest.skip("switching to user nobody is checked against trinit's privileges: needs root")
    for var in ("APP_DIR", "TENANT", "TRINIT_EXAMPLE_DIR"):
        monkeypatch.delenv(var, raising=False)
    cfg = trinit.load_config(str(HARDENED))
    cache = cfg.process("cache")
    assert (cache.umask, cache.capabilities, cache.oom_score_adj) == ("0027", (), 1000)


def test_pod_security_context_gives_trinit_what_hardened_toml_hands_out() -> None:
    text = POD.read_text()
    context = "\n".join(yaml_block(text.splitlines(), "securityContext"))
    assert "allowPrivilegeEscalation: false" in context
    assert 'drop: ["ALL"]' in context
    (added,) = re.findall(r"add: (\[.*\])", context)
    granted = set(json.loads(added))
    with open(HARDENED, "rb") as f:
        processes = tomllib.load(f)["process"].values()
    needed = {"KILL"}  # signals to processes of another user
    for table in processes:
        if "user" in table or "group" in table:
            needed |= {"SETUID", "SETGID"}
        listed = {c.upper().removeprefix("CAP_") for c in table.get("capabilities", [])}
        needed |= listed
        if listed and "user" not in table:
            needed.add("SETPCAP")  # a root process keeping only its list
    assert needed <= granted, f"pod.yaml must add {sorted(needed - granted)}"
    assert "configMap:" in text and "name: trinit-hardened" in text  # how to mount it, commented


# -- the example's programs, by hand, without trinit ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            result = predicate()
            if result:
                return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def can_connect(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def http_get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
        return response.status, response.read().decode()


def test_programs_by_hand(tmp_path: Path) -> None:
    port, cache_port = free_port(), free_port()
    env = {
        **os.environ,
        "TRINIT_EXAMPLE_DIR": str(tmp_path),
        "PORT": str(port),
        "CACHE_PORT": str(cache_port),
        "RECORD_INTERVAL": "0.05",
    }
    env.pop("HOST", None)

    def start(script: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, script], cwd=EXAMPLE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip

    def run(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, script], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=20
        )

    cache = start("cache.py")
    app: subprocess.Popen[str] | None = None
    try:
        wait_until(lambda: can_connect(cache_port), what="the cache")
        app = start("app.py")
        wait_until(lambda: http_get(port, "/healthz")[0] == 200, what="/healthz")
        assert "not provisioned" in http_get(port, "/")[1]

        result = run("provision.py")
        assert result.returncode == 0, result.stderr
        assert "acknowledged by the app" in result.stdout
        assert "provisioned (" in http_get(port, "/")[1]
        wait_until(lambda: (tmp_path / "spool.jsonl").read_text().count("\n") >= 3, what="spooled records")

        refused = run("flush.py")  # the app still runs: flush refuses
        assert refused.returncode == 1 and "still running" in refused.stderr

        started = time.monotonic()
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=5) == 0
        assert time.monotonic() - started < 1.0
        assert app.stdout is not None
        assert "SIGTERM received" in app.stdout.read()

        flushed = run("flush.py")
        assert flushed.returncode == 0, flushed.stderr

        for _ in range(7):  # the scheduled job's program: a snapshot of the cache, the newest 5 kept
            snap = run("snapshot.py")
            assert snap.returncode == 0, snap.stderr
            assert "snapshot: saved " in snap.stdout
        snapshots = sorted((tmp_path / "snapshots").glob("cache-*.json"))
        assert 1 <= len(snapshots) <= 5
        assert "spool:summary" in json.loads(snapshots[-1].read_text())

        cache.send_signal(signal.SIGTERM)
        assert cache.wait(timeout=5) == 0
    finally:
        for proc in (app, cache):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

    data = json.loads((tmp_path / "cache.json").read_text())
    summary = json.loads(data["spool:summary"])
    assert summary["records"] >= 3 and summary["clean_end"] is True
    assert int(data["app:requests"]) == 2
    assert not (tmp_path / "spool.jsonl").exists()
    assert not (tmp_path / "app.sock").exists()

    failed = run("provision.py")  # nothing listens any more
    assert failed.returncode == 1 and "cannot connect to the app" in failed.stderr
    failed = run("snapshot.py")
    assert failed.returncode == 1 and "cannot read the cache" in failed.stderr
