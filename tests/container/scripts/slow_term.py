"""Main process whose child (trinit's grandchild) needs 0.5 s after SIGTERM to finish its file.

The main process exits on SIGTERM at once; the grandchild, in the main process's group, gets SIGTERM
from trinit's sweep, and the container must not end before it has written /out/grandchild "done".
"""

from __future__ import annotations

import os
import signal
import time

if os.fork() == 0:

    def finish(signum: int, frame: object) -> None:
        with open("/out/grandchild", "a") as f:
            f.write("term ")
            f.flush()
            time.sleep(0.5)  # the slow part of a graceful stop
            f.write("done\n")
        os._exit(0)

    signal.signal(signal.SIGTERM, finish)
    with open("/out/grandchild", "w") as f:
        f.write("started ")
    while True:
        signal.pause()

signal.pause()
