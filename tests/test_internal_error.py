"""trinit's own failures never leave children behind (issue 2, point 8).

A fault is injected into the running supervisor (its state bookkeeping raises once both
processes run); trinit must log the error, stop every child within the budget, and exit 70.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import sys
    import trinit.runtime.supervisor as sup

    original = sup.Runtime.notify
    calls = 0

    def faulty(self, runner):
        global calls
        original(self, runner)
        running = [r for r in self.runners.values() if r.handle is not None]
        if len(running) == 2:
            with open(sys.argv[2], "w") as f:
                f.write(" ".join(str(r.handle.pid) for r in running))
            raise RuntimeError("injected fault")

    sup.Runtime.notify = faulty
    from trinit.boot.main import main
    main(["-c", sys.argv[1]])
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_internal_error_stops_every_child_and_exits_70(tmp_path: Path) -> None:
    config = tmp_path / "trinit.toml"
    config.write_text(
        f"""
[process.app]
command = [{sys.executable!r}, "-c", "import time; time.sleep(60)"]
main = true

[process.side]
command = ["sleep", "60"]
"""
    )
    pids_file = tmp_path / "pids"
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script), str(config), str(pids_file)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 70, proc.stderr
    assert "internal error" in proc.stderr and "injected fault" in proc.stderr
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 2
    assert not any(_alive(p) for p in pids), "a child outlived trinit's internal error"
    assert time.monotonic() - started < 15
    assert os.path.exists(pids_file)
