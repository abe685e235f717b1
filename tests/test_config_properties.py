"""Property tests: valid configs round-trip into the model; any mutation of one is either a
Config or a ConfigError, never another exception."""

from __future__ import annotations

import datetime
import json
import math
import pickle
import signal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trinit._errors import ConfigError
from trinit.config.load import config_from_mapping, parse_toml
from trinit.config.model import Config, ProcessSpec
from trinit.config.plan import make_plan
from trinit.config.probes import ReadySpec
from trinit.config.render import render_plan

ENVIRON = {"A": "1", "B": "two words"}
NAMES = ["app", "db", "cache", "migrate", "x.y", "w-1", "job_2", "Z"]

# ----------------------------------------------------------------------------- strategies
# Each draws (raw TOML value, what the model must hold).

durations = st.one_of(
    st.integers(0, 10_000).map(lambda n: (n, float(n))),
    st.floats(0, 1e6, allow_nan=False).map(lambda f: (f, f)),
    st.integers(0, 10_000).map(lambda n: (f"{n}ms", n / 1000)),
    st.integers(0, 10_000).map(lambda n: (f"{n}s", float(n))),
    st.integers(0, 100).map(lambda n: (f"{n}m", n * 60.0)),
    st.integers(0, 10).map(lambda n: (f"{n}h", n * 3600.0)),
)
positive_durations = durations.filter(lambda d: d[1] > 0)
signals = st.sampled_from(
    [
        ("TERM", signal.SIGTERM),
        ("sigint", signal.SIGINT),
        ("SIGQUIT", signal.SIGQUIT),
        ("9", 9),
        (1, 1),
        ("Usr1", signal.SIGUSR1),
    ]
)
words = st.text(st.characters(codec="ascii", exclude_characters="\0$'\"\\"), min_size=1, max_size=8).filter(
    str.strip
)


@st.composite
def commands(draw: Any) -> tuple[Any, tuple[str, ...], bool]:
    argv = draw(st.lists(words.map(str.strip).filter(bool), min_size=1, max_size=4))
    form = draw(st.sampled_from(["array", "string", "shell"]))
    if form == "array":
        return argv, tuple(argv), False
    if form == "shell":
        text = " ".join(argv) + " $1 ${A}"
        return text, ("/bin/sh", "-c", text.replace("${A}", "1")), True
    import shlex

    return shlex.join(argv), tuple(argv), False


argvs = st.lists(words.map(str.strip).filter(bool), min_size=1, max_size=3)


def draw_hooks(draw: Any, table: dict[str, Any], want: dict[str, Any]) -> None:
    """Hooks as arrays (an argv whatever ``shell`` says); pre_start as one command or several."""
    if draw(st.booleans()):
        several = draw(st.lists(argvs, min_size=1, max_size=3))
        table["pre_start"] = several[0] if len(several) == 1 and draw(st.booleans()) else several
        want["pre_start"] = tuple(tuple(a) for a in several)
    for key in ("pre_stop", "post_stop"):
        if draw(st.booleans()):
            command = draw(argvs)
            table[key], want[key] = command, tuple(command)
    if draw(st.booleans()):
        table["stop_delay"], want["stop_delay"] = draw(durations)
    if any(key in table for key in ("pre_start", "pre_stop", "post_stop")) and draw(st.booleans()):
        table["hook_timeout"], want["hook_timeout"] = draw(positive_durations)


