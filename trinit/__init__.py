"""trinit: a container init and entrypoint orchestrator on trio.

``import trinit`` is cheap: the public names below are loaded on first use (PEP 562),
so the command line can block signals and start the main process before trio is imported.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms before the main process starts.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    __version__: str

    from ._errors import ConfigError as ConfigError
    from ._errors import TrinitError as TrinitError
    from .config.load import load_config as load_config
    from .config.model import Config as Config
    from .config.model import ProcessSpec as ProcessSpec
    from .config.probes import ReadySpec as ReadySpec
    from .runtime.handle import Supervisor as Supervisor
    from .runtime.library import open_supervisor as open_supervisor
    from .runtime.process import ProcessStatus as ProcessStatus
    from .runtime.run import run as run
    from .system.status import ExitStatus as ExitStatus

_EXPORTS = {
    "load_config": ".config.load",
    "ConfigError": "._errors",
    "TrinitError": "._errors",
    "open_supervisor": ".runtime.library",
    "Config": ".config.model",
    "ProcessSpec": ".config.model",
    "ReadySpec": ".config.probes",
    "ProcessStatus": ".runtime.process",
    "run": ".runtime.run",
    "ExitStatus": ".system.status",
    "Supervisor": ".runtime.handle",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name == "__version__":  # config.defaults: not loaded by the fast start, which imports this
        from .config.defaults import VERSION

        globals()[name] = VERSION
        return VERSION
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trinit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
