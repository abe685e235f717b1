"""A config is read with a bound (16 MiB): `-c /dev/zero` is a clear config error, not a
MemoryError; a config from a FIFO (`-c <(generate-config)`) still works."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from trinit import ConfigError
from trinit.config.load import MAX_CONFIG_BYTES, load_config

GOOD = b'[process.app]\ncommand = ["true"]\nmain = true\n'


def test_a_config_over_the_limit_is_a_config_error_naming_file_and_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_bytes(GOOD + b"#" * 100 + b"\n" + (b"#" * 1023 + b"\n") * (MAX_CONFIG_BYTES // 1024))
    with pytest.raises(ConfigError) as info:
        load_config(big)
    assert info.value.errors == [
        f"{big}: the config is larger than 16 MiB, the most trinit reads; give -c a TOML file"
    ]


def test_a_config_at_the_limit_is_read(tmp_path: Path) -> None:
    edge = tmp_path / "edge.toml"
    edge.write_bytes(GOOD + b"#" * (MAX_CONFIG_BYTES - len(GOOD) - 1) + b"\n")
    assert load_config(edge).main_process() is not None


def _limit_memory() -> None:
    # If the bound is missing, fail fast with MemoryError instead of eating the machine's memory.
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_dev_zero_is_a_config_error_not_a_memory_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "trinit", "-c", "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "trinit: error: /dev/zero: the config is larger than 16 MiB, the most trinit reads; give -c a TOML file"
    ]


def test_a_config_from_a_fifo_with_a_writer_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with fifo.open("wb") as f:
            for part in (GOOD[:10], GOOD[10:]):  # in two writes: read to the writer's end
                f.write(part)
                f.flush()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        config = load_config(fifo)
    finally:
        writer.join(10)
    main = config.main_process()
    assert main is not None and main.command == ("true",)


def test_a_cli_config_from_a_pipe_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", "-c", f'exec {sys.executable} -m trinit check -c <(printf "%s" "$CONFIG")'],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CONFIG": GOOD.decode()},
    )
    assert proc.returncode == 0, proc.stderr
