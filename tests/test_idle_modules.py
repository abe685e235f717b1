"""A feature's modules load only when a config uses it (idle RSS is mostly modules).

A whole run of the real CLI (config mode and zero-config) under ``python -X importtime``: every
module it imports, from the start to its exit, is named on stderr. A run of plain processes must
not load the modules of readiness, health checks, hooks, reloads, scheduled jobs, ``ctl`` commands,
output pumps, includes or commands given as strings; a run that uses some of them loads them (so
the check itself sees what it should).
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

#: Loaded only at their feature's door (tests/test_structure.py's LAZY_IMPORTS_ALLOWED says where).
FEATURE_MODULES = {
    "trinit.config.probes": "ready or health",
    "trinit.config.health": "health or watchdog",
    "trinit.config.hardening_keys": "a hardening key",
    "trinit.config.cron": "schedule",
    "trinit.config.diff": "a reload",
    "trinit.runtime.readiness": "a readiness probe",
    "trinit.runtime.health": "health or watchdog",
    "trinit.runtime.notify": "notify or fd readiness, or a watchdog",
    "trinit.runtime.notifier": "notify readiness or a watchdog",
    "trinit.runtime.hooks": "a hook",
    "trinit.runtime.ready_file": "ready_file",
    "trinit.runtime.reload": "a reload",
    "trinit.runtime.scheduler": "a scheduled job",
    "trinit.runtime.scheduled_job": "a scheduled job",
    "trinit.system.wallclock": "a scheduled job",
    "trinit.runtime.conversation": "a control connection",
    "trinit.runtime.commands": "a control connection",
    "trinit.runtime.steer": "a control connection or the library handle",
    "trinit.runtime.host": "a control connection, the library handle or a scheduled job (its Trigger)",
    "trinit.runtime.cascade": "a restart",
    "trinit.io.output": "output trinit reads (prefix, or a log probe)",
    "trinit.io.framing": "output trinit reads",
    "shlex": "a command given as a string",
    "glob": "include",
    "difflib": "a did-you-mean hint",
    "json": "a control connection, JSON logs or JSON output",
    "grp": "user or group",
    "pwd": "user or group",
}


def imported(args: list[str], cwd: Path) -> set[str]:
    """Every module a run of ``trinit ARGS`` imports, to its exit."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "trinit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert len(lines) > 100, proc.stderr[-3000:]
    return {line.rpartition("|")[2].strip() for line in lines}


def test_a_config_of_plain_processes_loads_no_feature_module(tmp_path: Path) -> None:
    config = tmp_path / "trinit.toml"
    config.write_text(
        f'[trinit]\ncontrol_socket = "{tmp_path}/ctl.sock"\n'
        '[process.a]\ncommand = ["true"]\noneshot = true\n'
        '[process.b]\ncommand = ["true"]\noneshot = true\nafter = ["a"]\n'
    )
    loaded = imported(["-c", str(config)], tmp_path)
    assert "trinit.runtime.supervisor" in loaded
    assert "trinit.runtime.control" in loaded  # the control socket was served
    assert {m: why for m, why in FEATURE_MODULES.items() if m in loaded} == {}


def test_zero_config_loads_no_feature_module(tmp_path: Path) -> None:
    loaded = imported(["--", "true"], tmp_path)
    assert "trinit.runtime.supervisor" in loaded
    assert {m: why for m, why in FEATURE_MODULES.items() if m in loaded} == {}
    assert "trinit.runtime.control" not in loaded  # no control socket unless asked for


def test_a_feature_in_use_loads_its_modules(tmp_path: Path) -> None:
    config = tmp_path / "trinit.toml"
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.toml").write_text(
        '[process.b]\ncommand = ["true"]\noneshot = true\nready = { file = "/" }\n'
    )
    config.write_text(
        '[trinit]\ncontrol_socket = false\ninclude = ["conf.d/*.toml"]\n'
        '[process.a]\ncommand = "true"\noneshot = true\noutput = "prefix"\npre_start = ["true"]\n'
        f'user = "{pwd.getpwuid(os.getuid()).pw_name}"\n'  # trinit's own user: allowed without root
    )
    loaded = imported(["-c", str(config)], tmp_path)
    expected = {
        "shlex",
        "glob",
        "trinit.config.probes",
        "trinit.runtime.readiness",
        "trinit.runtime.hooks",
        "trinit.io.output",
        "trinit.io.framing",
        "grp",
        "pwd",
    }
    assert expected <= loaded
    assert "trinit.config.health" not in loaded


def test_a_job_a_ready_fd_a_ready_file_and_a_control_connection_load_theirs(tmp_path: Path) -> None:
    config = tmp_path / "trinit.toml"
    ctl = [sys.executable, "-m", "trinit", "ctl", "--socket", str(tmp_path / "ctl.sock"), "status"]
    config.write_text(
        f'[trinit]\ncontrol_socket = "{tmp_path}/ctl.sock"\nready_file = "ready"\n'
        '[process.main]\ncommand = ["sleep", "1"]\nmain = true\n'
        '[process.job]\ncommand = ["true"]\noneshot = true\nevery = "1h"\n'
        '[process.fd]\ncommand = ["sh", "-c", "echo >&3"]\noneshot = true\nready = { fd = 3 }\n'
        f'[process.ctl]\ncommand = {json.dumps(ctl)}\noneshot = true\nafter = ["fd"]\n'
    )
    loaded = imported(["-c", str(config)], tmp_path)
    expected = {
        "trinit.runtime.scheduler",
        "trinit.runtime.scheduled_job",
        "trinit.runtime.notify",
        "trinit.runtime.ready_file",
        "trinit.runtime.conversation",
        "trinit.runtime.commands",
    }
    assert expected <= loaded
    assert "trinit.runtime.notifier" not in loaded  # a ready fd needs no sd_notify socket
