#!/usr/bin/env python3
"""Compare trinit with tini and dumb-init as a container's PID 1.

Each init runs as PID 1 of a fresh PID namespace (``unshare --pid --fork --mount-proc INIT... PROBE ...``)
with bench/probe.c as its only child, and is measured from outside through /proc.  ``none`` runs the probe
itself as PID 1: the baseline that exec overhead is measured against.  Needs root (run bench/setup.sh first).

    sudo python3 bench/inits.py                      # all inits found, plain table
    sudo python3 bench/inits.py --markdown           # a Markdown table, as in bench/README.md
    sudo python3 bench/inits.py --trinit 'python3 -m trinit --' --only trinit,tini
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _ns import (
    BenchError,
    Namespace,
    Reports,
    build_probe,
    children,
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
    rss_kb,
)

SETTLE_S = 0.5  # after the child is up, before measuring: the init has finished starting
SIGNAL_TIMEOUT_S = 0.25  # a SIGUSR1 not seen by the child within this is counted as lost
FIRST_SIGNAL_TIMEOUT_S = 3.0
EXIT_CODE = 7


@dataclass
class Init:
    name: str
    argv: list[str]  # the init's command line up to the child; empty for the bare baseline

    @property
    def bare(self) -> bool:
        return not self.argv


@dataclass
class Figures:
    exec_raw_ms: list[float] = field(default_factory=list)  # unshare start -> probe's first instruction
    term_runs_ms: list[float] = field(default_factory=list)
    exec_ms: float | None = None  # median exec_raw minus the baseline's median
    term_ms: float | None = None  # median SIGTERM -> init exited
    fwd_first_ms: float | None = None  # a SIGUSR1 sent as soon as the child runs (inf: never arrived)
    fwd_p50_us: float | None = None
    fwd_p99_us: float | None = None
    fwd_sent: int = 0
    fwd_lost: int | None = None
    fwd_late: int | None = None  # arrived after SIGNAL_TIMEOUT_S (also counted as lost)
    reap_orphans: int = 0
    reap_ms: float | None = None
    idle_s: float = 0.0
    idle_csw: int | None = None
    idle_cpu_ms: float | None = None
    idle_threads: int | None = None
    rss_kb: int | None = None
    exit_code: int | None = None  # what the namespace exited with when the child exited with EXIT_CODE
    errors: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, args: argparse.Namespace, probe: Path, workdir: Path) -> None:
        self.args = args
        self.probe = probe
        self.workdir = workdir
        self._serial = 0

    def path(self, stem: str) -> Path:
        self._serial += 1
        return self.workdir / f"{stem}-{self._serial}"

    def namespace(self, init: Init, report: Reports | None, *mode: str) -> Namespace:
        target = str(report.path) if report else "-"
        return Namespace([*init.argv, str(self.probe), target, *mode], self.workdir)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def await_probe(reports: Reports, ns: Namespace, event: str, timeout: float) -> int:
    """The probe's ``event`` time stamp; BenchError if the init exits first or it takes over ``timeout`` s."""
    stamp = reports.expect(event, timeout, ns)
    if stamp is not None:
        return stamp
    if ns.alive():
        raise BenchError(f"no {event!r} from the probe within {timeout:g} s: {ns.log_tail()}")
    raise BenchError(f"the init exited before the probe reported {event!r}: {ns.log_tail()}")


# --------------------------------------------------------------------------------------------------- figures


def exec_and_stop(bench: Bench, init: Init, figures: Figures) -> None:
    """One run: time from starting unshare to the probe's first instruction; then SIGTERM -> init exited."""
    with Reports(bench.path("stamp")) as reports, bench.namespace(init, reports, "stamp") as ns:
        started = await_probe(reports, ns, "start", 10)
        figures.exec_raw_ms.append((started - ns.started_ns) / 1e6)
        time.sleep(SETTLE_S)
        figures.term_runs_ms.append(ns.stop_ms(10))


def idle_and_memory(bench: Bench, init: Init, figures: Figures) -> None:
    """Context switches and CPU of the init (all threads) over the idle window, and its RSS."""
    with Reports(bench.path("idle")) as reports, bench.namespace(init, reports, "stamp") as ns:
        await_probe(reports, ns, "start", 10)
        time.sleep(1.0)
        cost = idle_cost(ns.init_pid, bench.args.idle)
        figures.idle_s = bench.args.idle
        figures.idle_csw, figures.idle_cpu_ms, figures.idle_threads = (
            cost.context_switches,
            cost.cpu_ms,
            cost.threads,
        )
        figures.rss_kb = rss_kb(ns.init_pid)