@st.composite
def configs(draw: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A valid TOML-shaped config and, per process, the fields the model must show."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True))
    kinds: dict[str, str] = {}
    main_taken = False
    job_after: list[str] | None = None
    tables: dict[str, dict[str, Any]] = {}
    expected: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        kind = draw(st.sampled_from(["service", "oneshot", "stop"] + ([] if main_taken else ["main"])))
        main_taken |= kind == "main"
        kinds[name] = kind
        raw_cmd, argv, shell = draw(commands())
        table: dict[str, Any] = {"command": raw_cmd}
        want: dict[str, Any] = {"command": argv, "shell": shell}
        if shell:
            table["shell"] = True
        if kind == "main":
            table["main"] = True
        if kind in ("oneshot", "stop"):
            table["oneshot"] = True
        if kind == "stop":
            table["phase"] = "stop"
        earlier = [n for n in names[:i] if kinds[n] != "stop"]
        if kind == "stop":
            if job_after is None:  # every stop job shares one after set: they never gate each other
                job_after = draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else []
            deps = [d for d in job_after if d in earlier]
            if deps:
                table["after"] = deps
            want["after_names"] = tuple(deps)
        elif earlier:
            deps = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3))
            if draw(st.booleans()):
                table["after"] = deps
                want["after"] = tuple((d, "completed" if kinds[d] == "oneshot" else "ready") for d in deps)
            else:
                conds = {
                    d: draw(
                        st.sampled_from(
                            ["started", "ready"] + (["completed"] if kinds[d] == "oneshot" else [])
                        )
                    )
                    for d in deps
                }
                table["after"] = conds
                want["after"] = tuple(conds.items())
        if draw(st.booleans()):
            raw, seconds = draw(durations)
            table["stop_timeout"] = raw
            want["stop_timeout"] = seconds
        if draw(st.booleans()):
            raw, number = draw(signals)
            table["stop_signal"] = raw
            want["stop_signal"] = number
        if kind in ("oneshot", "stop", "main") and draw(st.booleans()):
            raw, seconds = draw(positive_durations)
            table["timeout"] = raw
            want["timeout"] = seconds
        if kind in ("oneshot", "stop") and draw(st.booleans()):
            table["retries"] = want["retries"] = draw(st.integers(0, 10))
        if kind == "service" and draw(st.booleans()):
            table["restart"] = want["restart"] = draw(st.sampled_from(["no", "on-failure", "always"]))
            if draw(st.booleans()):
                table["max_restarts"] = want["max_restarts"] = draw(st.integers(0, 100))
            raw, seconds = draw(positive_durations.filter(lambda d: d[1] <= 30))  # the default cap
            table["restart_delay"] = raw
            want["restart_delay"] = seconds
        if kind != "stop" and draw(st.booleans()):
            probe = draw(st.sampled_from(["tcp", "http", "file", "log", "exec"]))
            target = {
                "tcp": "127.0.0.1:80",
                "http": "http://h/x",
                "file": "/run/x",
                "log": "ready",
                "exec": ["true"],
            }[probe]
            table["ready"] = {probe: target}
            want["ready"] = (probe, tuple(target) if isinstance(target, list) else target)
        if draw(st.booleans()):
            env = draw(
                st.dictionaries(
                    st.sampled_from(["X", "Y", "PATH"]), st.sampled_from(["v", "${A}", "$$", "${NO:-d}"])
                )
            )
            table["env"] = env
            want["env"] = tuple(
                (k, v.replace("${A}", "1").replace("$$", "$").replace("${NO:-d}", "d"))
                for k, v in env.items()
            )
        if draw(st.booleans()):
            codes = draw(st.lists(st.integers(0, 255), min_size=1, max_size=4))
            table["success_codes"] = codes
            want["success_codes"] = frozenset(codes)
        if draw(st.booleans()):
            table["output"] = want["output"] = draw(st.sampled_from(["inherit", "prefix", "null"]))
        if kind != "main" and draw(st.booleans()):
            table["on_failure"] = want["on_failure"] = draw(st.sampled_from(["shutdown", "ignore"]))
        if draw(st.booleans()):  # hardening keys that need no privilege (SPEC §12)
            mask = draw(st.integers(0, 0o777))
            table["umask"], want["umask"] = draw(st.sampled_from([f"{mask:o}", f"{mask:04o}"])), f"{mask:04o}"
            table["rlimits"] = {"core": 0, "nofile": [64, 128]}  # lowering needs no privilege
            want["rlimits"] = (("core", 0, 0), ("nofile", 64, 128))
            table["no_new_privileges"] = want["no_new_privileges"] = draw(st.booleans())
            table["nice"] = want["nice"] = 19
            table["oom_score_adj"] = want["oom_score_adj"] = 1000
        if draw(st.booleans()):
            table["forward_signals"] = want["forward_signals"] = draw(st.booleans())
        else:
            want["forward_signals"] = kind == "main"
        if draw(st.booleans()):
            table["signal_group"] = want["signal_group"] = draw(st.booleans())
        else:
            want["signal_group"] = shell
        draw_hooks(draw, table, want)
        tables[name] = table
        expected[name] = want
    data: dict[str, Any] = {"process": tables}
    if draw(st.booleans()):
        raw, seconds = draw(durations)
        data["trinit"] = {"shutdown_timeout": raw, "log_format": draw(st.sampled_from(["text", "json"]))}
    return data, expected


def to_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for the shapes above (JSON strings are valid TOML basic strings)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf") if v == v else "nan"
        if isinstance(v, (int, str)):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"

    out = []
    if "trinit" in data:
        out.append("[trinit]")
        out += [f"{k} = {value(v)}" for k, v in data["trinit"].items()]
    for name, table in data["process"].items():
        out.append(f"[process.{json.dumps(name)}]")
        out += [f"{k} = {value(v)}" for k, v in table.items()]
    return "\n".join(out) + "\n"


# -------------------------------------------------------------------------------- round trip


