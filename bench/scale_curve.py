#!/usr/bin/env python3
"""The scale curve: trinit against the physical floor (and supervisord) at 1k, 5k, 10k, 20k processes.

The floor is the least a Python PID 1 can do for N processes: ``posix_spawn`` N ``sleep 1000`` from one
thread, and on SIGTERM signal and reap them; no supervision at all. Each N runs the floor and trinit
back to back (and supervisord at the counts given to ``--supervisord-at``), and the targets are ratios
to the floor of the same run, since absolute times move with the machine's load. Needs root.

    sudo python3 bench/scale_curve.py --trinit .venv/bin/trinit --markdown --plot docs/scale.png
    sudo python3 bench/scale_curve.py -n 10000 --trinit .venv/bin/trinit      # one point
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from _ns import describe_machine, exit_on_sigterm, fmt, machine, render_table, render_verdicts, require_root
from scale import Figures, Supervisor, choose_supervisors, log, measure, raise_fd_limit

#: The floor, given ``-c FILE`` like the supervisors (FILE holds N). signal.sigwait needs SIGTERM blocked.
FLOOR = """import os, signal, sys
count = int(open(sys.argv[2]).read())
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
kids = [os.posix_spawn("/bin/sleep", ["sleep", "1000"], os.environ, setsigmask=()) for _ in range(count)]
signal.sigwait({signal.SIGTERM})
for pid in kids:
    os.kill(pid, signal.SIGTERM)
for _ in kids:
    os.wait()
"""


def floor_supervisor(python: str, directory: Path) -> Supervisor:
    program = directory / "floor.py"
    program.write_text(FLOOR)

    def config(n: int, where: Path) -> Path:
        path = where / f"floor-{n}.txt"
        path.write_text(str(n))
        return path

    return Supervisor("floor", [python, "-I", "-S", str(program)], config)


PID_MAX = Path("/proc/sys/kernel/pid_max")


def raise_pid_max(n: int) -> int:
    """N children plus the supervisors' threads must fit in the pid space (20,000 and more).
    Returns the value before, to restore: pid_max is the whole machine's."""
    before = int(PID_MAX.read_text())
    want = 2 * n + 4096
    if before < want:
        PID_MAX.write_text(str(want))
    return before


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def verdicts(trinit: Figures, floor: Figures) -> list[tuple[str, str, bool | None]]:
    """Issue 16's targets at one N: ratios to the floor of the same run, RSS, idle wakeups."""

    def at_most(what: str, value: float | None, limit: float, unit: str = "x") -> tuple[str, str, bool | None]:
        shown = f"{fmt(value, 2)}{unit}"
        return what, shown, None if value is None else value <= limit

    rss_mb = None if trinit.rss_kb is None else trinit.rss_kb / 1024
    return [
        at_most("all running <= 1.1x the floor", ratio(trinit.all_running_s, floor.all_running_s), 1.1),
        at_most("SIGTERM -> gone <= 2x the floor", ratio(trinit.stop_s, floor.stop_s), 2.0),
        at_most("CPU <= 2x the floor", ratio(trinit.cpu_s, floor.cpu_s), 2.0),
        at_most("RSS <= 60 MB", rss_mb, 60.0, " MB"),
        at_most("zero idle wakeups", None if trinit.idle_csw is None else float(trinit.idle_csw), 0, " csw"),
    ]


def per_process(results: list[tuple[str, Figures]]) -> tuple[list[str], list[list[str]]]:
    header = ["supervisor", "N", "start ms/process", "stop ms/process", "RSS KB/process", "CPU ms/process"]
    rows = []
    for name, f in results:
        n = f.processes

        def each(v: float | None, scale: float, n: int = n) -> str:
            return fmt(None if v is None else v * scale / n, 3)

        rows.append([
            name, str(n), each(f.all_running_s, 1000), each(f.stop_s, 1000),
            each(None if f.rss_kb is None else float(f.rss_kb), 1), each(f.cpu_s, 1000),
        ])  # fmt: skip
    return header, rows


