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
    from trinit.boot import overrides
    from trinit.boot.argv import parse_args
    from trinit.config import defaults
    overrides.COMPACT_FROM = int(sys.argv[2])
    opts = parse_args(["-c", sys.argv[1]], {})
    try:
        config = overrides.load_first(opts)
        outcome = {"processes": [p.name for p in config.processes]}
    except Exception as exc:
        config, outcome = None, {"error": getattr(exc, "errors", [repr(exc)])}
    with open("/proc/self/maps") as maps:
        mapped = "_datetime" in maps.read()
    loaded = sorted(n for n in sys.modules if "tomllib" in n or "datetime" in n)
    whole = "datetime" not in sys.modules or hasattr(sys.modules["datetime"], "datetime_CAPI")
    if config is not None:  # against a plain load (which loads the parser again: after the above)
        outcome["same"] = config == overrides.load_for_cli(opts)
        outcome["shared"] = all(p.stop_timeout is defaults.STOP_TIMEOUT for p in config.processes)
    print(json.dumps({**outcome, "loaded": loaded, "mapped": mapped, "whole": whole}))
    """
)


#: Most kinds of key, so the rebuilt copy is compared field by field with a fresh load.
_RICH = textwrap.dedent(
    """
    [trinit]
    shutdown_timeout = "20s"
    [process.db]
    command = ["sleep", "100"]
    env = { A = "1" }
    ready = { exec = ["true"], interval = "50ms" }
    health = { exec = ["true"] }
    restart = "always"
    stop_signal = "INT"
    rlimits = { nofile = 1024 }
    [process.web]
    command = "sleep 100"
    after = { db = { when = "ready", restart = true } }
    pre_stop = ["true"]
    stop_delay = "1s"
    [process.job]
    command = ["true"]
    oneshot = true
    every = "1h"
    jitter = "5s"
    """
)


def _load_first(tmp_path: Path, toml: str, compact_from: int = 1000) -> dict[str, Any]:
    path = tmp_path / "trinit.toml"
    path.write_text(toml)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), str(compact_from)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_nothing_of_the_parser_is_left(tmp_path: Path) -> None:
    result = _load_first(tmp_path, '[process.a]\ncommand = ["sleep", "1"]\n[process.b]\ncommand = "true"\n')
    assert result == {
        "processes": ["a", "b"],
        "same": True,
        "shared": True,
        "loaded": [],
        "mapped": False,
        "whole": True,
    }


def test_a_big_config_is_rebuilt_the_same_sharing_its_defaults(tmp_path: Path) -> None:
    result = _load_first(tmp_path, _RICH, compact_from=2)  # compacted from 2 processes on
    assert result["processes"] == ["db", "web", "job"] and result["same"] is True
    assert result["loaded"] == [] and result["shared"] is True


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
