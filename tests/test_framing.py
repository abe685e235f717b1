"""The fast Framer against the line-by-line definition of each output mode, on arbitrary bytes."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trinit._text import CONTROLS, escape_json_controls
from trinit.io import framing
from trinit.io.framing import MAX_LINE, Framer, split_lines

TS = "2026-11-29T12:00:00.123Z"


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(framing, "rfc3339_utc", lambda: TS)


def _strip_eol(raw: bytes) -> bytes:
    if raw.endswith(b"\n"):
        raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    return raw


def reference(
    lines: list[bytes], *, name: str, stream: str, mode: str, log_format: str, seen: list[str]
) -> bytes:
    """Each line on its own, as the pump framed output before the fast path (plus the control escapes)."""
    out: list[bytes] = []
    for raw in lines:
        text = _strip_eol(raw).decode("utf-8", "replace")
        seen.append(text)
        if mode == "inherit":
            out.append(raw)
        elif mode == "prefix" and log_format == "json":
            obj = {"ts": TS, "process": name, "stream": stream, "line": text}
            dumped = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
            out.append(escape_json_controls(dumped).encode("utf-8", "backslashreplace") + b"\n")
        elif mode == "prefix":
            prefix = (name + " | ").encode("utf-8", "backslashreplace")
            out.append(prefix + raw if raw.endswith(b"\n") else prefix + raw + b"\n")
    return b"".join(out)


#: Bytes that take every path: newlines, CR, what JSON escapes, DEL, C1, U+2028, UTF-8 of 2 to 4
#: bytes, and bytes that are not UTF-8 (a lone continuation byte, a cut sequence, 0xFF).
TOKENS = [
    b"a",
    b"bcd",
    b" ",
    b"\n",
    b"\r",
    b"\r\n",
    b'"',
    b"\\",
    b"\t",
    b"\x00",
    b"\x1b",
    b"\x7f",
    "\x85".encode(),
    "\u2028".encode(),
    "é".encode(),
    "€".encode(),
    "😀".encode(),
    b"\x80",
    b"\xe2\x82",
    b"\xff",
]
streams = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join),
    st.binary(max_size=80),
)


@st.composite
def chunked(draw: st.DrawFn) -> list[bytes]:
    data = draw(streams)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@settings(max_examples=400, deadline=None)
@given(
    chunks=chunked(),
    max_line=st.one_of(st.integers(1, 12), st.just(MAX_LINE)),
    mode=st.sampled_from(["inherit", "prefix", "json", "null"]),
    name=st.sampled_from(["app", 'we"ird\\', "naïve\u2028\x85", "x\x7f\x1b"]),
    watch=st.booleans(),
)
def test_framer_equals_the_line_by_line_definition(
    chunks: list[bytes], max_line: int, mode: str, name: str, watch: bool
) -> None:
    out_mode = "prefix" if mode == "json" else mode
    log_format = "json" if mode == "json" else "text"
    seen: list[str] = []
    want_seen: list[str] = []
    framer = Framer(
        name=name,
        stream="stderr",
        mode=out_mode,  # type: ignore[arg-type]
        log_format=log_format,  # type: ignore[arg-type]
        on_line=seen.append if watch else None,
        max_line=max_line,
    )
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        lines = split_lines(buf, final=False, max_line=max_line)
        want = reference(
            lines, name=name, stream="stderr", mode=out_mode, log_format=log_format, seen=want_seen
        )
        assert framer.feed(chunk) == want
    lines = split_lines(buf, final=True, max_line=max_line)
    want = reference(lines, name=name, stream="stderr", mode=out_mode, log_format=log_format, seen=want_seen)
    assert framer.finish() == want
    assert seen == (want_seen if watch else [])


@given(st.text())
def test_json_escape_equals_escape_json_controls(text: str) -> None:
    assert framing._escape_json(text) == escape_json_controls(text)


@given(st.binary(max_size=200))
def test_every_json_line_is_valid_json_with_the_line_text(data: bytes) -> None:
    framer = Framer(name="app", stream="stdout", mode="prefix", log_format="json", on_line=None)
    out = framer.feed(data) + framer.finish()
    lines = split_lines(bytearray(data), final=True)
    objs = [json.loads(line) for line in out.split(b"\n")[:-1]]
    assert [o["line"] for o in objs] == [_strip_eol(raw).decode("utf-8", "replace") for raw in lines]
    for line in out.split(b"\n")[:-1]:
        assert not set(line.decode("utf-8")) & CONTROLS  # no C0, DEL, C1 or U+2028/9 left raw


def test_a_block_of_plain_lines_takes_the_copying_path() -> None:
    """The fast path's shape: one object per line, the line's bytes copied between quotes."""
    framer = Framer(name="app", stream="stdout", mode="prefix", log_format="json", on_line=None)
    out = framer.feed(b"one\r\ntwo\nthr")
    assert out == (
        b'{"ts":"' + TS.encode() + b'","process":"app","stream":"stdout","line":"one"}\n'
        b'{"ts":"' + TS.encode() + b'","process":"app","stream":"stdout","line":"two"}\n'
    )
    assert framer.finish().endswith(b'"line":"thr"}\n')


def test_the_long_line_check_finds_a_long_line_anywhere() -> None:
    for max_line in (1, 2, 7, 64):
        for size in range(1, 3 * max_line + 3):
            for at in range(0, 200 - size):
                data = b"a\n" * (at // 2) + b"\n" * (at % 2) + b"x" * size + b"\n" * (200 - size - at)
                assert framing._lines_fit(data, len(data), max_line) == (size <= max_line), (
                    max_line,
                    size,
                    at,
                )


@given(st.lists(st.integers(0, 40), min_size=1), st.integers(1, 20))
def test_the_long_line_check_is_exact(lengths: list[int], max_line: int) -> None:
    data = b"".join(b"x" * n + b"\n" for n in lengths)
    assert framing._lines_fit(data, len(data), max_line) == (max(lengths) <= max_line)