def forwarding(bench: Bench, init: Init, figures: Figures) -> None:
    """SIGUSR1 to the init -> the child sees it; one signal at a time, the next only after the last arrived."""
    rng = random.Random(1)
    latencies_us: list[float] = []
    lost = late = 0
    with Reports(bench.path("signals")) as reports, bench.namespace(init, reports, "signals") as ns:
        await_probe(reports, ns, "ready", 10)
        # The first signal goes out the moment the child runs: an init still starting up holds it back.
        sent = time.monotonic_ns()
        ns.signal(signal.SIGUSR1)
        arrived = reports.expect("usr1", FIRST_SIGNAL_TIMEOUT_S, ns)
        figures.fwd_first_ms = math.inf if arrived is None else (arrived - sent) / 1e6
        time.sleep(SETTLE_S)
        for _ in range(bench.args.signals):
            late += sum(1 for event, _ in reports.drain() if event == "usr1")
            sent = time.monotonic_ns()
            ns.signal(signal.SIGUSR1)
            arrived = reports.expect("usr1", SIGNAL_TIMEOUT_S, ns)
            if arrived is None:
                lost += 1
            else:
                latencies_us.append((arrived - sent) / 1e3)
            time.sleep(0.001 + rng.random() * 0.001)
            if not ns.alive():
                raise BenchError(f"the init exited on SIGUSR1: {ns.log_tail()}")
        ns.stop_ms(5)
        late += sum(1 for event, _ in reports.drain() if event == "usr1")
    figures.fwd_sent = bench.args.signals
    figures.fwd_lost, figures.fwd_late = lost, late
    if latencies_us:
        latencies_us.sort()
        figures.fwd_p50_us = statistics.median(latencies_us)
        figures.fwd_p99_us = latencies_us[min(len(latencies_us) - 1, math.ceil(0.99 * len(latencies_us)) - 1)]


def reaping(bench: Bench, init: Init, figures: Figures) -> None:
    """N orphans (re-parented to the init) exit together; ms until the init has reaped the last of them."""
    count = figures.reap_orphans = bench.args.orphans
    gate_path = bench.path("gate")
    os.mkfifo(gate_path)
    gate = os.open(gate_path, os.O_RDWR)  # the only writer: closing it releases every orphan at once
    try:
        with (
            Reports(bench.path("orphans")) as reports,
            bench.namespace(init, reports, "orphans", str(count), str(gate_path)) as ns,
        ):
            await_probe(reports, ns, "ready", 120)
            populated = poll_until(
                lambda: (lambda n: n if n >= count + 1 else None)(len(children(ns.init_pid))),
                30,
                f"{count} orphans to be re-parented to the init",
                0.01,
            )
            remaining = populated - count
            time.sleep(SETTLE_S)
            released = time.monotonic_ns()
            os.close(gate)
            gate = -1
            try:
                done = poll_until(
                    lambda: time.monotonic_ns() if len(children(ns.init_pid)) <= remaining else None,
                    60,
                    "the init to reap every orphan",
                    0.0005,
                )
                figures.reap_ms = (done - released) / 1e6
            except BenchError:
                figures.reap_ms = math.inf
                raise
            finally:
                ns.stop_ms(10)
    finally:
        if gate >= 0:
            os.close(gate)


def exit_code(bench: Bench, init: Init, figures: Figures) -> None:
    """The child exits with EXIT_CODE at once: what does the namespace (i.e. the container) exit with?"""
    with bench.namespace(init, None, "exit", str(EXIT_CODE)) as ns:
        figures.exit_code = ns.exit_status(10)
        if figures.exit_code is None:
            raise BenchError("the init did not exit after its only child did")


# --------------------------------------------------------------------------------------------------- driver


def attempt(step: Callable[[Bench, Init, Figures], None], bench: Bench, init: Init, figures: Figures) -> None:
    try:
        step(bench, init, figures)
    except BenchError as e:
        error = f"{step.__name__}: {e}"
        if error not in figures.errors:
            figures.errors.append(error)
            log(f"  {init.name}: {error}")


