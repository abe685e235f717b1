#!/usr/bin/env python3
"""trinit's start-up floor: how long until its child runs, against what any Python PID 1 pays.

Every case runs as PID 1 of a fresh PID namespace with bench/probe.c as its child (or is the
probe), interleaved, and is timed from just before ``unshare`` starts to the probe's first
instruction (a C constructor):

- **bare**: the probe itself as PID 1 (what ``unshare`` and an exec cost);
- **floor**: ``PYTHON -I -S -c '<fork, exec the probe, wait>'``: the Python floor, interpreter
  start with no site and one fork/exec (the same interpreter as trinit's);
- **trinit**: the ``trinit`` console script, ``trinit -- probe``;
- **python -m trinit**: ``PYTHON -m trinit -- probe``;
- any ``--case NAME=CMD`` (the probe's argv follows CMD).

Then, to account for the difference, the steps of a start are timed as plain processes (not PID 1,
no probe), interleaved, each a fresh interpreter to its exit: ``-I -S -c pass``, ``-c pass``
(site and the venv's site-packages), ``-c 'import re'`` (what pip's console-script wrapper
imports), and ``-c`` of the imports the fast start makes before it spawns.

    sudo python3 bench/startup.py --trinit /opt/venv/bin/trinit --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _ns import (
    BenchError,
    Namespace,
    Reports,
    build_probe,
    describe_machine,
    machine,
    render_table,
    require_root,
)

#: The floor's whole program: fork, exec the probe in the child, wait for it (so the namespace lives).
FLOOR = "import os,sys\nif os.fork()==0: os.execv(sys.argv[1],sys.argv[1:])\nos.wait()"
#: What the fast start imports before the spawn in zero-config mode at PID 1 (see trinit/boot/main.py:
#: the OS layer, system.real, loads after the spawn there).
FAST_START = "import trinit.boot.main, trinit.system.spawn"


def stamp_ms(argv: list[str], probe: Path, workdir: Path, serial: int) -> float:
    """One run: ms from starting unshare to the probe's first instruction."""
    with Reports(workdir / f"stamp-{serial}") as reports:
        ns = Namespace([*argv, str(probe), str(reports.path), "stamp"], workdir)
        with ns:
            started = reports.expect("start", 10, ns)
            if started is None:
                raise BenchError(f"{shlex.join(argv)}: the probe never started: {ns.log_tail()}")
            return (started - ns.started_ns) / 1e6


def wall_ms(argv: list[str]) -> float:
    """A plain process from fork to exit, in ms."""
    begun = time.monotonic_ns()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return (time.monotonic_ns() - begun) / 1e6


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trinit", metavar="PATH", help="the trinit console script (default: from PATH)")
    ap.add_argument("--case", action="append", default=[], metavar="NAME=CMD", help="another case")
    ap.add_argument("--runs", type=int, default=30, help="runs of each case (default 30)")
    ap.add_argument("--json", metavar="FILE", help="also write every run as JSON")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_root()
    found = shutil.which("trinit") or shutil.which("trinit", path=str(Path(sys.executable).parent))
    script = args.trinit or found
    if not script:
        sys.exit("trinit not found: pass --trinit PATH (the console script of an installed trinit)")
    script = os.path.abspath(script)
    python = str(Path(script).parent / "python")  # the venv's interpreter: trinit's own
    cases: dict[str, list[str]] = {
        "bare": [],
        "floor": [python, "-I", "-S", "-c", FLOOR],
        "trinit": [script, "--"],
        "python -m trinit": [python, "-m", "trinit", "--"],
    }
    for spec in args.case:
        name, _, cmd = spec.partition("=")
        cases[name] = shlex.split(cmd)
    steps: dict[str, list[str]] = {
        "python -I -S -c pass": [python, "-I", "-S", "-c", "pass"],
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import re'": [python, "-c", "import re"],
        "python -c '<fast start imports>'": [python, "-c", FAST_START],
        "python -c '<import re + fast start>'": [python, "-c", "import re; " + FAST_START],
        "trinit --version": [script, "--version"],
    }
    runs: dict[str, list[float]] = {name: [] for name in [*cases, *steps]}
    info = machine()
    with tempfile.TemporaryDirectory(prefix="trinit-startup-") as tmp:
        probe = build_probe()
        os.chdir(tmp)  # `-c` and `-m` put the working directory first on sys.path: not a source tree
        serial = 0
        for _ in range(args.runs):
            for name, case in cases.items():
                serial += 1
                runs[name].append(stamp_ms(case, probe, Path(tmp), serial))
            for name, step in steps.items():
                runs[name].append(wall_ms(step))
    median = {name: statistics.median(values) for name, values in runs.items()}
    spread = {
        name: statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        for name, values in runs.items()
    }
    bare, floor = median["bare"], median["floor"]
    print(("Machine: " if args.markdown else "machine: ") + describe_machine(info) + f"; {args.runs} runs")
    print()
    rows = [
        [
            name,
            f"{median[name]:.2f}",
            f"{spread[name][0]:.2f}–{spread[name][2]:.2f}",
            "-" if name == "bare" else f"{median[name] - bare:.2f}",
            "-" if name in ("bare", "floor") else f"{median[name] - floor:+.2f}",
        ]
        for name in cases
    ]
    print(
        render_table(
            ["case (PID 1)", "start→child ms", "p25–p75", "exec overhead ms", "vs floor ms"],
            rows,
            args.markdown,
        )
    )
    print()
    rows = [[name, f"{median[name]:.2f}", f"{spread[name][0]:.2f}–{spread[name][2]:.2f}"] for name in steps]
    print(render_table(["step (plain process, to its exit)", "median ms", "p25–p75"], rows, args.markdown))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": info, "runs": runs, "median": median}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
