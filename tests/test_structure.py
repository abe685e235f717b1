"""The shape of the package, checked from its source (like trio's ``test_exports.py``).

No import cycles, no module over 400 lines, imports inside functions only where the fast
start needs them, only ``trinit/system/`` touching processes and fds, and the public
surface of ``trinit`` and ``trinit.testing`` pinned.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_public_api import PUBLIC

import trinit
import trinit.testing

PACKAGE = Path(trinit.__file__).parent
MAX_LINES = 400

#: Modules that may import inside functions, and why. Everything else imports at the top.
LAZY_IMPORTS_ALLOWED = {
    # Run by the fast start before the main process is spawned: every import there delays
    # the child, so anything not needed for `trinit -- CMD` is imported where it is used.
    "trinit": "PEP 562: `import trinit` loads a public name on its first use",
    "trinit.boot.main": "the fast start: runtime, config and RealOS only on the paths that use them",
    "trinit.boot.argv": "the fast start: the duration and signal parsers only when an option has a value",
    "trinit.boot.signals": "the fast start: blocks signals before anything else is imported",
    "trinit.boot.parse": "the fast start: parses option values",
    "trinit.boot.overrides": "imported by the fast start; attrs and the config model only after the spawn",
    "trinit.system.real": "the fast start builds a RealOS (subreaper, pdeathsig) before the spawn: "
    "its launch helper, subprocess, resource and ctypes only in the methods that use them",
    "trinit.system.spawning": "RealOS's spawning half, which the fast start loads too: the launch "
    "helper, the hardening chain, resource and the ctypes batch spawner only when a spawn needs them",
    # Run after the spawn but before trio: a config error is reported without loading trio.
    "trinit.io.writer": "the logger writes before trio is loaded; only FdWriter.put (in trio) imports it",
    "trinit.runtime.run": "boot.main calls run_cli before trio is loaded; trio and the runtime "
    "only once the config is good",
    # A feature's heavy modules, loaded at its one door only by a config that uses it (idle RSS).
    "trinit.config.values": "did_you_mean / shell_words: difflib only when a hint is made, shlex only "
    "for a command given as a string",
    "trinit.config.schedule": "parse_schedule / zone_problem: config/cron (cronsim, zoneinfo, "
    "datetime) only for a config with a cron schedule",
    "trinit.config.validate": "check_process: config/probes and config/health only for a process "
    "with ready, health or watchdog; grp and pwd only for one with user or group",
    "trinit.system.environ": "resolve_credentials: grp and pwd only for a process with user or group",
    "trinit.runtime.supervisor": "Runtime.probe / hooks / health / reloader: runtime/readiness, hooks, "
    "health and reload only for a process with a probe, a hook, health or a watchdog, or a reload; "
    "runtime/steer with the first operation of the library handle, runtime/cascade with the first restart, "
    "runtime/control only when the control socket is on, runtime/ready_file only with a ready_file, "
    "runtime/scheduler with the first scheduled job",
    "trinit.config.files": "included_files: glob only for a config with include; tomllib in parse_toml, so the CLI can let it go",
    "trinit.runtime.spawner": "Spawner._start_pump: io/output and io/framing only for a process whose "
    "output trinit reads (prefix, or a log probe); Spawner.notify_hub: runtime/notify only for a process "
    "with notify or fd readiness or a watchdog",
    "trinit.runtime.reload": "Reloader._validate: config/diff only when a reload comes",
    "trinit.runtime.scheduler": "Scheduler._job: runtime/scheduled_job (and config/cron, "
    "system/wallclock) only when a run has a scheduled job",
    "trinit.config.hardening": "parse_hardening / check_privileges / tool_warnings: config/hardening_keys "
    "(system/harden, resource) only for a process with a hardening key",
    "trinit.runtime.notify": "NotifyHub.prepare: runtime/notifier (the sd_notify socket) only for a "
    "process with notify readiness or a watchdog",
    "trinit.runtime.control": "ControlServer._serve: runtime/conversation (a connection's code, json, "
    "runtime/commands) only once a control connection comes",
    "trinit.io.log": 'Logger._format: json only for log_format = "json"',
    "trinit.io.framing": "Framer: json's string encoder only for a process whose output is JSON lines",
}

#: Calls only trinit/system/ may make (the runtime goes through an OSLayer, faked in tests).
SYSCALLS = {
    ("os", name)
    for name in (
        "kill",
        "killpg",
        "waitpid",
        "waitid",
        "wait",
        "fork",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "posix_spawn",
        "pipe",
        "pipe2",
        "tcsetpgrp",
        "pidfd_open",
    )
} | {("signal", "pidfd_send_signal"), ("libc", "prctl")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
    )


def walk(node: ast.AST, in_function: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node with whether it is inside a function, skipping ``if TYPE_CHECKING:`` bodies."""
    for child in ast.iter_child_nodes(node):
        if is_type_checking_block(child):
            assert isinstance(child, ast.If)
            for other in child.orelse:
                yield other, in_function
                yield from walk(other, in_function)
            continue
        inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield child, in_function
        yield from walk(child, inner)


