"""pump_output against real pipes and files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from fdutil import TS_RE, read_to_eof, small_pipe

from trinit.io.output import MAX_LINE, pump_output
from trinit.io.writer import FdWriter

# -- helpers ------------------------------------------------------------------------------


async def pump(
    chunks: list[bytes],
    *,
    mode: str = "prefix",
    log_format: str = "text",
    name: str = "app",
    stream: str = "stdout",
    on_line: Callable[[str], None] | None = None,
    with_writer: bool = True,
    tmp_path: Path,
) -> bytes:
    """Feed ``chunks`` through a real pipe into pump_output; return what reached the writer's fd."""
    path = tmp_path / f"pump-{time.monotonic_ns()}"
    out_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    writer = FdWriter(out_fd) if with_writer else None
    r, w = os.pipe()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: pump_output(
                    r,
                    name=name,
                    stream=stream,  # type: ignore[arg-type]
                    mode=mode,  # type: ignore[arg-type]
                    log_format=log_format,  # type: ignore[arg-type]
                    writer=writer,
                    on_line=on_line,
                )
            )
            async with trio.lowlevel.FdStream(w) as feeder:
                for chunk in chunks:
                    await feeder.send_all(chunk)
        if writer is not None:
            writer.close(10)
            assert writer.flushed()
    finally:
        os.close(out_fd)
    return path.read_bytes()


# -- pump_output --------------------------------------------------------------------------


async def test_prefix_text(tmp_path: Path) -> None:
    out = await pump([b"hello\nwor", b"ld\r\n", b"\n"], tmp_path=tmp_path)
    # each line keeps its own ending: a CRLF app's output reaches the log as CRLF
    assert out == b"app | hello\napp | world\r\napp | \n"


async def test_prefix_partial_last_line(tmp_path: Path) -> None:
    out = await pump([b"one\ntwo"], tmp_path=tmp_path)
    assert out == b"app | one\napp | two\n"


async def test_prefix_keeps_undecodable_bytes(tmp_path: Path) -> None:
    out = await pump([b"caf\xe9\n"], tmp_path=tmp_path, name="db")
    assert out == b"db | caf\xe9\n"


async def test_prefix_json(tmp_path: Path) -> None:
    out = await pump(
        [b'plain\nquote " and \\ back\n', b"caf\xc3\xa9 \xff\npartial"],
        log_format="json",
        stream="stderr",
        tmp_path=tmp_path,
    )
    lines = out.split(b"\n")
    assert lines[-1] == b""
    objs = [json.loads(line) for line in lines[:-1]]
    assert [o["line"] for o in objs] == ["plain", 'quote " and \\ back', "café \ufffd", "partial"]
    for o in objs:
        assert list(o) == ["ts", "process", "stream", "line"]
        assert o["process"] == "app" and o["stream"] == "stderr"
        assert TS_RE.match(o["ts"])


async def test_prefix_json_escapes_every_control_and_keeps_the_text(tmp_path: Path) -> None:
    """DEL, C1 and U+2028/9 are escaped as in trinit's own JSON lines; tabs, quotes, backslashes
    and UTF-8 text take the block path, a control character the line-by-line one: all valid JSON."""
    texts = ["tab\there", 'say "hi" \\ bye', "Grüße — ✓", "del\x7f c1\x85 sep\u2028", "bell\x07", "cr\rmid"]
    data = "".join(text + "\n" for text in texts).encode()
    out = await pump([data[:7], data[7:40], data[40:]], log_format="json", tmp_path=tmp_path)
    lines = out.split(b"\n")[:-1]
    assert [json.loads(line)["line"] for line in lines] == texts
    raw = out.decode()
    assert "\x7f" not in raw and "\x85" not in raw and "\u2028" not in raw
    assert "\\u007f" in raw and "\\u0085" in raw and "\\u2028" in raw and "Grüße — ✓" in raw


async def test_inherit_passes_bytes_unchanged(tmp_path: Path) -> None:
    data = [b"a\r\n", b"\xff\xfe bin\x00ary\n", b"x" * (MAX_LINE * 2 + 10), b"\nno newline at end"]
    out = await pump(data, mode="inherit", tmp_path=tmp_path)
    assert out == b"".join(data)


async def test_null_writes_nothing_but_on_line_sees_lines(tmp_path: Path) -> None:
    seen: list[str] = []
    out = await pump([b"a\nb\n", b"c"], mode="null", on_line=seen.append, tmp_path=tmp_path)
    assert out == b""
    assert seen == ["a", "b", "c"]


