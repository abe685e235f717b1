"""A config that takes its time to arrive: a FIFO (``-c <(generate-config)``) keeps working,
and a SIGTERM or SIGINT while trinit waits for it ends trinit at once, nothing started."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from .helpers import harness_fixture, mode_fixture, read_status, sig_mask, wait_for

pytestmark = pytest.mark.pid1

h = harness_fixture()
as_pid1 = mode_fixture()

CONFIG = """
[process.app]
command = ["sh", "-c", "echo app-ran > {out}; exit 3"]
main = true
"""


def _fifo(tmp: Path) -> Path:
    path = tmp / "config.toml"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_stop_signal_while_the_config_is_awaited_ends_trinit_at_once(h, as_pid1, tmp_path, sig):
    fifo = _fifo(tmp_path)
    run = h.start(["-c", str(fifo)], pid1=as_pid1)
    run.wait_handling(logged=False)  # the load-time handler is in place: trinit waits in open()
    assert run.running()
    run.send(sig)
    assert run.wait(timeout=5) == 0, "a stop asked for before anything started is not a failure"
    assert "nothing was started" in run.stderr()
    assert not (tmp_path / "out").exists()


def test_a_config_from_a_fifo_still_runs(h, as_pid1, tmp_path):
    fifo = _fifo(tmp_path)
    out = tmp_path / "out"
    run = h.start(["-c", str(fifo)], pid1=as_pid1)
    run.wait_handling(logged=False)

    def write() -> None:
        with open(fifo, "w") as f:
            f.write(CONFIG.format(out=out))

    writer = threading.Thread(target=write)
    writer.start()
    assert run.wait() == 3
    writer.join(5)
    wait_for(out.exists)


def test_a_dropped_term_stays_dropped_while_loading(h, tmp_path):
    """``-r TERM:0`` drops SIGTERM, also while the config is awaited."""
    fifo = _fifo(tmp_path)
    run = h.start(["-r", "TERM:0", "-c", str(fifo)], pid1=False)
    run.wait_started()
    wait_for(lambda: signal.SIGINT in sig_mask(read_status(run.pid).get("SigCgt", "0")))
    run.send(signal.SIGTERM)
    run.send(signal.SIGINT)
    assert run.wait(timeout=5) == 0
    assert "received SIGINT" in run.stderr()
