"""The shutdown drains the output of a prefixed process started after every earlier output
pump had already ended (the drain must not believe "all pumps are done" from before)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import harness_fixture, wait_for

pytestmark = pytest.mark.pid1

h = harness_fixture()

LINES = 20000

CONFIG = """
[process.first]
command = ["sh", "-c", "echo first-done"]
oneshot = true
output = "prefix"

[process.late]
command = ["sh", "-c", "touch {up}; trap 'seq 1 {lines}; exit 0' TERM; while :; do sleep 0.05; done"]
after = {{ first = "completed" }}
output = "prefix"

[process.app]
command = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]
main = true
after = {{ late = "started" }}
"""


def test_output_of_a_later_prefixed_process_is_drained(h, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    up = tmp_path / "late-up"
    config = tmp_path / "trinit.toml"
    config.write_text(CONFIG.format(up=up, lines=LINES))
    run = h.start(["-c", str(config)])
    wait_for(up.exists)
    run.wait_handling()
    run.send(15)
    assert run.wait() == 0, run.stderr()
    out = run.stdout().splitlines()
    assert "first | first-done" in out
    assert f"late | {LINES}" in out, "the late process's last line was lost in the drain"
    assert sum(1 for line in out if line.startswith("late | ")) == LINES
