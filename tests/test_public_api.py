"""The public surface of ``import trinit`` (SPEC §7): exactly these names, each resolving to
what it says, loaded lazily so that ``import trinit`` stays cheap (no trio, no attrs)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import trinit

PUBLIC = [
    "Config",
    "ConfigError",
    "ExitStatus",
    "ProcessSpec",
    "ProcessStatus",
    "ReadySpec",
    "Supervisor",
    "TrinitError",
    "__version__",
    "load_config",
    "open_supervisor",
    "run",
]


def test_all_is_pinned() -> None:
    assert sorted(trinit.__all__) == PUBLIC
    assert len(set(trinit.__all__)) == len(trinit.__all__)


def test_dir_lists_the_public_names() -> None:
    assert dir(trinit) == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(trinit, name)
    assert value is not None
    if name != "__version__":
        assert value.__name__ == name
        assert value.__module__.startswith("trinit.")
        assert getattr(trinit, name) is value  # cached after the first lookup


def test_from_import_star_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from trinit import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == PUBLIC


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        trinit.nope  # noqa: B018
    assert not hasattr(trinit, "_private_thing")


def test_kinds_of_the_public_names() -> None:
    assert isinstance(trinit.__version__, str) and trinit.__version__
    for cls in (trinit.Config, trinit.ProcessSpec, trinit.ReadySpec, trinit.ProcessStatus, trinit.ExitStatus):
        assert inspect.isclass(cls)
    assert issubclass(trinit.ConfigError, trinit.TrinitError)
    assert issubclass(trinit.TrinitError, Exception)
    assert callable(trinit.load_config) and callable(trinit.run) and callable(trinit.open_supervisor)


def test_library_entry_points_signatures() -> None:
    sig = inspect.signature(trinit.open_supervisor)
    params = sig.parameters
    assert list(params) == ["config", "handle_signals", "reap_orphans"]
    assert params["handle_signals"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["handle_signals"].default is False and params["reap_orphans"].default is False
    run = inspect.signature(trinit.run).parameters
    assert next(iter(run)) == "config"
    assert run["handle_signals"].default is True and run["reap_orphans"].default is True


def test_supervisor_handle_methods() -> None:
    sup = trinit.Supervisor
    for name in ("status", "send_signal"):
        assert callable(getattr(sup, name)) and not inspect.iscoroutinefunction(getattr(sup, name))
    for name in ("wait_ready", "stop", "restart", "reload", "wait"):
        assert inspect.iscoroutinefunction(getattr(sup, name)), name


def test_process_status_fields() -> None:
    import attrs

    assert [f.name for f in attrs.fields(trinit.ProcessStatus)] == [
        "name",
        "state",
        "pid",
        "restarts",
        "last_exit",
    ]
    status = trinit.ExitStatus(signal=15)
    assert status.exit_code == 143
    assert trinit.ExitStatus(code=3).exit_code == 3


def _fresh(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_import_trinit_is_cheap() -> None:
    out = _fresh(
        "import sys, trinit; print('trio' in sys.modules, 'attrs' in sys.modules, trinit.__version__)"
    )
    assert out == f"False False {trinit.__version__}"


def test_errors_need_neither_trio_nor_attrs() -> None:
    out = _fresh(
        "import sys, trinit; trinit.ConfigError, trinit.TrinitError; "
        "print('trio' in sys.modules, 'attrs' in sys.modules)"
    )
    assert out == "False False"


def test_public_names_load_on_first_use() -> None:
    out = _fresh("import sys, trinit; trinit.open_supervisor; print('trio' in sys.modules)")
    assert out == "True"
