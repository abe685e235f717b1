"""Least privilege per process (SPEC §12), on the OS side: what trinit itself may grant, and
the exec chain that applies a process's hardening in the child before its program runs.

trinit has threads, so nothing may run in Python between fork and exec. ``umask`` is set by
subprocess's C helper; everything else is applied by small programs that each set one thing
and exec the next, all before the process's own program: coreutils ``nice``, util-linux
``choom`` (oom_score_adj), ``prlimit`` (rlimits) and ``setpriv`` (the user switch,
capabilities, no_new_privs). Each costs one exec (~1 ms, see bench/harden_spawn.py), paid
only by processes that use the key; a process without hardening keys spawns as before.

The order matters: the settings that need trinit's privileges (a lower nice, a lower
oom_score_adj, a higher hard limit) come first, while the chain still runs as trinit's user;
``setpriv`` comes last and switches the user, so a capability survives the switch as an
ambient one. This module imports nothing of the config (the config imports it).
"""

from __future__ import annotations

import functools
import os
import resource
from typing import TYPE_CHECKING

import attrs

from .._errors import TrinitError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..config.hardening import Hardening
    from .environ import Credentials

#: The capabilities by number (``capabilities(7)``), without ``CAP_``.
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip
CAP_NUMBERS = {name: number for number, name in enumerate(CAPABILITIES)}
CAP_SETPCAP, CAP_SYS_NICE, CAP_SYS_RESOURCE = 8, 23, 24

#: The limits of ``rlimits`` (prlimit's option names) and their resource numbers.
LIMITS = {
    "nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC, "core": resource.RLIMIT_CORE,
    "memlock": resource.RLIMIT_MEMLOCK, "stack": resource.RLIMIT_STACK, "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU, "fsize": resource.RLIMIT_FSIZE, "data": resource.RLIMIT_DATA,
    "msgqueue": resource.RLIMIT_MSGQUEUE, "nice": resource.RLIMIT_NICE,
    "rtprio": resource.RLIMIT_RTPRIO, "sigpending": resource.RLIMIT_SIGPENDING,
    "locks": 10,  # RLIMIT_LOCKS: the same number on every Linux architecture; Python has no name for it
}  # fmt: skip

#: Where the helper programs are looked for: never the child's PATH, which its config controls.
TOOL_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")
_PACKAGES = {"setpriv": "util-linux", "prlimit": "util-linux", "choom": "util-linux", "nice": "coreutils"}


class HardeningError(TrinitError):
    """A hardening key cannot be applied here (its helper program is missing)."""


@attrs.frozen
class Privileges:
    """What trinit itself has, so that a config asking for more is refused before anything starts.

    A field is None when it cannot be known (no /proc): the checks that need it are skipped.
    """

    euid: int
    permitted: int | None
    effective: int | None
    bounding: int | None
    last_cap: int | None
    nice: int
    #: RLIMIT_NICE's soft limit: an unprivileged process may lower its nice to 20 - this.
    nice_limit: int | None
    oom_score_adj: int | None
    nr_open: int | None
    #: Each limit's hard value (None: unlimited).
    hard: dict[str, int | None] = attrs.field(eq=False)

    def can(self, cap: int) -> bool:
        """Whether trinit's effective set holds ``cap`` (unknown counts as yes: checks stay quiet)."""
        return self.effective is None or bool(self.effective >> cap & 1)

    def has(self, cap: int) -> bool:
        """Whether trinit may pass ``cap`` on: in its permitted and bounding sets."""
        if self.permitted is None or self.bounding is None:
            return True
        return bool((self.permitted & self.bounding) >> cap & 1)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _number(path: str) -> int | None:
    text = _read(path)
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _unlimited(value: int) -> int | None:
    return None if value == resource.RLIM_INFINITY else value


def own_privileges() -> Privileges:
    """trinit's capabilities, nice, oom_score_adj and hard limits, read now."""
    status = _read("/proc/self/status") or ""
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)

    def mask(key: str) -> int | None:
        return int(fields[key], 16) if key in fields else None

    return Privileges(
        euid=os.geteuid(),
        permitted=mask("CapPrm"),
        effective=mask("CapEff"),
        bounding=mask("CapBnd"),
        last_cap=_number("/proc/sys/kernel/cap_last_cap"),
        nice=os.getpriority(os.PRIO_PROCESS, 0),
        nice_limit=_unlimited(resource.getrlimit(resource.RLIMIT_NICE)[0]),
        oom_score_adj=_number("/proc/self/oom_score_adj"),
        nr_open=_number("/proc/sys/fs/nr_open"),
        hard={name: _unlimited(resource.getrlimit(number)[1]) for name, number in LIMITS.items()},
    )


