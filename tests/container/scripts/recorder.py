"""Main process for the signal checks: appends the number of every signal it gets to /out/signals.

SIGTERM keeps its default action so that `podman stop` ends it; SIGKILL and SIGSTOP cannot be caught.
"""

from __future__ import annotations

import os
import signal

fd = os.open("/out/signals", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def record(signum: int, frame: object) -> None:
    os.write(fd, f"{signum}\n".encode())


for signum in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM, signal.SIGCHLD}:
    signal.signal(signum, record)
with open("/out/recording", "w") as f:
    f.write(f"{os.getpid()}\n")
while True:
    signal.pause()
