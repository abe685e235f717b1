#!/usr/bin/env python3
"""Prefixed and JSON output throughput: trinit copying a child's lines against a bare ``cat`` of the same data.

A file of N 90-byte lines is made once. In each round, interleaved so a slow moment of the machine hits
every case: ``cat FILE`` with its stdout on a pipe (the floor: the pipe itself), and trinit running
``cat FILE`` as its main process with ``output = "prefix"``, with ``--log-format text`` and ``json``, its stdout
on a pipe. The reader is a separate process that only counts bytes and lines (it stamps its first byte and
its EOF with CLOCK_MONOTONIC). Figures: lines/s from the first byte to EOF (trinit's start-up left out),
the whole run's wall time, and trinit's own CPU time per line (all its threads; read from /proc while it is a
zombie, so its reaped child's CPU is not in it), less what a run of one line costs (start-up and
shutdown). One more run of each case keeps the output and checks every line (none lost, none torn, in
order, each exactly what trinit must write for it), and a last run puts a slow reader behind trinit: its
peak RSS must not grow with the output (the child is held back). ``--compare LABEL=COMMAND`` runs another
trinit (an older version, say) through the same rounds, for before/after figures from one run.

    python3 bench/logs.py --markdown                 # 1,000,000 lines, 5 rounds, about a minute
    python3 bench/logs.py -n 2000000 --runs 9 --json logs.json
    python3 bench/logs.py --compare "before=env PYTHONPATH=/tmp/old python3 -m trinit"
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from _ns import (
    CLK_TCK,
    BenchError,
    describe_machine,
    fmt,
    machine,
    render_table,
    render_verdicts,
    resolve_command,
)

LINE_BYTES = 90
TARGET_PREFIX = 2_000_000
TARGET_JSON = 1_000_000
PROCESS = "app"
#: What the counting reader runs (stdin is the pipe): prints one JSON object at EOF.
READER = r"""
import json, os, sys, time
size = lines = 0
first = None
read = os.read
while True:
    data = read(0, 1 << 20)
    if not data:
        break
    if first is None:
        first = time.monotonic()
    size += len(data)
    lines += data.count(b"\n")
end = time.monotonic()
print(json.dumps({"bytes": size, "lines": lines, "first": first, "end": end}))
"""
#: The slow reader: 64 KiB every 5 ms (about 12 MB/s), into a file kept for checking.
SLOW_READER = r"""
import os, sys, time
slow = sys.argv[2] == "slow"
with open(sys.argv[1], "wb") as out:
    while True:
        data = os.read(0, 65536)
        if not data:
            break
        out.write(data)
        if slow:
            time.sleep(0.005)
