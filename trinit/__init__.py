"""trinit: a container init and entrypoint orchestrator on trio.

``import trinit`` is cheap: the public names below are loaded on first use (PEP 562),
so the command line can block signals and start the main process before trio is imported.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms before the main process starts.
TYPE_CHECKING = False

__version__ = "0.1.0"

if TYPE_CHECKING:
    from typing import Any

    from ._config import load_config as load_config
    from ._errors import ConfigError as ConfigError
    from ._errors import TrinitError as TrinitError
    from ._library import open_supervisor as open_supervisor
    from ._model import Config as Config
    from ._model import ProcessSpec as ProcessSpec
    from ._model import ReadySpec as ReadySpec
    from ._process import ProcessStatus as ProcessStatus
    from ._run import run as run
    from ._status import ExitStatus as ExitStatus
    from ._supervisor import Supervisor as Supervisor

_EXPORTS = {
    "load_config": "._config",
    "ConfigError": "._errors",
    "TrinitError": "._errors",
    "open_supervisor": "._library",
    "Config": "._model",
    "ProcessSpec": "._model",
    "ReadySpec": "._model",
    "ProcessStatus": "._process",
    "run": "._run",
    "ExitStatus": "._status",
    "Supervisor": "._supervisor",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trinit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
