"""Main process that makes orphans: each child forks a grandchild and exits at once, so the
grandchild is adopted by PID 1 and, once it exits, is a zombie until PID 1 reaps it.

Writes /out/reaped when every orphan is gone from /proc (a zombie still has its /proc entry),
then waits for SIGTERM (default action: the exit status is 128+15).
"""

from __future__ import annotations

import os
import signal
import sys
import time

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 5


def make_orphan() -> int:
    """The grandchild's pid, read back from a pipe: the child exits before the grandchild does."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        grandchild = os.fork()
        if grandchild == 0:
            os.close(r)
            time.sleep(0.2)  # outlive the child, so that the kernel reparents us to PID 1
            os._exit(0)
        os.write(w, str(grandchild).encode())
        os._exit(0)
    os.close(w)
    pid = int(os.read(r, 64))
    os.close(r)
    os.waitpid(child, 0)
    return pid


orphans = [make_orphan() for _ in range(COUNT)]
deadline = time.monotonic() + 15
while any(os.path.exists(f"/proc/{pid}") for pid in orphans) and time.monotonic() < deadline:
    time.sleep(0.01)
left = [pid for pid in orphans if os.path.exists(f"/proc/{pid}")]
with open("/out/reaped", "w") as f:
    f.write(f"orphans {orphans} left {left}\n")
signal.pause()