def _thread_nice() -> int:
    """The calling thread's nice value (per thread on Linux), which a child forked by it inherits."""
    return os.getpriority(os.PRIO_PROCESS, 0)


@functools.cache
def _can_narrow_bounding_set() -> bool:
    """CAP_SETPCAP in trinit's effective set (read from /proc once: trinit never gains or drops
    capabilities; unknown: no)."""
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SETPCAP & 1)
    return False


def find_tool(name: str) -> str | None:
    """The helper program ``name`` in :data:`TOOL_DIRS`, or None."""
    for folder in TOOL_DIRS:
        path = os.path.join(folder, name)
        if os.access(path, os.X_OK):
            return path
    return None


def tools_needed(hardening: Hardening, switches_user: bool) -> list[tuple[str, str]]:
    """The helper programs a process needs, in chain order, each with the key that needs it."""
    tools = []
    if hardening.nice is not None:
        tools.append(("nice", "nice"))
    if hardening.oom_score_adj is not None:
        tools.append(("choom", "oom_score_adj"))
    if hardening.rlimits:
        tools.append(("prlimit", "rlimits"))
    if hardening.capabilities is not None:
        tools.append(("setpriv", "capabilities"))
    elif hardening.no_new_privileges:
        tools.append(("setpriv", "no_new_privileges"))
    elif switches_user and tools:
        tools.append(("setpriv", tools[0][1]))  # so that the ones before it still run as root
    return tools


def missing_tool_message(tool: str, key: str) -> str:
    package = _PACKAGES[tool]
    return (
        f"{key}: needs the program {tool} (from {package}), which is not installed "
        f"(looked in {', '.join(TOOL_DIRS)}); install {package}, or remove {key}"
    )


_found: dict[str, str] = {}


def _tool(tool: str, key: str) -> str:
    """The helper's path, looked up once while it stays there (one access() per spawn)."""
    path = _found.get(tool)
    if path is None or not os.access(path, os.X_OK):
        path = find_tool(tool)
        if path is None:
            raise HardeningError(missing_tool_message(tool, key))
        _found[tool] = path
    return path


def _limit(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


def wrap(
    path: str, argv: Sequence[str], creds: Credentials | None, hardening: Hardening
) -> tuple[str, list[str], Credentials | None, int]:
    """The program to exec, its argv, the credentials subprocess still has to switch to, and
    the umask (-1: unchanged) that apply ``hardening`` before ``path`` runs.

    Without helpers (only ``umask``) that is the process itself. Otherwise the argv is the
    chain of helpers, each ending its options with ``--``, then ``path`` and the arguments
    (``path`` is argv[0] then). Raises HardeningError when a helper is missing.
    """
    umask = -1 if hardening.umask is None else hardening.umask
    chain: list[str] = []
    for tool, key in tools_needed(hardening, creds is not None):
        if tool == "nice":  # coreutils nice adds to the nice value it inherits (the main thread's)
            assert hardening.nice is not None
            adjust = hardening.nice - _thread_nice()
            if adjust:
                chain += [_tool(tool, key), f"--adjustment={adjust}", "--"]
            continue
        chain.append(_tool(tool, key))
        if tool == "choom":
            chain += ["-n", str(hardening.oom_score_adj)]
        elif tool == "prlimit":
            chain += [f"--{name}={_limit(soft)}:{_limit(hard)}" for name, soft, hard in hardening.rlimits]
        else:
            chain += _setpriv_options(hardening, creds)
            creds = None
        chain.append("--")
    if not chain:
        return path, list(argv), creds, umask
    return chain[0], [*chain, path, *argv[1:]], creds, umask


def _setpriv_options(hardening: Hardening, creds: Credentials | None) -> list[str]:
    """setpriv's options: the user switch (setpriv keeps the permitted set across it, so the
    capabilities can be raised as ambient ones after it), the capabilities, no_new_privs."""
    options = []
    if creds is not None:
        groups = ",".join(str(g) for g in creds.groups)
        options += [f"--regid={creds.gid}", f"--reuid={creds.uid}", f"--groups={groups}"]
    caps = hardening.capabilities
    if caps is not None:
        listed = "-all" + "".join(f",+{c.lower()}" for c in caps)
        options += [f"--inh-caps={listed}", f"--ambient-caps={listed}"]
        if _can_narrow_bounding_set():  # without it the bounding set cannot be narrowed
            options.append(f"--bounding-set={listed}")
    elif creds is not None and creds.uid != 0:  # a non-root user keeps no capability
        options += ["--inh-caps=-all", "--ambient-caps=-all"]
    if hardening.no_new_privileges:
        options.append("--no-new-privs")
    return options
