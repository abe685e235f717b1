#!/usr/bin/env python3
"""Supervise many processes: trinit (TOML config) against supervisord (INI config) as a container's PID 1.

For each N, each supervisor runs as PID 1 of a fresh PID namespace with N ``sleep 1000`` processes to start,
and is measured from outside through /proc: the time until all N run (exec'd ``sleep`` as its children),
its idle cost once they do, its RSS and CPU time, and SIGTERM -> the supervisor has exited (``sleep`` exits
at once on SIGTERM).  Needs root (run bench/setup.sh first).

    sudo python3 bench/scale.py                     # N = 200 and 1000
    sudo python3 bench/scale.py -n 1000 --markdown
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _ns import (
    HERE,
    BenchError,
    Namespace,
    children,
    comm,
    cpu_seconds,
    describe_machine,
    exit_on_sigterm,
    fmt,
    idle_cost,
    machine,
    render_table,
    render_verdicts,
    require_root,
    resolve_command,
    rss_kb,
)

SETTLE_S = 1.0  # once all run, before the idle window


def raise_fd_limit(n: int) -> None:
    """Up to 4 fds per supervised process (pipes, pidfd): give the supervisors room, within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * n + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard)
        )


def trinit_config(n: int, directory: Path) -> Path:
    path = directory / f"trinit-{n}.toml"
    path.write_text("".join(f'[process.p{i}]\ncommand = ["sleep", "1000"]\n\n' for i in range(n)))
    return path


def supervisord_config(n: int, directory: Path) -> Path:
    path = directory / f"supervisord-{n}.conf"
    header = (
        "[supervisord]\nnodaemon=true\nuser=root\nloglevel=warn\n"
        f"logfile={directory}/supervisord-{n}.log\nlogfile_maxbytes=0\npidfile={directory}/supervisord-{n}.pid\n"
        f"childlogdir={directory}\n\n"
    )
    program = (
        "[program:p{i}]\ncommand=sleep 1000\nautostart=true\nautorestart=false\nstartsecs=0\n"
        "stdout_logfile=/dev/null\nstdout_logfile_maxbytes=0\nstderr_logfile=/dev/null\nstderr_logfile_maxbytes=0\n\n"
    )
    path.write_text(header + "".join(program.format(i=i) for i in range(n)))
    return path


@dataclass
class Supervisor:
    name: str
    command: list[str]  # followed by -c CONFIG
    config: Callable[[int, Path], Path]


@dataclass
class Figures:
    processes: int
    all_running_s: float | None = None  # unshare started -> N `sleep`s are the supervisor's children
    running: int = 0  # how many ran at the end of the wait
    idle_s: float = 0.0
    idle_csw: int | None = None
    idle_cpu_ms: float | None = None
    rss_kb: int | None = None
    cpu_s: float | None = (
        None  # user + system CPU of the supervisor from its start to the end of the idle window
    )
    stop_s: float | None = None  # SIGTERM -> the supervisor has exited
    errors: list[str] = field(default_factory=list)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wait_all_running(ns: Namespace, n: int, timeout: float) -> tuple[float, int]:
    """Seconds from the namespace's start until ``n`` children of the init have exec'd ``sleep``."""
    running: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        for pid in children(ns.init_pid):
            if pid not in running and comm(pid) == "sleep":
                running.add(pid)
        now = time.monotonic_ns()
        if len(running) >= n:
            return (now - ns.started_ns) / 1e9, len(running)
        if not ns.alive():
            raise BenchError(f"the supervisor exited with {len(running)} of {n} running: {ns.log_tail()}")
        if time.monotonic() >= deadline:
            raise BenchError(f"only {len(running)} of {n} running after {timeout:g} s")
        time.sleep(0.005)


def measure(supervisor: Supervisor, n: int, args: argparse.Namespace, workdir: Path) -> Figures:
    figures = Figures(n)
    config = supervisor.config(n, workdir)
    with Namespace([*supervisor.command, "-c", str(config)], workdir) as ns:
        try:
            figures.all_running_s, figures.running = wait_all_running(ns, n, args.start_timeout)
            time.sleep(SETTLE_S)
            if args.idle > 0:
                cost = idle_cost(ns.init_pid, args.idle)
                figures.idle_s, figures.idle_csw, figures.idle_cpu_ms = (
                    args.idle,
                    cost.context_switches,
                    cost.cpu_ms,
                )
            figures.rss_kb = rss_kb(ns.init_pid)
            figures.cpu_s = cpu_seconds(ns.init_pid)
        except BenchError as e:
            figures.errors.append(str(e))
            log(f"  {supervisor.name} n={n}: {e}")
        stop_ms = ns.stop_ms(args.stop_timeout)
        figures.stop_s = stop_ms / 1000 if not math.isnan(stop_ms) else math.nan
    return figures