def run_all(bench: Bench, inits: Sequence[Init]) -> dict[str, Figures]:
    results = {init.name: Figures() for init in inits}
    log(f"exec overhead and SIGTERM -> exit: {bench.args.runs} runs each, interleaved")
    for _ in range(bench.args.runs):
        for init in inits:
            attempt(exec_and_stop, bench, init, results[init.name])
    for init in inits:
        figures = results[init.name]
        attempt(exit_code, bench, init, figures)
        if init.bare:
            continue
        if not figures.exec_raw_ms:
            log(f"{init.name}: skipping the other figures, it never ran its child")
            continue
        log(
            f"{init.name}: idle {bench.args.idle:g} s, {bench.args.signals} signals, {bench.args.orphans} orphans"
        )
        if bench.args.idle > 0:
            attempt(idle_and_memory, bench, init, figures)
        if bench.args.signals > 0:
            attempt(forwarding, bench, init, figures)
        if bench.args.orphans > 0:
            attempt(reaping, bench, init, figures)
    baseline = next((results[i.name] for i in inits if i.bare), None)
    base_ms = statistics.median(baseline.exec_raw_ms) if baseline and baseline.exec_raw_ms else None
    for init in inits:
        figures = results[init.name]
        if figures.exec_raw_ms:
            raw = statistics.median(figures.exec_raw_ms)
            figures.exec_ms = raw if init.bare or base_ms is None else raw - base_ms
        clean = [t for t in figures.term_runs_ms if not math.isnan(t)]
        if figures.term_runs_ms:
            figures.term_ms = (
                statistics.median(clean) if len(clean) == len(figures.term_runs_ms) else math.nan
            )
    return results


def table(
    results: dict[str, Figures], inits: Sequence[Init], args: argparse.Namespace
) -> tuple[list[str], list[list[str]]]:
    header = [
        "init",
        "exec overhead ms",
        "1st SIGUSR1 ms",
        "SIGUSR1 p50 µs",
        "p99 µs",
        "lost",
        f"reap {args.orphans} orphans ms",
        f"idle csw ({args.idle:g} s)",
        "idle CPU ms",
        "RSS MB",
        "SIGTERM→exit ms",
        f"exit {EXIT_CODE}→",
    ]
    rows = []
    for init in inits:
        f = results[init.name]
        exec_cell = fmt(f.exec_ms, 2) + (" (bare)" if init.bare and f.exec_ms is not None else "")
        rows.append(
            [
                init.name,
                exec_cell,
                fmt(f.fwd_first_ms, 2),
                fmt(f.fwd_p50_us, 0),
                fmt(f.fwd_p99_us, 0),
                fmt(f.fwd_lost) if f.fwd_lost is None else f"{f.fwd_lost}/{f.fwd_sent}",
                fmt(f.reap_ms),
                fmt(f.idle_csw),
                fmt(f.idle_cpu_ms),
                fmt(None if f.rss_kb is None else f.rss_kb / 1024),
                fmt(f.term_ms, 2),
                fmt(f.exit_code),
            ]
        )
    return header, rows


