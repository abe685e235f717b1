#!/usr/bin/env python3
"""Scheduled jobs cost no wakeup between their fire times: trinit as a container's PID 1 with N jobs.

Two configs, each run by trinit as PID 1 of a fresh PID namespace and watched from outside through /proc:

- **idle**: N jobs none of which is due during the run (half ``schedule = "@yearly"``, half ``every = "1h"``).
  Context switches of every thread of trinit over ``--idle`` seconds, once all N have logged their next run.
- **between fires**: N jobs ``every = PERIOD`` (``true``), all on one grid that starts with trinit. Context
  switches in the quiet part of each period (from 1 s after a fire time to 0.5 s before the next), summed
  over ``--periods`` periods, and the runs seen (N per fire time).

Needs root (``unshare --pid``).

    sudo python3 bench/scheduled.py --markdown
    sudo python3 bench/scheduled.py -n 1000 --period 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _ns import (
    BenchError,
    Namespace,
    context_switches,
    describe_machine,
    exit_on_sigterm,
    fmt,
    idle_cost,
    machine,
    poll_until,
    render_table,
    render_verdicts,
    require_root,
    resolve_command,
)


def config(n: int, directory: Path, *, every: str | None) -> Path:
    """``every``: all jobs every that long; None: none due for an hour or more."""
    path = directory / f"scheduled-{n}-{every or 'idle'}.toml"
    lines = []
    for i in range(n):
        if every is not None:
            when = f'every = "{every}"'
        else:
            when = 'schedule = "@yearly"' if i % 2 else 'every = "1h"'
        lines.append(f'[process.job{i}]\ncommand = ["true"]\noneshot = true\n{when}\n')
    path.write_text("\n".join(lines))
    return path


def log_count(ns: Namespace, text: str) -> int:
    assert ns._log is not None
    return ns._log.read_text(errors="replace").count(text)


def wait_scheduled(ns: Namespace, n: int, timeout: float) -> float:
    """When all ``n`` jobs have logged their first next run (the grid's start, within a few ms)."""
    poll_until(lambda: log_count(ns, " next run at ") >= n or None, timeout, f"{n} 'next run' lines", 0.002)
    return time.monotonic()


def switches(pid: int) -> int:
    return sum(context_switches(pid).values())


def measure_idle(trinit: list[str], n: int, seconds: float, workdir: Path) -> tuple[int, float]:
    with Namespace([*trinit, "-c", str(config(n, workdir, every=None))], workdir) as ns:
        wait_scheduled(ns, n, 60)
        time.sleep(1.0)  # the log writer drains, the start settles
        cost = idle_cost(ns.init_pid, seconds)
        return cost.context_switches, cost.cpu_ms


def measure_between(trinit: list[str], n: int, period: float, periods: int, workdir: Path) -> tuple[int, int]:
    with Namespace([*trinit, "-c", str(config(n, workdir, every=f"{period:g}s"))], workdir) as ns:
        start = wait_scheduled(ns, n, 60)
        total = 0
        for k in range(1, periods + 1):
            fire = start + k * period
            time.sleep(max(0.0, fire + 1.0 - time.monotonic()))
            before = switches(ns.init_pid)
            time.sleep(max(0.0, fire + period - 0.5 - time.monotonic()))
            total += switches(ns.init_pid) - before
        return total, log_count(ns, "started: true")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--jobs", type=int, default=100, help="scheduled jobs (default 100)")
    ap.add_argument("--idle", type=float, default=5.0, help="idle window, s (default 5)")
    ap.add_argument(
        "--period", type=float, default=3.0, help="every = PERIOD s of the second config (default 3)"
    )
    ap.add_argument("--periods", type=int, default=3, help="periods measured (default 3)")
    ap.add_argument("--trinit", metavar="CMD", help="trinit's command; -c CONFIG follows (default: trinit)")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args(argv)
    if args.period < 2:
        ap.error(
            "--period must be 2 s or more (the quiet window is from 1 s after a fire to 0.5 s before the next)"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_root()
    exit_on_sigterm()
    trinit = resolve_command(args.trinit, "trinit")
    if trinit is None:
        sys.exit("trinit not found: install it, or pass --trinit CMD")
    info = machine()
    idle = between = None
    runs = 0
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="trinit-scheduled-") as tmp:
        try:
            idle = measure_idle(trinit, args.jobs, args.idle, Path(tmp))
            between, runs = measure_between(trinit, args.jobs, args.period, args.periods, Path(tmp))
        except BenchError as exc:
            errors.append(str(exc))
    quiet = args.periods * (args.period - 1.5)
    header = ["config", "jobs", "window", "context switches", "runs"]
    rows = [
        ["idle (none due)", str(args.jobs), f"{args.idle:g} s", fmt(idle and idle[0]), "0"],
        [f"every {args.period:g} s", str(args.jobs), f"{quiet:g} s between fires", fmt(between), str(runs)],
    ]
    print(("Machine: " if args.markdown else "machine: ") + describe_machine(info))
    print()
    print(render_table(header, rows, args.markdown))
    print()
    print("trinit's targets:")
    verdicts = [
        (
            "zero wakeups with idle scheduled jobs",
            f"{fmt(idle and idle[0])}",
            None if idle is None else idle[0] == 0,
        ),
        ("zero wakeups between fire times", f"{fmt(between)}", None if between is None else between == 0),
    ]
    print("\n".join(render_verdicts(verdicts, args.markdown)))
    for error in errors:
        print(f"error: {error}")
    missed = any(met is False for _, _, met in verdicts)
    return 1 if errors or missed else 0


if __name__ == "__main__":
    sys.exit(main())
