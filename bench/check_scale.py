#!/usr/bin/env python3
"""``trinit check`` on big configs: the config front end must stay linear.

For each N, writes two configs: a chain (each process ``after`` the one before) and N
independent processes.  Times ``trinit check -c FILE`` as a user runs it (a fresh
interpreter, output to a pipe): wall clock and the child's CPU time (user + system),
each the best of three, since the CPU time does not grow when other work shares the
machine; and in-process ``load_config`` + ``make_plan`` + ``render_plan`` (best of
three).  Target: under 1 s for ``trinit check`` on 10,000 processes of either shape.

    python3 bench/check_scale.py                    # N = 1000, 5000, 10000, 20000
    python3 bench/check_scale.py -n 10000 --markdown
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from trinit.config.load import load_config
from trinit.config.plan import make_plan
from trinit.config.render import render_plan

TARGET_SECONDS = 1.0
TARGET_N = 10_000


def write_config(folder: Path, shape: str, n: int) -> Path:
    """N processes, ``chain`` (each after the previous) or ``flat`` (independent)."""
    lines = ["[trinit]", "shutdown_timeout = 9", ""]
    for i in range(n):
        lines += [f"[process.p{i}]", f'command = ["sleep", "{i}"]', "stop_timeout = 0"]
        if shape == "chain" and i:
            lines.append(f'after = ["p{i - 1}"]')
        lines.append("")
    path = folder / f"{shape}-{n}.toml"
    path.write_text("\n".join(lines))
    return path


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cli_check(path: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of ``trinit check -c PATH`` in a fresh interpreter; raises if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "trinit", "check", "-c", str(path)], capture_output=True, check=False
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"trinit check -c {path} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def in_process(path: Path) -> float:
    return best_of(3, lambda: render_plan(make_plan(load_config(path))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-n", type=int, action="append", help="process counts (default 1000 5000 10000 20000)"
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    counts = args.n or [1000, 5000, 10_000, 20_000]
    rows = []
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            for shape in ("chain", "flat"):
                path = write_config(Path(tmp), shape, n)
                runs = [cli_check(path) for _ in range(3)]
                cli, cpu = min(wall for wall, _ in runs), min(cpu for _, cpu in runs)
                inner = in_process(path)
                ok = n != TARGET_N or cli < TARGET_SECONDS
                failed |= not ok
                rows.append((n, shape, cli, cpu, inner, ok))
    if args.markdown:
        print("| N | shape | `trinit check` wall | its CPU time | load + plan + render in process |")
        print("|---:|---|---:|---:|---:|")
        for n, shape, cli, cpu, inner, ok in rows:
            mark = "" if ok else " (over the 1 s target)"
            print(
                f"| {n:,} | {shape} | {cli * 1000:.0f} ms{mark} | {cpu * 1000:.0f} ms | {inner * 1000:.0f} ms |"
            )
    else:
        for n, shape, cli, cpu, inner, ok in rows:
            print(
                f"N={n:>6} {shape:<5}  trinit check {cli * 1000:7.0f} ms (CPU {cpu * 1000:5.0f} ms)"
                f"   in process {inner * 1000:7.0f} ms" + ("" if ok else "   OVER TARGET")
            )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