@settings(max_examples=200, deadline=None)
@given(configs())
def test_valid_configs_round_trip(case: tuple[dict[str, Any], dict[str, dict[str, Any]]]) -> None:
    data, expected = case
    assert parse_toml(to_toml(data), "t.toml") == data
    config = config_from_mapping(data, source="t.toml", base_dir="/cfg", environ=ENVIRON)
    assert [p.name for p in config.processes] == list(expected)
    for spec in config.processes:
        want = dict(expected[spec.name])
        ready = want.pop("ready", None)
        if ready is not None:
            assert spec.ready is not None and (spec.ready.kind, spec.ready.target) == ready
        names = want.pop("after_names", None)
        if names is not None:
            assert tuple(d for d, _ in spec.after) == names
        for key, value in want.items():
            got = getattr(spec, key)
            assert got == pytest.approx(value) if isinstance(value, float) else got == value, key
    # Normalized values are accepted again as they are: evolve and rebuild change nothing.
    assert (
        Config(
            processes=config.processes,
            source="t.toml",
            shutdown_timeout=config.shutdown_timeout,
            log_format=config.log_format,
            control_socket=config.control_socket,
        )
        == config
    )
    for spec in config.processes:
        assert attrs.evolve(spec) == spec
    # The CLI's compaction of a big config (boot/overrides) pickles it: the copy is the same.
    assert pickle.loads(pickle.dumps(config, pickle.HIGHEST_PROTOCOL)) == config
    plan = make_plan(config)
    assert sorted(plan.order) == sorted(expected)
    assert render_plan(plan)


# ------------------------------------------------------------------------- mutations never crash

toml_scalars = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "${A}",
            "${NOPE}",
            "$$",
            "'",
            '"',
            "TERM",
            "5s",
            "-1",
            "ready",
            "completed",
            "stop",
            "app",
            "127.0.0.1:80",
            "(",
            "0",
            "x\ud800",  # a lone surrogate: not from TOML, but a library user can pass one
        ]
    ),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes().map(lambda d: d.replace(microsecond=0)),
    st.dates(),
    st.just(datetime.time(12, 30)),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from([*NAMES, "tcp", "exec", "file", "interval", "X"]), inner, max_size=3),
    ),
    max_leaves=6,
)
keys = st.sampled_from(
    [
        *ProcessSpec.__init__.__annotations__.keys()
        - {"return", "self", "_after_implicit", "_after_restart"},
        "bogus",
        "name",
    ]
)


@st.composite
def mutated(draw: Any) -> dict[str, Any]:
    data, _ = draw(configs())
    tables = data["process"]
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["set", "delete", "rename", "replace", "top", "trinit"]))
        name = draw(st.sampled_from(sorted(tables))) if tables else None
        if name is not None and not isinstance(tables[name], dict):
            action = "replace"
        if action == "set" and name is not None:
            tables[name][draw(keys)] = draw(toml_values)
        elif action == "delete" and name is not None and tables[name]:
            del tables[name][draw(st.sampled_from(sorted(tables[name])))]
        elif action == "rename" and name is not None:
            tables[draw(st.text(max_size=6))] = tables.pop(name)
        elif action == "replace" and name is not None:
            tables[name] = draw(toml_values)
        elif action == "top":
            data[draw(st.sampled_from(["process", "trinit", "other"]))] = draw(toml_values)
            tables = data["process"] if isinstance(data.get("process"), dict) else {}
        elif action == "trinit":
            data["trinit"] = {
                draw(st.sampled_from(["shutdown_timeout", "log_format", "ready_file", "x"])): draw(
                    toml_values
                )
            }
    return dict(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_never_crash(data: dict[str, Any]) -> None:
    try:
        config = config_from_mapping(data, source="t.toml", base_dir="/cfg", environ=ENVIRON)
    except ConfigError as exc:
        assert exc.errors and all(isinstance(e, str) and e for e in exc.errors)
        return
    render_plan(make_plan(config))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]{}=.\"'\n #abc123,$-_:ptroces")), max_size=60))
def test_any_text_is_a_config_or_a_config_error(text: str) -> None:
    try:
        data = parse_toml(text, "t.toml")
        config_from_mapping(data, source="t.toml", environ=ENVIRON)
    except ConfigError as exc:
        assert exc.errors[0].startswith("t.toml")


def test_deep_nesting_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_toml("x = " + "[" * 5000 + "]" * 5000, "t.toml")


# ------------------------------------------------- keyword arguments never crash either


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, toml_values, max_size=4), toml_values)
def test_keyword_arguments_never_crash(kwargs: dict[str, Any], ready: Any) -> None:
    # Python's own TypeError for an unknown keyword or a missing argument is not a config input.
    kwargs = {k: v for k, v in kwargs.items() if k not in ("name", "bogus")}
    for build in (
        lambda: ProcessSpec("p", **kwargs),
        lambda: ProcessSpec("p", command="x", ready=ready),
        lambda: (
            ReadySpec(*ready[:5]) if isinstance(ready, list) and len(ready) >= 2 else ReadySpec("tcp", ready)
        ),
        lambda: Config([ProcessSpec("p", command="x")], shutdown_timeout=ready),
        lambda: Config([ProcessSpec("p", command="x")], log_format=ready, ready_file=ready),
        lambda: Config([ready]),
    ):
        try:
            build()
        except ConfigError as exc:
            assert exc.errors and all(isinstance(e, str) and e for e in exc.errors)