async def test_without_writer_drains_and_calls_on_line(tmp_path: Path) -> None:
    seen: list[str] = []
    out = await pump([b"x\n" * 1000], with_writer=False, on_line=seen.append, tmp_path=tmp_path)
    assert out == b""
    assert seen == ["x"] * 1000


async def test_on_line_sees_every_line_in_every_mode(tmp_path: Path) -> None:
    payload = b"".join(f"line {i} \xff\n".encode("latin-1") for i in range(3000)) + b"tail"
    pieces = [payload[i : i + 777] for i in range(0, len(payload), 777)]
    want = [f"line {i} \ufffd" for i in range(3000)] + ["tail"]
    for mode in ("prefix", "inherit", "null"):
        seen: list[str] = []
        out = await pump(pieces, mode=mode, on_line=seen.append, tmp_path=tmp_path)
        assert seen == want, mode
        if mode == "inherit":
            assert out == payload


async def test_long_lines_split_into_prefixed_pieces(tmp_path: Path) -> None:
    total = 200 * 1024
    out = await pump([b"x" * total + b"\n", b"short\n"], tmp_path=tmp_path)
    lines = out.split(b"\n")[:-1]
    assert [len(line) - len(b"app | ") for line in lines] == [
        MAX_LINE,
        MAX_LINE,
        MAX_LINE,
        total - 3 * MAX_LINE,
        5,
    ]
    assert all(line.startswith(b"app | ") for line in lines)


async def test_line_of_exactly_max_length_is_not_split(tmp_path: Path) -> None:
    out = await pump([b"y" * MAX_LINE, b"\n"], tmp_path=tmp_path)
    assert out == b"app | " + b"y" * MAX_LINE + b"\n"


async def test_long_utf8_line_split_on_character_boundary(tmp_path: Path) -> None:
    text = "a" + "é" * 50_000  # 100 001 bytes; byte 65536 is the middle of a 2-byte character
    out = await pump([text.encode() + b"\n"], log_format="json", tmp_path=tmp_path)
    pieces = [json.loads(line)["line"] for line in out.split(b"\n")[:-1]]
    assert len(pieces) == 2
    assert "".join(pieces) == text
    assert "\ufffd" not in "".join(pieces)
    assert all(len(p.encode()) <= MAX_LINE for p in pieces)


async def test_backpressure_end_to_end_nothing_lost(tmp_path: Path) -> None:
    """A child much faster than its reader is slowed down, never dropped."""
    out_r, out_w = small_pipe()
    writer = FdWriter(out_w, capacity=2)
    n = 20_000
    payload = b"".join(f"{i} {'z' * (i % 50)}\n".encode() for i in range(n))
    r, w = os.pipe()
    reader = threading.Thread(target=lambda: result.append(read_to_eof(out_r)))
    result: list[bytes] = []
    reader.start()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: pump_output(
                    r, name="fast", stream="stdout", mode="prefix", log_format="text", writer=writer
                )
            )
            async with trio.lowlevel.FdStream(w) as feeder:
                await feeder.send_all(payload)
        writer.close(30)
        assert writer.flushed()
    finally:
        os.close(out_w)
        await trio.to_thread.run_sync(reader.join)
        os.close(out_r)
    expected = b"".join(b"fast | " + line + b"\n" for line in payload.split(b"\n")[:-1])
    assert result[0] == expected


async def test_pump_closes_its_fd(tmp_path: Path) -> None:
    r, w = os.pipe()
    os.close(w)
    await pump_output(r, name="a", stream="stdout", mode="null", log_format="text", writer=None)
    with pytest.raises(OSError):
        os.fstat(r)


async def test_cancel_flushes_what_was_already_read(tmp_path: Path) -> None:
    path = tmp_path / "out"
    out_fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    writer = FdWriter(out_fd)
    r, w = os.pipe()
    seen = trio.Event()
    try:
        os.write(w, b"complete\npartial")
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    lambda: pump_output(
                        r,
                        name="app",
                        stream="stdout",
                        mode="prefix",
                        log_format="text",
                        writer=writer,
                        on_line=lambda _line: seen.set(),
                    )
                )
                await seen.wait()
                await trio.testing.wait_all_tasks_blocked()  # the pump now holds "partial"
                scope.cancel()
        writer.close(5)
        assert path.read_bytes() == b"app | complete\napp | partial\n"
    finally:
        os.close(w)
        os.close(out_fd)


def test_logger_import_does_not_pull_in_trio() -> None:
    """The logger reports a config error before trio is loaded; only the pumps need trio."""
    code = "import sys, trinit.io.writer, trinit.io.log; sys.exit('trio' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
