"""Make COUNT orphans at once, then stay up until a signal ends it.

    orphans.py DIR COUNT

Each orphan comes from a double fork (its parent exits at once, so it is re-parented to
trinit) and waits on a shared pipe. DIR/pids lists them once all are made; the test creates
DIR/go, and closing the pipe then ends all of them in the same instant: COUNT exits of
processes trinit never started, arriving together. DIR/done says they were released.
"""

from __future__ import annotations

import os
import sys
import time


def main() -> None:
    folder, count = sys.argv[1], int(sys.argv[2])
    gate_r, gate_w = os.pipe()
    report_r, report_w = os.pipe()
    for _ in range(count):
        if os.fork() == 0:
            os.close(report_r)
            pid = os.fork()
            if pid == 0:
                os.close(gate_w)
                os.close(report_w)
                os.read(gate_r, 1)  # EOF once the main process closes the gate
                os._exit(0)
            os.write(report_w, f"{pid}\n".encode())
            os._exit(0)
        os.wait()
    os.close(report_w)
    os.close(gate_r)
    data = b""
    while chunk := os.read(report_r, 65536):
        data += chunk
    with open(os.path.join(folder, "pids.tmp"), "wb") as f:
        f.write(data)
    os.rename(os.path.join(folder, "pids.tmp"), os.path.join(folder, "pids"))
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(folder, "go")) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.close(gate_w)
    open(os.path.join(folder, "done"), "w").close()
    time.sleep(60)


if __name__ == "__main__":
    main()
