"""Main process of ready.toml: exits 0 as soon as /out/go exists (the watcher creates it)."""

from __future__ import annotations

import os
import time

while not os.path.exists("/out/go"):
    time.sleep(0.01)
