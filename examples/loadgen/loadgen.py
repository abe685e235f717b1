"""A load generator on trinit's library: N hashing workers, stopped gracefully on Ctrl-C.

    python examples/loadgen/loadgen.py --workers 4              # until Ctrl-C
    python examples/loadgen/loadgen.py --workers 4 --seconds 10 # or for 10 seconds

The workers (``worker.py``) are started through ``trinit.open_supervisor``. On Ctrl-C
(SIGINT), SIGTERM or when ``--seconds`` are up, the program leaves the supervisor's block:
trinit sends every worker its stop signal (SIGTERM), gives it ``stop_timeout`` to write its
results, and only then does the block end. The summary is made from the results files.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import trio

import trinit

WORKER = Path(__file__).resolve().parent / "worker.py"
#: How long each worker may take to write its results once asked to stop.
STOP_TIMEOUT = 10.0


def build_config(workers: int, out: Path, block_kib: int) -> trinit.Config:
    """One process per worker; each is ready once it has printed ``ready``."""
    processes = [
        trinit.ProcessSpec(
            name=f"worker-{i}",
            command=[
                sys.executable,
                str(WORKER),
                "--id",
                str(i),
                "--out",
                str(out),
                "--block-kib",
                str(block_kib),
            ],
            ready={"log": "^ready$", "timeout": 30},
            output="prefix",
            stop_signal="SIGTERM",
            stop_timeout=STOP_TIMEOUT,
            restart="on-failure",
            max_restarts=3,
            on_failure="ignore",  # one crashed worker does not end the run; the summary shows it
        )
        for i in range(workers)
    ]
    return trinit.Config(processes=processes, shutdown_timeout=STOP_TIMEOUT + 5)


async def announce_when_ready(sup: trinit.Supervisor, names: Sequence[str], out: Path) -> None:
    for name in names:
        try:
            await sup.wait_ready(name)
        except trinit.TrinitError as exc:
            print(f"loadgen: {exc}", flush=True)
    status = sup.status()
    pids = ", ".join(str(status[n].pid) for n in names if status[n].pid is not None)
    print(f"loadgen: {len(names)} workers running (pids {pids}); results go to {out}", flush=True)
    print("loadgen: press Ctrl-C to stop them", flush=True)


async def until_stopped(signals: AsyncIterator[int], seconds: float | None) -> str:
    """Wait for SIGINT/SIGTERM or for ``seconds``; returns why we stop."""
    with trio.move_on_after(math.inf if seconds is None else seconds):
        async for signum in signals:
            return f"got {signal.Signals(signum).name}"
    return f"{seconds:g} s are up"


def summarize(
    out: Path, names: Sequence[str], status: dict[str, trinit.ProcessStatus], elapsed: float
) -> int:
    """Print one line per worker and the total; 0 if every worker wrote its results."""
    print(f"\nloadgen summary: {len(names)} workers, {elapsed:.1f} s")
    total_blocks = total_bytes = 0
    wrote = 0
    mib = 1024 * 1024
    for i, name in enumerate(names):
        path = out / f"worker-{i}.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            last = status[name].last_exit
            how = last.describe() if last is not None else status[name].state
            print(f"  {name:<10} no results ({how})")
            continue
        wrote += 1
        blocks, size, secs = int(data["iterations"]), int(data["bytes"]), float(data["seconds"])
        total_blocks += blocks
        total_bytes += size
        rate = size / mib / secs if secs > 0 else 0.0
        print(
            f"  {name:<10} pid {data['pid']:<8} {blocks:>10} blocks {size / mib:>10.1f} MiB {rate:>8.1f} MiB/s"
        )
    rate = total_bytes / mib / elapsed if elapsed > 0 else 0.0
    print(f"  {'total':<23} {total_blocks:>10} blocks {total_bytes / mib:>10.1f} MiB {rate:>8.1f} MiB/s")
    print(f"{wrote}/{len(names)} workers wrote their results to {out}", flush=True)
    return 0 if wrote == len(names) else 1


async def main_async(workers: int, seconds: float | None, out: Path, block_kib: int) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("worker-*.json"):
        old.unlink()
    config = build_config(workers, out, block_kib)
    names = [p.name for p in config.processes]
    began = trio.current_time()
    # Library mode installs no signal handlers: this program handles Ctrl-C itself. The
    # receiver stays open until the workers are gone, so a second Ctrl-C cannot interrupt
    # the graceful stop (each worker has at most STOP_TIMEOUT, then SIGKILL).
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trinit.open_supervisor(config) as sup:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(announce_when_ready, sup, names, out)
                why = await until_stopped(signals, seconds)
                nursery.cancel_scope.cancel()
            print(f"loadgen: {why}; asking the workers to write their results", flush=True)
        # Leaving the block stopped every worker (SIGTERM, then at most stop_timeout).
        status = sup.status()
    return summarize(out, names, status, trio.current_time() - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run hashing workers under trinit until Ctrl-C.")
    parser.add_argument("--workers", type=int, default=4, help="number of worker processes (default 4)")
    parser.add_argument(
        "--seconds", type=float, default=None, help="stop after this long (default: on Ctrl-C)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the results (default: a new temp dir)"
    )
    parser.add_argument(
        "--block-kib", type=int, default=64, help="size of each hashed block in KiB (default 64)"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.seconds is not None and args.seconds <= 0:
        parser.error("--seconds must be positive")
    out: Path = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="loadgen-"))
    return trio.run(main_async, args.workers, args.seconds, out, args.block_kib)


if __name__ == "__main__":
    sys.exit(main())