def table(results: list[tuple[str, Figures]], args: argparse.Namespace) -> tuple[list[str], list[list[str]]]:
    header = [
        "supervisor",
        "N",
        "all running s",
        "SIGTERM→exit s",
        "RSS MB",
        "CPU s",
        f"idle csw ({args.idle:g} s)",
        "idle CPU ms",
    ]
    rows = [
        [
            name,
            str(f.processes),
            fmt(f.all_running_s, 3),
            fmt(f.stop_s, 3),
            fmt(None if f.rss_kb is None else f.rss_kb / 1024),
            fmt(f.cpu_s, 2),
            fmt(f.idle_csw),
            fmt(f.idle_cpu_ms),
        ]
        for name, f in results
    ]
    return header, rows


def verdicts(f: Figures) -> list[tuple[str, str, bool | None]]:
    """trinit's targets at 1000 processes (bench/README.md)."""

    def at_most(target: str, value: float | None, limit: float, shown: str) -> tuple[str, str, bool | None]:
        return target, shown, None if value is None else (math.isfinite(value) and value <= limit)

    rss_mb = None if f.rss_kb is None else f.rss_kb / 1024
    return [
        at_most(f"all {f.processes} running <= 1 s", f.all_running_s, 1.0, f"{fmt(f.all_running_s, 3)} s"),
        at_most("SIGTERM -> exit <= 0.5 s", f.stop_s, 0.5, f"{fmt(f.stop_s, 3)} s"),
        at_most("RSS <= 40 MB", rss_mb, 40, f"{fmt(rss_mb)} MB"),
        at_most(
            "zero idle wakeups",
            None if f.idle_csw is None else float(f.idle_csw),
            0,
            f"{fmt(f.idle_csw)} context switches in {f.idle_s:g} s",
        ),
    ]


def choose_supervisors(args: argparse.Namespace) -> list[Supervisor]:
    bundled = HERE / ".venv-supervisor" / "bin" / "supervisord"
    found = {
        "trinit": resolve_command(args.trinit, "trinit"),
        "supervisord": resolve_command(args.supervisord, "supervisord")
        or ([str(bundled)] if bundled.exists() else None),
    }
    configs = {"trinit": trinit_config, "supervisord": supervisord_config}
    wanted = args.only.split(",") if args.only else list(found)
    chosen = []
    for name in wanted:
        if name not in found:
            sys.exit(f"unknown supervisor {name!r}: choose from {', '.join(found)}")
        command = found[name]
        if command is None:
            log(
                f"skipping {name}: not found"
                + (" (use --trinit CMD)" if name == "trinit" else " (run bench/setup.sh)")
            )
            continue
        chosen.append(Supervisor(name, command, configs[name]))
    return chosen


def finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return "timeout"
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "-n",
        "--processes",
        type=int,
        nargs="+",
        default=[200, 1000],
        metavar="N",
        help="process counts (default: 200 1000)",
    )
    ap.add_argument(
        "--idle", type=float, default=3.0, help="idle window once all run, s (default 3; 0 skips)"
    )
    ap.add_argument("--trinit", metavar="CMD", help="trinit's command; -c CONFIG follows (default: trinit)")
    ap.add_argument(
        "--supervisord",
        metavar="CMD",
        help="supervisord's command (default: on PATH, else bench/.venv-supervisor)",
    )
    ap.add_argument("--only", metavar="NAMES", help="comma-separated subset of trinit,supervisord")
    ap.add_argument("--start-timeout", type=float, default=60.0, help="give up waiting for all to run (s)")
    ap.add_argument("--stop-timeout", type=float, default=30.0, help="kill a supervisor still up after (s)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_root()
    exit_on_sigterm()
    supervisors = choose_supervisors(args)
    raise_fd_limit(max(args.processes))
    info = machine()
    results: list[tuple[str, Figures]] = []
    with tempfile.TemporaryDirectory(prefix="trinit-scale-") as tmp:
        for n in args.processes:
            for supervisor in supervisors:
                log(f"{supervisor.name}: {n} processes")
                results.append((supervisor.name, measure(supervisor, n, args, Path(tmp))))
    header, rows = table(results, args)
    print(("Machine: " if args.markdown else "machine: ") + describe_machine(info))
    print()
    print(render_table(header, rows, args.markdown))
    at_1000 = [f for name, f in results if name == "trinit" and f.processes == 1000]
    if at_1000:
        print()
        print("trinit's targets at 1000 processes:")
        print("\n".join(render_verdicts(verdicts(at_1000[0]), args.markdown)))
    errors = [f"{name} n={f.processes}: {e}" for name, f in results for e in f.errors]
    if errors:
        print()
        print("errors:")
        print("\n".join(f"- {e}" for e in errors))
    if args.json:
        payload = {
            "machine": info,
            "settings": {"idle": args.idle},
            "runs": [{"supervisor": name, **asdict(f)} for name, f in results],
        }
        Path(args.json).write_text(json.dumps(finite(payload), indent=1) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