def imported_modules(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The trinit modules an import statement loads (``from . import x`` counts module x)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in MODULES]
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    if node.level:
        base = package
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        base = f"{base}.{node.module}" if node.module else base
    else:
        base = node.module or ""
    found = [base] if base in MODULES else []
    found += [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
    return found


def imports_of(module: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    for node, in_function in walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function


def import_graph() -> dict[str, set[str]]:
    return {
        module: {target for node, _ in imports_of(module) for target in imported_modules(module, node)}
        - {module}
        for module in MODULES
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(module: str) -> list[str] | None:
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target in on_stack:
                return [*stack[stack.index(target) :], target]
            if target not in done:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        on_stack.discard(module)
        done.add(module)
        return None

    for module in sorted(graph):
        if module not in done:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_the_package_is_found() -> None:
    assert {"trinit", "trinit.boot.main", "trinit.system.real", "trinit.testing"} <= set(MODULES)


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_function_level_imports_count_and_type_checking_imports_do_not() -> None:
    graph = import_graph()
    assert "trinit.runtime.run" in graph["trinit.boot.main"]  # imported inside main()
    assert "trinit.runtime.run" not in graph["trinit.boot.overrides"]
    assert "trinit.boot.argv" not in graph["trinit.runtime.run"]  # only under TYPE_CHECKING
    assert "trinit.boot.signals" in graph["trinit.boot.main"]  # `from . import signals`


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_400_lines(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module]} has {lines} lines; split it (at most {MAX_LINES})"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_at_module_top(module: str) -> None:
    if module in LAZY_IMPORTS_ALLOWED:
        return
    inside = [node.lineno for node, in_function in imports_of(module) if in_function]
    assert not inside, (
        f"{MODULES[module]}: imports inside functions at lines {inside}; import at the top, "
        "or add the module to LAZY_IMPORTS_ALLOWED with the reason the fast start needs it"
    )


def test_lazy_import_allowlist_names_real_modules() -> None:
    assert set(LAZY_IMPORTS_ALLOWED) <= set(MODULES)


#: The OS layers: the real one, and the fake (real pipes, so pumps can read them).
OS_LAYERS = ("trinit.system.", "trinit.testing.")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith(OS_LAYERS)))
def test_only_the_system_layer_makes_syscalls(module: str) -> None:
    tree = ast.parse(MODULES[module].read_text())
    calls = [
        f"{node.value.id}.{node.attr} (line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and (node.value.id, node.attr) in SYSCALLS
    ]
    assert not calls, f"{MODULES[module]}: {calls}; go through the OSLayer (trinit/system/)"


FAST_START = """
import os, sys
from trinit.boot.argv import parse_args
from trinit.boot.main import _spawn_main_now
from trinit.system.real import RealOS

opts = parse_args(["-gv", "-t5", "-p", "TERM", "-r", "TERM:QUIT", "--", "true"], os.environ)
RealOS().set_subreaper()
pid = _spawn_main_now(opts.command)
assert os.waitpid(pid, 0)[1] == 0
print(" ".join(sorted(m for m in ("trio", "attrs", "subprocess", "typing", "threading") if m in sys.modules)))
"""


def test_the_fast_start_spawns_before_anything_heavy_is_imported() -> None:
    """argv parsing, RealOS's set-up and the zero-config spawn load none of these."""
    proc = subprocess.run([sys.executable, "-c", FAST_START], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []


TRINIT_ALL = PUBLIC  # test_public_api.py pins trinit's own surface; one list, two checks
TESTING_ALL = [
    "Behaviour",
    "Exit",
    "FakeLog",
    "FakeOS",
    "FakeProcess",
    "FakeWallClock",
    "LogEvent",
    "Sent",
    "Spawn",
    "exit_status",
    "make_supervisor",
    "run_supervisor",
]


@pytest.mark.parametrize(("package", "expected"), [(trinit, TRINIT_ALL), (trinit.testing, TESTING_ALL)])
def test_public_surface_is_pinned(package: types.ModuleType, expected: list[str]) -> None:
    public = package.__all__
    assert sorted(public) == expected
    for name in public:
        assert getattr(package, name) is not None


def test_testing_exports_nothing_else() -> None:
    """Every public name of trinit.testing is in __all__ (the rest are its private modules)."""
    public = {n for n in vars(trinit.testing) if not n.startswith("_") and n != "annotations"}
    assert public == set(TESTING_ALL)
    for name in TESTING_ALL:
        assert getattr(trinit.testing, name).__module__.startswith("trinit.testing._")
