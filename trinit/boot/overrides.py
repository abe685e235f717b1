"""The command line over the config: command line > environment > ``[trinit]`` > default.

:func:`parse_args` already merged the command line with the environment into
:class:`Options` (``None`` = not given); here the options that are given replace what the
config file says. This is the one place that precedence lives. It runs after the fast
start has spawned the main process, so it may import attrs and the config model (inside
the functions: importing this module stays cheap).
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: typing costs ~4 ms before the main process starts.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..config.model import Config
    from .argv import Options


def log_verbosity(opts: Options) -> int:
    """How much trinit logs: zero-config is as quiet as tini (warnings and errors), a config
    shows the lifecycle (SPEC §6); each ``-v`` adds a level, each ``-q`` takes one away."""
    base = -1 if opts.config is None else 0
    return base + (opts.verbosity or 0)


#: What a config's parse loads and the run never uses (``_pydatetime``: the pure-Python half of
#: ``datetime`` on Python 3.12 and later, which the parser is given).
_PARSE_ONLY = ("tomllib", "tomllib._parser", "tomllib._re", "tomllib._types", "_pydatetime")


def load_first(opts: Options) -> Config:
    """:func:`load_for_cli` at the CLI's start, which owns ``sys.modules``: the TOML parser's
    modules go once it is done (before trio and the runtime load, which reuse their memory), and
    the parser gets ``datetime``'s pure-Python half, so the C half's shared library is never
    mapped (~0.1 MB for the whole run). A TOML date is wrong anywhere in trinit's config, and
    ``datetime`` leaves ``sys.modules`` at once: anything else that imports it (a cron
    schedule's zone) gets the whole module. A reload imports the parser anew. A config of
    :data:`COMPACT_FROM` processes or more is then rebuilt in memory of its own (:func:`_pickled`)."""
    import gc
    import sys

    if opts.config is None:  # zero-config: no file, no parser
        return load_for_cli(opts)
    before = set(sys.modules)
    if "datetime" not in before and "_datetime" not in before:
        sys.modules["_datetime"] = None  # type: ignore[assignment]  # datetime falls back to Python
        try:
            __import__("tomllib")  # the parse's own import finds it loaded (no name held here)
        finally:
            del sys.modules["_datetime"]
            sys.modules.pop("datetime", None)
    try:
        config = load_for_cli(opts)
    finally:
        for name in _PARSE_ONLY:
            if name not in before:
                sys.modules.pop(name, None)
        gc.collect()  # modules are cycles: their memory is free before trio loads
    if len(config.processes) < COMPACT_FROM:
        return config
    blob = _pickled(config)
    if blob is None:
        return config
    del config  # the last reference: its objects, and the arenas they held, go now
    import pickle

    compact: Config = pickle.loads(blob)
    return compact


#: From this many processes the CLI's first config is rebuilt in memory of its own (:func:`_pickled`).
COMPACT_FROM = 1000


def _pickled(config: Config) -> bytes | None:
    """``config`` as bytes, so that the CLI can drop it and load it again: its objects were made
    among the parse's garbage, and keep most of the parse's pymalloc arenas resident (20,000
    processes: ~11 MB of objects held 40 MB). Dropped, those arenas go back to the system, and the
    copy is made in a row (~19 MB), sharing its defaults (ProcessSpec.__reduce__); ~15 µs a
    process in all. None if something in it does not pickle."""
    import pickle

    try:
        return pickle.dumps(config, pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):  # kept as it is
        return None


def load_for_cli(opts: Options) -> Config:
    """The Config the command line asks for: zero-config, or the file with ``opts`` applied.

    Raises ConfigError for a bad file.
    """
    from ..config.model import Config, ProcessSpec

    if opts.config is None:  # zero-config loads no file: neither tomllib nor the loader is imported
        config = Config(processes=[ProcessSpec(name="main", command=list(opts.command), main=True)])
    else:
        from ..config.load import load_config

        config = load_config(opts.config)
    return apply_cli(config, opts)


def apply_cli(config: Config, opts: Options) -> Config:
    """``config`` with every option ``opts`` gives taken over it (pure: no files, no env).

    ``-- CMD`` replaces the main process's command (or adds a main process); ``-g`` and
    ``-t`` apply to the main process; ``--shutdown-timeout``, ``--log-format`` and
    ``--control-socket`` to ``[trinit]``.
    """
    import attrs

    from ..config.model import Config, ProcessSpec

    if opts.config is not None and opts.command:
        from ..config.load import with_main_command

        config = with_main_command(config, opts.command)
    processes = config.processes
    main_spec = config.main_process()
    if main_spec is not None and (opts.process_group or opts.stop_timeout is not None):
        # The options were parsed by the same parsers the config uses, and neither key is part
        # of the graph: the spec is rebuilt without validating everything a second time.
        values = {f.alias or f.name: getattr(main_spec, f.name) for f in attrs.fields(ProcessSpec)}
        values["signal_group"] = opts.process_group or main_spec.signal_group
        if opts.stop_timeout is not None:
            values["stop_timeout"] = opts.stop_timeout
        new_main = ProcessSpec._trusted(values)
        processes = tuple(new_main if p is main_spec else p for p in processes)
    settings = config.settings()
    if opts.shutdown_timeout is not None:
        settings["shutdown_timeout"] = opts.shutdown_timeout
    if opts.log_format is not None:
        settings["log_format"] = opts.log_format
    if opts.control_socket is not None:
        settings["control_socket"] = opts.control_socket
    return Config._trusted(processes, settings, source=config.source, origins=config.origins)
