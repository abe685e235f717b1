"""Cheap parsers for durations and signals, shared by the CLI's fast start and the model.

Kept free of attrs and trio so the command line can be read before the main process starts.
"""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds from ``5``, ``0.5``, ``"500ms"``, ``"2s"``, ``"1m"`` or ``"1h"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if m is None:
            raise ValueError(value)
        seconds = float(m.group(1)) * _UNIT[m.group(2)]
    else:
        raise ValueError(value)
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(value)
    return seconds


def _signal_numbers() -> dict[str, int]:
    import signal

    names = {s.name[3:]: int(s) for s in signal.Signals if s.name.startswith("SIG") and "_" not in s.name}
    names.update({"IOT": signal.SIGABRT, "POLL": signal.SIGIO})
    low, high = signal.SIGRTMIN, signal.SIGRTMAX
    names["RTMIN"], names["RTMAX"] = low, high
    for i in range(1, high - low):
        names[f"RTMIN+{i}"] = low + i
        names[f"RTMAX-{i}"] = high - i
    return names


def parse_signal(value: object, *, allow_zero: bool = False) -> int:
    """A signal number from ``15``, ``"15"``, ``"TERM"``, ``"sigterm"`` or ``"SIGRTMIN+2"``."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip().upper()
        if text.isdigit():
            number = int(text)
        else:
            if text.startswith("SIG"):
                text = text[3:]
            names = _signal_numbers()
            if text not in names:
                raise ValueError(value)
            number = names[text]
    else:
        raise ValueError(value)
    import signal

    if number == 0 and allow_zero:
        return 0
    if number not in signal.valid_signals():
        raise ValueError(value)
    return number


def signal_name(number: int) -> str:
    """``SIGTERM`` for 15, ``SIGRTMIN+2`` for a real-time signal."""
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return f"SIGRTMIN+{number - signal.SIGRTMIN}"
        return f"signal {number}"
