"""The CLI's first config load leaves no parser behind (``boot.overrides.load_first``).

Each case runs in a fresh interpreter: the function changes ``sys.modules``, as only the CLI,
which owns its process, may. After it, neither tomllib nor ``datetime`` is loaded, the C half of
``datetime`` was never mapped, the config is right, and whatever imports ``datetime`` later (a
cron schedule's zone, a reload's parse) gets the whole module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

_PROBE = textwrap.dedent(
    """
    import json, sys
    from trinit.boot.argv import parse_args
    from trinit.boot.overrides import load_first
    try:
        config = load_first(parse_args(["-c", sys.argv[1]], {}))
        outcome = {"processes": [p.name for p in config.processes]}
    except Exception as exc:
        outcome = {"error": getattr(exc, "errors", [repr(exc)])}
    with open("/proc/self/maps") as maps:
        mapped = "_datetime" in maps.read()
    loaded = sorted(n for n in sys.modules if "tomllib" in n or "datetime" in n)
    whole = "datetime" not in sys.modules or hasattr(sys.modules["datetime"], "datetime_CAPI")
    print(json.dumps({**outcome, "loaded": loaded, "mapped": mapped, "whole": whole}))
    """
)


def _load_first(tmp_path: Path, toml: str) -> dict[str, Any]:
    path = tmp_path / "trinit.toml"
    path.write_text(toml)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_nothing_of_the_parser_is_left(tmp_path: Path) -> None:
    result = _load_first(tmp_path, '[process.a]\ncommand = ["sleep", "1"]\n[process.b]\ncommand = "true"\n')
    assert result == {"processes": ["a", "b"], "loaded": [], "mapped": False, "whole": True}


def test_a_toml_date_is_still_an_error(tmp_path: Path) -> None:
    result = _load_first(tmp_path, '[process.a]\ncommand = "x"\nstop_timeout = 1979-05-27\n')
    assert "stop_timeout: must be a duration" in str(result["error"])
    assert result["loaded"] == [] and result["mapped"] is False


def test_a_cron_schedule_gets_the_whole_datetime(tmp_path: Path) -> None:
    toml = '[process.a]\ncommand = "x"\n[process.job]\ncommand = "y"\noneshot = true\nschedule = "*/5 * * * *"\n'
    result = _load_first(tmp_path, toml)
    # Its zone needs the C half (zoneinfo's C module takes datetime's C API): loaded, and whole.
    assert result["processes"] == ["a", "job"] and result["whole"] is True
    assert "datetime" in result["loaded"] and not any("tomllib" in n for n in result["loaded"])