def plot(results: list[tuple[str, Figures]], path: Path) -> None:
    matplotlib = importlib.import_module("matplotlib")  # the bench extra: pip install '.[bench]'
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    panels: list[tuple[str, Callable[[Figures], float | None]]] = [
        ("all running, s", lambda f: f.all_running_s),
        ("SIGTERM -> gone, s", lambda f: f.stop_s),
        ("RSS, MB", lambda f: None if f.rss_kb is None else f.rss_kb / 1024),
    ]
    for ax, (title, value) in zip(axes, panels, strict=True):
        for name in dict.fromkeys(name for name, _ in results):
            points = [(f.processes, value(f)) for n, f in results if n == name and value(f) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=name)
        ax.set_title(title)
        ax.set_xlabel("processes")
        ax.grid(True, alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--processes", type=int, nargs="+", default=[1000, 5000, 10000, 20000], metavar="N")
    ap.add_argument("--trinit", metavar="CMD", help="trinit's command; -c CONFIG follows (default: trinit)")
    ap.add_argument("--supervisord", metavar="CMD", help="supervisord's command (default: as bench/scale.py)")
    ap.add_argument("--supervisord-at", type=int, nargs="*", default=[1000], metavar="N",
                    help="the counts supervisord also runs at (default 1000; it is slow)")  # fmt: skip
    ap.add_argument("--python", default=sys.executable, help="the floor's python (default: this one)")
    ap.add_argument("--idle", type=float, default=3.0, help="idle window once all run, s (0 skips)")
    ap.add_argument("--start-timeout", type=float, default=180.0)
    ap.add_argument("--stop-timeout", type=float, default=60.0)
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--plot", metavar="PNG", help="draw the curve (needs matplotlib: the bench extra)")
    ap.add_argument("--markdown", action="store_true")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_root()
    exit_on_sigterm()
    args.only = "trinit,supervisord"
    found = {s.name: s for s in choose_supervisors(args)}
    raise_fd_limit(max(args.processes))
    pid_max = raise_pid_max(max(args.processes))
    results: list[tuple[str, Figures]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="trinit-curve-") as tmp:
            floor = floor_supervisor(args.python, Path(tmp))
            for n in args.processes:
                chosen = [floor, found["trinit"]]
                if n in args.supervisord_at and "supervisord" in found:
                    chosen.append(found["supervisord"])
                for supervisor in chosen:
                    log(f"{supervisor.name}: {n} processes")
                    results.append((supervisor.name, measure(supervisor, n, args, Path(tmp))))
    finally:
        PID_MAX.write_text(str(pid_max))
    md = args.markdown
    print(("Machine: " if md else "machine: ") + describe_machine(machine()))
    header = ["supervisor", "N", "all running s", "SIGTERM→gone s", "RSS MB", "CPU s", "idle csw"]
    rows = [
        [name, str(f.processes), fmt(f.all_running_s, 3), fmt(f.stop_s, 3),
         fmt(None if f.rss_kb is None else f.rss_kb / 1024), fmt(f.cpu_s, 2), fmt(f.idle_csw)]
        for name, f in results
    ]  # fmt: skip
    print()
    print(render_table(header, rows, md))
    print()
    print(render_table(*per_process(results), md))
    by = {(name, f.processes): f for name, f in results}
    for n in args.processes:
        if ("trinit", n) in by and ("floor", n) in by:
            print()
            print(f"trinit's targets at {n} processes (ratios to the floor of this run):")
            print("\n".join(render_verdicts(verdicts(by["trinit", n], by["floor", n]), md)))
        if ("trinit", n) in by and ("supervisord", n) in by:
            ahead = ratio(by["supervisord", n].all_running_s, by["trinit", n].all_running_s)
            print(f"\nat {n}: supervisord takes {fmt(ahead, 1)}x trinit's time until all run (target >= 5x)")
    if args.json:
        runs = [{"supervisor": name, **asdict(f)} for name, f in results]
        Path(args.json).write_text(json.dumps({"machine": machine(), "runs": runs}, indent=1) + "\n")
    if args.plot:
        plot(results, Path(args.plot))
    errors = [e for _, f in results for e in f.errors]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
