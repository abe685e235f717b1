"""The loadgen example: a trio program that runs its workers under ``open_supervisor``."""

from __future__ import annotations

from pathlib import Path

import trio
from library_kids import (
    INT,
    PY,
    REPO,
    alive,
    until,
)

LOADGEN = REPO / "examples" / "loadgen" / "loadgen.py"


async def _loadgen(tmp_path: Path, *args: str, sig: int | None) -> tuple[int, str, Path]:
    results = tmp_path / "results"
    out, err = tmp_path / "loadgen.out", tmp_path / "loadgen.err"
    with out.open("wb") as f, err.open("wb") as g:  # separate: trinit's log must not split its lines
        proc = await trio.lowlevel.open_process(
            [PY, str(LOADGEN), *args, "--out", str(results)], stdout=f, stderr=g
        )
    try:
        with trio.fail_after(60):
            if sig is not None:
                await until(
                    lambda: "workers running" in out.read_text() or proc.poll() is not None,
                    timeout=30,
                    what="loadgen to start its workers",
                )
                await trio.sleep(0.5)  # let the workers do some work
                proc.send_signal(sig)
            code = await proc.wait()
    finally:
        if proc.returncode is None:  # pragma: no cover - only when the test fails
            proc.kill()
            await proc.wait()
    return code, out.read_text() + err.read_text(), results


def _check_results(results: Path, workers: int, output: str) -> None:
    import json

    files = sorted(results.glob("worker-*.json"))
    assert [f.name for f in files] == [f"worker-{i}.json" for i in range(workers)], output
    for f in files:
        data = json.loads(f.read_text())
        assert data["iterations"] > 0 and data["signal"] == "SIGTERM", data
        assert not alive(data["pid"])
    assert f"{workers}/{workers} workers wrote their results" in output, output
    assert "total" in output, output


async def test_loadgen_ctrl_c_lets_every_worker_write_its_results(tmp_path: Path) -> None:
    code, output, results = await _loadgen(tmp_path, "--workers", "3", sig=INT)
    assert code == 0, output
    _check_results(results, 3, output)


async def test_loadgen_stops_after_its_seconds(tmp_path: Path) -> None:
    code, output, results = await _loadgen(tmp_path, "--workers", "2", "--seconds", "1", sig=None)
    assert code == 0, output
    _check_results(results, 2, output)
