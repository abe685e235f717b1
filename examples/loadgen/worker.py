"""A load-generator worker: hashes a block of random bytes over and over.

On SIGTERM or SIGINT it stops at the end of the current block, writes what it did to
``OUT/worker-ID.json`` (atomically: a temporary file, then a rename) and exits 0. It prints
``ready`` once its signal handlers are in place, which is what ``loadgen.py`` waits for.

    python worker.py --id 0 --out /tmp/loadgen
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType


class StopFlag:
    """Set by the signal handler; the work loop looks at it after every block."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signum


def write_results(path: Path, results: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--id", type=int, required=True, help="this worker's number")
    parser.add_argument("--out", type=Path, required=True, help="folder for the results file")
    parser.add_argument("--block-kib", type=int, default=64, help="size of the hashed block (KiB)")
    args = parser.parse_args(argv)

    stop = StopFlag()
    signal.signal(signal.SIGTERM, stop.handler)
    signal.signal(signal.SIGINT, stop.handler)

    block = os.urandom(args.block_kib * 1024)
    digest = hashlib.sha256()
    iterations = 0
    started = time.monotonic()
    print("ready", flush=True)
    while stop.signal is None:
        digest.update(block)
        iterations += 1
    seconds = time.monotonic() - started

    results: dict[str, object] = {
        "worker": args.id,
        "pid": os.getpid(),
        "iterations": iterations,
        "bytes": iterations * len(block),
        "seconds": round(seconds, 6),
        "digest": digest.hexdigest(),
        "signal": signal.Signals(stop.signal).name,
    }
    write_results(args.out / f"worker-{args.id}.json", results)
    print(f"stopped by {results['signal']} after {iterations} blocks; results written", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
