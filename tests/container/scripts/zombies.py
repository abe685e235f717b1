"""Run with `podman exec`: prints `PID STATE NAME` for every zombie in the container."""

from __future__ import annotations

import os

for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        name, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
        if state == "Z":
            print(entry, state, name)