def verdicts(results: dict[str, Figures], subject: str, reference: str) -> list[tuple[str, str, bool | None]]:
    """trinit's targets (bench/README.md): absolute ones, and some relative to tini's figures."""
    f, ref = results[subject], results.get(reference)

    def at_most(
        target: str, value: float | None, limit: float | None, shown: str
    ) -> tuple[str, str, bool | None]:
        if value is None or limit is None:
            return target, shown, None
        return target, shown, math.isfinite(value) and value <= limit

    p50_limit = 3 * ref.fwd_p50_us if ref and ref.fwd_p50_us is not None else None
    reap_limit = 1.5 * ref.reap_ms if ref and ref.reap_ms is not None and math.isfinite(ref.reap_ms) else None
    rss_mb = None if f.rss_kb is None else f.rss_kb / 1024
    passed = None if f.exit_code is None else float(f.exit_code != EXIT_CODE)
    return [
        at_most("exec overhead <= 20 ms", f.exec_ms, 20, f"{fmt(f.exec_ms, 2)} ms"),
        at_most(
            f"forwarding p50 <= 3x {reference}'s = {fmt(p50_limit, 0)} µs",
            f.fwd_p50_us,
            p50_limit,
            f"{fmt(f.fwd_p50_us, 0)} µs",
        ),
        at_most("forwarding p99 <= 1 ms", f.fwd_p99_us, 1000, f"{fmt(f.fwd_p99_us, 0)} µs"),
        at_most(
            "no signal lost",
            None if f.fwd_lost is None else float(f.fwd_lost),
            0,
            f"{fmt(f.fwd_lost)} of {f.fwd_sent} lost",
        ),
        at_most(
            "a signal sent during start-up is not lost",
            f.fwd_first_ms,
            FIRST_SIGNAL_TIMEOUT_S * 1000,
            "lost"
            if f.fwd_first_ms is not None and math.isinf(f.fwd_first_ms)
            else f"{fmt(f.fwd_first_ms, 2)} ms",
        ),
        at_most(
            f"reaping {f.reap_orphans} orphans <= 1.5x {reference}'s = {fmt(reap_limit)} ms",
            f.reap_ms,
            reap_limit,
            f"{fmt(f.reap_ms)} ms",
        ),
        at_most(
            "zero idle wakeups",
            None if f.idle_csw is None else float(f.idle_csw),
            0,
            f"{fmt(f.idle_csw)} context switches in {f.idle_s:g} s",
        ),
        at_most("RSS <= 30 MB", rss_mb, 30, f"{fmt(rss_mb)} MB"),
        at_most("SIGTERM -> exit <= 50 ms", f.term_ms, 50, f"{fmt(f.term_ms, 2)} ms"),
        at_most(f"the child's exit code {EXIT_CODE} passed on", passed, 0, f"exited {fmt(f.exit_code)}"),
    ]


def finite(value: object) -> object:
    """JSON has no NaN or infinity: a stop that timed out becomes "timeout", a reap that never ended "never"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "timeout" if math.isnan(value) else "never"
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def choose_inits(args: argparse.Namespace) -> list[Init]:
    candidates: list[tuple[str, list[str] | None]] = [
        ("none", []),
        ("trinit", resolve_command(args.trinit, "trinit", ["--"])),
        ("tini", resolve_command(None, "tini", ["--"])),
        ("dumb-init", resolve_command(None, "dumb-init")),
    ]
    wanted = {"none", *args.only.split(",")} if args.only else None
    inits = []
    for name, argv in candidates:
        if wanted is not None and name not in wanted:
            continue
        if argv is None:
            log(
                f"skipping {name}: not found on PATH"
                + (" (use --trinit CMD)" if name == "trinit" else " (run bench/setup.sh)")
            )
            continue
        inits.append(Init(name, argv))
    return inits


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--runs", type=int, default=10, help="runs for exec overhead and SIGTERM -> exit (default 10)"
    )
    ap.add_argument("--orphans", type=int, default=2000, help="orphans to reap (default 2000; 0 skips)")
    ap.add_argument("--signals", type=int, default=200, help="SIGUSR1s to forward (default 200; 0 skips)")
    ap.add_argument("--idle", type=float, default=5.0, help="idle window in seconds (default 5; 0 skips)")
    ap.add_argument("--trinit", metavar="CMD", help="trinit's command up to the child (default: `trinit --`)")
    ap.add_argument("--only", metavar="NAMES", help="comma-separated subset of trinit,tini,dumb-init")
    ap.add_argument("--json", metavar="FILE", help="also write every figure, per run, as JSON")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_root()
    exit_on_sigterm()
    inits = choose_inits(args)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="trinit-bench-") as tmp:
        bench = Bench(args, build_probe(), Path(tmp))
        results = run_all(bench, inits)
    header, rows = table(results, inits, args)
    print(("Machine: " if args.markdown else "machine: ") + describe_machine(info))
    print()
    print(render_table(header, rows, args.markdown))
    if "trinit" in results:
        print()
        print("trinit's targets:")
        print("\n".join(render_verdicts(verdicts(results, "trinit", "tini"), args.markdown)))
    errors = [f"{name}: {e}" for name, f in results.items() for e in f.errors]
    if errors:
        print()
        print("errors:")
        print("\n".join(f"- {e}" for e in errors))
    if args.json:
        payload = {
            "machine": info,
            "settings": {k: getattr(args, k) for k in ("runs", "orphans", "signals", "idle")},
            "inits": {init.name: {"argv": init.argv, **asdict(results[init.name])} for init in inits},
        }
        Path(args.json).write_text(json.dumps(finite(payload), indent=1) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