"""
#: The reader that keeps everything, for the check.
KEEPER = "import shutil, sys; shutil.copyfileobj(sys.stdin.buffer, open(sys.argv[1], 'wb'), 1 << 20)"
WORDS = ["GET", "POST", "/api/v1/items", "user=alice", "status=200", "dur_ms=12", "cache=hit", "retry=0"]


@dataclass
class Run:
    case: str
    round: int
    wall_s: float
    stream_s: float
    lines: int
    bytes: int
    cpu_s: float | None

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.stream_s if self.stream_s > 0 else float("inf")


@dataclass
class SlowReader:
    lines: int
    seconds: float
    rss_base_mb: float
    rss_peak_mb: float
    intact: bool


@dataclass
class Report:
    machine: dict[str, str]
    n: int
    runs: list[Run] = field(default_factory=list)
    checked: dict[str, str] = field(default_factory=dict)
    slow: SlowReader | None = None
    #: trinit's own CPU time for one line, per case: start-up and shutdown, taken off the runs' CPU.
    startup_cpu_s: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_data(path: Path, n: int) -> None:
    """N lines of exactly LINE_BYTES bytes (newline included) of log-like ASCII, each numbered."""
    with path.open("wb") as f:
        chunk: list[bytes] = []
        for i in range(n):
            words = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(6))
            text = f"{i:09d} INFO {words} "
            line = (text + "x" * LINE_BYTES)[: LINE_BYTES - 1] + "\n"
            chunk.append(line.encode())
            if len(chunk) == 10_000:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))


def write_config(folder: Path, data: Path) -> Path:
    config = folder / f"{data.stem}.toml"
    config.write_text(f'[process.{PROCESS}]\ncommand = ["cat", "{data}"]\nmain = true\noutput = "prefix"\n')
    return config


@dataclass(frozen=True)
class Case:
    """``cat FILE``, or one trinit command running it with prefixed output in one log format."""

    name: str
    kind: str  # "cat", "prefix" or "json"
    trinit: tuple[str, ...] = ()

    def argv(self, config: Path, data: Path) -> list[str]:
        if self.kind == "cat":
            return ["cat", str(data)]
        log_format = "json" if self.kind == "json" else "text"
        return [*self.trinit, "--log-format", log_format, "-c", str(config)]


def own_cpu_at_exit(pid: int) -> float | None:
    """Wait for ``pid`` to exit without reaping it, then its own CPU (threads, not waited children)."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_once(
    case: str, argv: Sequence[str], reader: Sequence[str], errors_to: Path
) -> tuple[bytes, float, float | None]:
    """Run the producer into the reader; the reader's stdout, the wall time and the producer's CPU."""
    r, w = os.pipe()
    start = time.monotonic()
    with errors_to.open("ab") as err:
        read_proc = subprocess.Popen(reader, stdin=r, stdout=subprocess.PIPE)
        os.close(r)
        try:
            prod = subprocess.Popen(argv, stdout=w, stderr=err, stdin=subprocess.DEVNULL)
        finally:
            os.close(w)
    cpu = own_cpu_at_exit(prod.pid)
    code = prod.wait()
    out, _ = read_proc.communicate()
    wall = time.monotonic() - start
    if code != 0 or read_proc.returncode != 0:
        raise BenchError(f"{case}: exited {code} (reader {read_proc.returncode}); see {errors_to}")
    return out, wall, cpu


#: A JSON line as trinit writes it for the main process's stdout; group 1 is the line's JSON string.
JSON_LINE = re.compile(
    rb'\{"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","process":"'
    + PROCESS.encode()
    + rb'","stream":"stdout","line":(".*")\}\n'
)


def line_ok(kind: str, want: bytes, got: bytes) -> bool:
    """Whether ``got`` is exactly what a case of ``kind`` writes for the input line ``want``."""
    if kind == "cat":
        return got == want
    if kind == "prefix":
        return got == PROCESS.encode() + b" | " + want
    match = JSON_LINE.fullmatch(got)
    return match is not None and match[1] == json.dumps(want[:-1].decode()).encode()


def check_output(kind: str, data: Path, out: Path) -> str:
    """'ok', or what is wrong with the first bad line of a kept output."""
    with data.open("rb") as want_f, out.open("rb") as got_f:
        for number, want in enumerate(want_f):
            got = got_f.readline()
            if not line_ok(kind, want, got):
                return f"line {number}: got {got[:120]!r}, want {want[:120]!r}"
        rest = got_f.read()
        if rest:
            return f"{len(rest)} bytes more than expected: {rest[:120]!r}"
    return "ok"


def peak_rss_run(trinit: Sequence[str], folder: Path, lines: int, slow: bool) -> tuple[float, float, bool]:
    """trinit prefixing ``lines`` lines into a slow (or fast) reader: its peak RSS in MB (its child's, a
    ``cat``, is far smaller), the wall time, and whether every line arrived whole and in order."""
    data = folder / f"rss-{lines}.txt"
    make_data(data, lines)
    config = write_config(folder, data)
    out = folder / "rss.out"
    r, w = os.pipe()
    reader = subprocess.Popen(
        [sys.executable, "-c", SLOW_READER, str(out), "slow" if slow else "fast"], stdin=r
    )
    os.close(r)
    start = time.monotonic()
    with (folder / "rss.err").open("wb") as err:
        prod = subprocess.Popen([*trinit, "-c", str(config)], stdout=w, stderr=err, stdin=subprocess.DEVNULL)
    os.close(w)
    _pid, status, usage = os.wait4(prod.pid, 0)
    prod.returncode = os.waitstatus_to_exitcode(status)
    reader.wait()
    seconds = time.monotonic() - start
    intact = prod.returncode == 0 and check_output("prefix", data, out) == "ok"
    return usage.ru_maxrss / 1024, seconds, intact


def slow_reader_run(trinit: Sequence[str], folder: Path, lines: int) -> SlowReader:
    """Peak RSS with a slow reader and ``lines`` lines against the same with 1,000 lines and a fast one: if
    trinit held what the reader has not taken yet, the peak would grow by the whole output (tens of MB)."""
    base_mb, _seconds, base_ok = peak_rss_run(trinit, folder, 1_000, slow=False)
    peak_mb, seconds, ok = peak_rss_run(trinit, folder, lines, slow=True)
    return SlowReader(
        lines=lines, seconds=seconds, rss_base_mb=base_mb, rss_peak_mb=peak_mb, intact=base_ok and ok
    )


def summarize(report: Report, cases: Sequence[Case]) -> list[list[str]]:
    rows: list[list[str]] = []
    by_round_cat = {run.round: run for run in report.runs if run.case == "cat"}
    for case in cases:
        runs = [run for run in report.runs if run.case == case.name]
        if not runs:
            continue
        rates = [run.lines_per_s for run in runs]
        ratios = [
            run.lines_per_s / by_round_cat[run.round].lines_per_s for run in runs if run.round in by_round_cat
        ]
        fixed = statistics.median(report.startup_cpu_s.get(case.name) or [0.0])
        cpus = [(run.cpu_s - fixed) / run.lines * 1e6 for run in runs if run.cpu_s is not None]
        rows.append(
            [
                case.name,
                f"{statistics.median(rates) / 1e6:.2f} M",
                f"{max(rates) / 1e6:.2f} M",
                f"{statistics.median(ratios):.2f}" if ratios else "-",
                fmt(statistics.median(run.wall_s for run in runs), 2),
                fmt(statistics.median(cpus), 2) if cpus and case.kind != "cat" else "-",
                report.checked.get(case.name, "-"),
            ]
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=1_000_000, help="lines per run (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=5, help="rounds of the three cases (default 5)")
    parser.add_argument(
        "--trinit", help="command to run trinit (default: trinit from PATH or beside this Python)"
    )
    parser.add_argument(
        "--slow-lines",
        type=int,
        default=500_000,
        help="lines for the slow-reader run (default 500,000; 0: skip)",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=COMMAND",
        help="also run this trinit command (repeatable), e.g. an older version",
    )
    parser.add_argument("--only", help="comma-separated kinds of case: cat, prefix, json")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="write every figure and run to FILE")
    args = parser.parse_args()

    trinit = resolve_command(args.trinit, "trinit")
    if trinit is None:
        log("trinit is not installed (pass --trinit)")
        return 1
    cases = [
        Case("cat", "cat"),
        Case("trinit prefix", "prefix", tuple(trinit)),
        Case("trinit json", "json", tuple(trinit)),
    ]
    for spec in args.compare:
        label, _, command = spec.partition("=")
        if not command:
            parser.error(f"--compare {spec!r}: give LABEL=COMMAND")
        other = tuple(shlex.split(command))
        cases += [Case(f"{label} prefix", "prefix", other), Case(f"{label} json", "json", other)]
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        cases = [case for case in cases if case.kind in wanted]
    report = Report(machine=machine(), n=args.n)
    reader = [sys.executable, "-c", READER]
    with tempfile.TemporaryDirectory(prefix="trinit-bench-logs-") as tmp:
        folder = Path(tmp)
        data = folder / "lines.txt"
        log(f"making {args.n:,} lines of {LINE_BYTES} bytes")
        make_data(data, args.n)
        config = write_config(folder, data)
        one = folder / "one.txt"
        make_data(one, 1)
        one_config = write_config(folder, one)
        errors = folder / "stderr"
        for round_ in range(args.runs):
            for case in cases:
                try:
                    if case.kind != "cat":
                        _out, _wall, cpu = run_once(case.name, case.argv(one_config, one), reader, errors)
                        report.startup_cpu_s.setdefault(case.name, []).append(cpu or 0.0)
                    out, wall, cpu = run_once(case.name, case.argv(config, data), reader, errors)
                except BenchError as exc:
                    report.errors.append(str(exc))
                    continue
                got: dict[str, float] = json.loads(out)
                if got["lines"] != args.n or got["bytes"] < args.n * LINE_BYTES:
                    report.errors.append(f"{case.name}: {got['lines']:,} lines, {got['bytes']:,} bytes read")
                stream_s = got["end"] - got["first"]
                run = Run(case.name, round_, wall, stream_s, int(got["lines"]), int(got["bytes"]), cpu)
                report.runs.append(run)
                log(
                    f"round {round_ + 1}: {case.name}: {run.lines_per_s / 1e6:.2f} M lines/s, wall {wall:.2f} s"
                )
        kept = folder / "kept.out"
        keep = [sys.executable, "-c", KEEPER, str(kept)]
        for case in cases:
            try:
                run_once(case.name, case.argv(config, data), keep, errors)
            except BenchError as exc:
                report.errors.append(str(exc))
                continue
            report.checked[case.name] = check_output(case.kind, data, kept)
            if report.checked[case.name] != "ok":
                report.errors.append(f"{case.name}: {report.checked[case.name]}")
        if args.slow_lines:
            log(f"slow reader: {args.slow_lines:,} lines")
            report.slow = slow_reader_run(trinit, folder, args.slow_lines)
            if not report.slow.intact:
                report.errors.append("slow reader: the output is not every line whole and in order")

    header = ["case", "lines/s median", "best", "vs cat", "wall s", "CPU µs/line", "every line checked"]
    print(
        f"Machine: {describe_machine(report.machine)}; {args.n:,} lines of {LINE_BYTES} bytes, {args.runs} rounds"
    )
    print()
    print(render_table(header, summarize(report, cases), args.markdown))
    if report.slow is not None:
        s = report.slow
        print()
        print(
            f"Slow reader (~12 MB/s), {s.lines:,} lines: {s.seconds:.1f} s, trinit's peak RSS {s.rss_peak_mb:.1f} MB "
            f"(1,000 lines, fast reader: {s.rss_base_mb:.1f} MB); every line intact: {s.intact}"
        )
    print()
    rates = {
        case.name: statistics.median(run.lines_per_s for run in report.runs if run.case == case.name)
        for case in cases
        if any(run.case == case.name for run in report.runs)
    }
    verdicts: list[tuple[str, str, bool | None]] = [
        (
            f"prefixed output >= {TARGET_PREFIX / 1e6:.0f} M lines/s",
            f"{rates['trinit prefix'] / 1e6:.2f} M" if "trinit prefix" in rates else "-",
            rates["trinit prefix"] >= TARGET_PREFIX if "trinit prefix" in rates else None,
        ),
        (
            f"JSON output >= {TARGET_JSON / 1e6:.0f} M lines/s",
            f"{rates['trinit json'] / 1e6:.2f} M" if "trinit json" in rates else "-",
            rates["trinit json"] >= TARGET_JSON if "trinit json" in rates else None,
        ),
        ("no line lost or torn", "; ".join(report.errors) or "none", not report.errors),
    ]
    if report.slow is not None:
        verdicts.append(
            (
                "memory bounded under a slow reader",
                f"peak RSS {report.slow.rss_peak_mb:.1f} MB",
                report.slow.rss_peak_mb - report.slow.rss_base_mb < 16,
            )
        )
    print("\n".join(render_verdicts(verdicts, args.markdown)))
    if args.json:
        payload = asdict(report) | {"when": datetime.now(UTC).isoformat()}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if all(met is not False for _t, _m, met in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
