"""The validated model every front end produces and the runtime consumes.

CONTRACT (shared by the config front end and the runtime; keep names and types):
values here are already normalized: durations are float seconds, signals are ints,
``command`` is the final argv (``shell = true`` makes it ``("/bin/sh", "-c", text)``),
``after`` is a tuple of (name, condition) pairs, ``ready.probe`` is the parsed probe
target, paths are absolute where the config file gave a relative one, and ``${VAR}``
expansion has been applied by the loader.

``ReadySpec(...)``, ``ProcessSpec(...)`` and ``Config(...)`` validate on construction and
raise one ``ConfigError`` listing every problem; the TOML loader goes through the same
checks (``validate``, ``probes``, ``graph``) once, then builds these through their
trusted path, so keyword arguments and a file get the same rules and the same messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import ConfigError
from . import defaults
from .graph import check_graph
from .hardening import Hardening, Limit
from .schedule import Overlap
from .validate import TRINIT_KEYS, Draft, check_process, check_trinit, resolve_after
from .values import (
    Condition,
    LogFormat,
    OnFailure,
    OutputMode,
    Phase,
    ProbeKind,
    Problems,
    RestartPolicy,
    is_id,
    show,
)

if TYPE_CHECKING:
    from .cron import Cron
    from .health import HealthAction, HealthSpec
    from .probes import ReadySpec

# Re-exported: the runtime and the OS layer import these names from here (``ReadySpec`` is
# ``config/probes``'s: a config without ``ready`` or ``health`` never loads it).
__all__ = ["Condition", "Config", "LogFormat", "OutputMode", "ProbeKind", "ProcessSpec", "is_id"]


@attrs.frozen(init=False)
class ProcessSpec:
    """One supervised process, as ``[process.NAME]`` describes it (SPEC §4).

    Keyword arguments take the TOML keys and values (``command`` as a list or a string,
    durations as seconds or ``"2s"``, signals as names or numbers, ``ready`` and ``env`` as
    dicts); ``None`` means "not given".  ``${VAR}`` is NOT expanded here: that is the
    loader's job, so a library user's strings are taken literally.
    """

    name: str
    command: tuple[str, ...]
    shell: bool = False
    main: bool = False
    oneshot: bool = False
    after: tuple[tuple[str, Condition], ...] = ()
    ready: ReadySpec | None = None
    restart: RestartPolicy = defaults.RESTART  # type: ignore[assignment]
    restart_delay: float = defaults.RESTART_DELAY
    restart_delay_max: float = defaults.RESTART_DELAY_MAX
    restart_reset_after: float = defaults.RESTART_RESET_AFTER
    max_restarts: int | None = None
    on_failure: OnFailure = defaults.ON_FAILURE  # type: ignore[assignment]
    success_codes: frozenset[int] = defaults.SUCCESS_CODES
    timeout: float | None = None
    retries: int = defaults.RETRIES
    phase: Phase = defaults.PHASE  # type: ignore[assignment]
    #: None: SIGTERM, or for main the signal that began the shutdown.
    stop_signal: int | None = None
    stop_timeout: float = defaults.STOP_TIMEOUT
    signal_group: bool = False
    forward_signals: bool = False
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    env_file: str | None = None
    inherit_env: bool = True
    user: str | None = None
    group: str | None = None
    output: OutputMode = defaults.OUTPUT  # type: ignore[assignment]
    #: A scheduled job (SPEC §11): cron times, or an interval in seconds; see ``config/schedule``.
    schedule: Cron | None = None
    every: float | None = None
    jitter: float = 0.0
    overlap: Overlap = "skip"
    run_on_start: bool = False
    # Hardening (SPEC §12): umask as octal digits ("0027"), rlimits as (name, soft, hard) with
    # None for unlimited, capabilities without CAP_ (None: not given).
    umask: str | None = None
    rlimits: tuple[Limit, ...] = ()
    no_new_privileges: bool = False
    capabilities: tuple[str, ...] | None = None
    oom_score_adj: int | None = None
    nice: int | None = None
    #: Lifecycle hooks (SPEC §9), each command a final argv; see ``config/hooks``.
    pre_start: tuple[tuple[str, ...], ...] = ()
    pre_stop: tuple[str, ...] | None = None
    stop_delay: float = 0.0
    post_stop: tuple[str, ...] | None = None
    hook_timeout: float = defaults.HOOK_TIMEOUT
    #: Health checks and the watchdog (SPEC §9); see ``config/health``.
    health: HealthSpec | None = None
    watchdog: float | None = None
    #: The ``after`` names given without a condition (array form).  Their condition is
    #: the default ("completed" on a oneshot, else "ready"), which ``Config`` fills in
    #: once every process is known; kept so that re-validation (``attrs.evolve``) and
    #: the "a stop job's after holds names only" rule still know what the user wrote.
    _after_implicit: frozenset[str] = attrs.field(default=frozenset(), repr=False, alias="_after_implicit")
    #: The ``after`` names given with ``restart = true`` (SPEC §10): see :attr:`restarts_with`.
    _after_restart: frozenset[str] = attrs.field(default=frozenset(), repr=False, alias="_after_restart")

    def __init__(
        self,
        name: str,
        command: str | Sequence[str] | None = None,
        *,
        shell: bool | None = None,
        main: bool | None = None,
        oneshot: bool | None = None,
        after: Mapping[str, str | Mapping[str, Any]] | Sequence[str | tuple[str, str]] | None = None,
        ready: Mapping[str, Any] | ReadySpec | None = None,
        restart: str | None = None,
        restart_delay: float | str | None = None,
        restart_delay_max: float | str | None = None,
        restart_reset_after: float | str | None = None,
        max_restarts: int | None = None,
        on_failure: str | None = None,
        success_codes: Iterable[int] | None = None,
        timeout: float | str | None = None,
        retries: int | None = None,
        phase: str | None = None,
        stop_signal: int | str | None = None,
        stop_timeout: float | str | None = None,
        signal_group: bool | None = None,
        forward_signals: bool | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        env_file: str | None = None,
        inherit_env: bool | None = None,
        user: str | int | None = None,
        group: str | int | None = None,
        output: str | None = None,
        schedule: str | Cron | None = None,
        every: float | str | None = None,
        jitter: float | str | None = None,
        overlap: str | None = None,
        run_on_start: bool | None = None,
        umask: str | None = None,
        rlimits: Mapping[str, Any] | Iterable[Limit] | None = None,
        no_new_privileges: bool | None = None,
        capabilities: Sequence[str] | None = None,
        oom_score_adj: int | None = None,
        nice: int | None = None,
        pre_start: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        pre_stop: str | Sequence[str] | None = None,
        stop_delay: float | str | None = None,
        post_stop: str | Sequence[str] | None = None,
        hook_timeout: float | str | None = None,
        health: Mapping[str, Any] | HealthSpec | None = None,
        watchdog: float | str | None = None,
        _after_implicit: Iterable[str] = (),
        _after_restart: Iterable[str] = (),
    ) -> None:
        given = {
            "command": command, "shell": shell, "main": main, "oneshot": oneshot, "after": after,
            "ready": ready, "restart": restart, "restart_delay": restart_delay,
            "restart_delay_max": restart_delay_max, "restart_reset_after": restart_reset_after,
            "max_restarts": max_restarts, "on_failure": on_failure, "success_codes": success_codes,
            "timeout": timeout, "retries": retries, "phase": phase, "stop_signal": stop_signal,
            "stop_timeout": stop_timeout, "signal_group": signal_group,
            "forward_signals": forward_signals, "cwd": cwd, "env": env, "env_file": env_file,
            "inherit_env": inherit_env, "user": user, "group": group, "output": output,
            "schedule": schedule, "every": every, "jitter": jitter, "overlap": overlap,
            "run_on_start": run_on_start,
            "umask": umask, "rlimits": rlimits, "no_new_privileges": no_new_privileges,
            "capabilities": capabilities, "oom_score_adj": oom_score_adj, "nice": nice,
            "pre_start": pre_start, "pre_stop": pre_stop,
            "stop_delay": stop_delay, "post_stop": post_stop, "hook_timeout": hook_timeout,
            "health": health, "watchdog": watchdog,
        }  # fmt: skip
        draft = check_process(
            name,
            {k: v for k, v in given.items() if v is not None},
            where=None,
            implicit=frozenset(_after_implicit),
            restart=frozenset(_after_restart),
        )
        if draft.errors:
            raise ConfigError(draft.errors)
        self.__attrs_init__(**draft.values)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (the CLI rebuilds a big config in memory of its own: boot/overrides): a field
        that holds its default (or an equal value of its type: all are immutable) is left out, so
        the copy shares the default object, not one float per field and process."""
        given = {}
        for name, key, default in _SPEC_DEFAULTS:
            value = getattr(self, name)
            if value is not default and not (type(value) is type(default) and value == default):
                given[key] = value
        return _restore_spec, (given,)

    @classmethod
    def _trusted(cls, values: Mapping[str, Any]) -> ProcessSpec:
        """Build from values ``check_process`` already normalized (no second validation)."""
        spec = cls.__new__(cls)
        spec.__attrs_init__(**values)
        return spec

    @property
    def hardening(self) -> Hardening | None:
        """What its spawns apply before exec (SPEC §12); None when it has no hardening key."""
        return Hardening.of(self)

    @property
    def health_action(self) -> HealthAction:
        """What a failed health check or a missed watchdog does (SPEC §9); "fail" on main, else "restart"."""
        given = self.health.action if self.health is not None else None
        return given or ("fail" if self.main else "restart")

    @property
    def restarts_with(self) -> frozenset[str]:
        """The processes in ``after`` whose every restart restarts this one too (SPEC §10)."""
        return self._after_restart

    @property
    def is_stop_job(self) -> bool:
        """A ``phase = "stop"`` oneshot: started by the shutdown, not by the start."""
        return self.phase == "stop"

    @property
    def scheduled(self) -> bool:
        """A oneshot with ``schedule`` or ``every``: run at each fire time (SPEC §11)."""
        return self.schedule is not None or self.every is not None

    @property
    def kind(self) -> str:
        """For messages and ``trinit check``: main, service, oneshot, stop job or scheduled."""
        if self.main:
            return "main"
        if self.phase == "stop":
            return "stop job"
        if self.scheduled:
            return "scheduled"
        return "oneshot" if self.oneshot else "service"


#: Each field of ProcessSpec: its name, its name in ``__attrs_init__`` and its default object
#: (``_NO_DEFAULT`` for a field with none, or with a factory).
_NO_DEFAULT = object()
_SPEC_DEFAULTS = tuple(
    (
        f.name,
        f.alias or f.name,
        _NO_DEFAULT if f.default is attrs.NOTHING or isinstance(f.default, attrs.Factory) else f.default,  # type: ignore[arg-type]
    )
    for f in attrs.fields(ProcessSpec)
)
_INIT_DEFAULTS = {key: default for _, key, default in _SPEC_DEFAULTS if default is not _NO_DEFAULT}


def _restore_spec(given: dict[str, Any]) -> ProcessSpec:
    """The other half of :meth:`ProcessSpec.__reduce__`: the values it was pickled with, already
    checked when it was made, and the shared defaults for the rest."""
    return ProcessSpec._trusted({**_INIT_DEFAULTS, **given})


@attrs.frozen(init=False)
class Config:
    """The whole config: the ``[trinit]`` keys plus the processes.

    Construction checks what needs every process at once (unknown or duplicate names,
    two mains, conditions that do not fit, cycles, stop jobs that gate each other) and
    fills in the default ``after`` conditions.
    """

    processes: tuple[ProcessSpec, ...] = ()
    shutdown_timeout: float = defaults.SHUTDOWN_TIMEOUT
    log_format: LogFormat = defaults.LOG_FORMAT  # type: ignore[assignment]
    ready_file: str | None = None
    #: The control socket's path (SPEC §8); None: no socket (the default for a Config built in code).
    control_socket: str | None = None
    #: A signal that reloads the config instead of being forwarded (SPEC §10); None: none.
    reload_signal: int | None = None
    #: Where the config came from, for messages ("trinit.toml"); None for keyword construction.
    source: str | None = None
    #: The included file each process came from (SPEC §10), for messages; others are in ``source``.
    _origins: Mapping[str, str] = attrs.field(factory=dict, eq=False, repr=False, alias="_origins")

    def __init__(
        self,
        processes: Iterable[ProcessSpec] = (),
        *,
        shutdown_timeout: float | str | None = None,
        log_format: str | None = None,
        ready_file: str | None = None,
        control_socket: str | bool | None = None,
        reload_signal: int | str | None = None,
        source: str | None = None,
        _origins: Mapping[str, str] | None = None,
    ) -> None:
        given = {
            "shutdown_timeout": shutdown_timeout,
            "log_format": log_format,
            "ready_file": ready_file,
            "control_socket": control_socket,
            "reload_signal": reload_signal,
        }
        values, errors = check_config(
            list(processes), {k: v for k, v in given.items() if v is not None}, source=source
        )
        if errors:
            raise ConfigError(errors)
        self.__attrs_init__(**values, source=source, _origins=dict(_origins or {}))

    @classmethod
    def _trusted(
        cls,
        processes: Iterable[ProcessSpec],
        settings: Mapping[str, Any],
        *,
        source: str | None,
        origins: Mapping[str, str] | None = None,
    ) -> Config:
        """Build from what the loader already validated, graph included (no second validation)."""
        config = cls.__new__(cls)
        config.__attrs_init__(
            processes=tuple(processes), source=source, _origins=dict(origins or {}), **settings
        )
        return config

    @property
    def origins(self) -> Mapping[str, str]:
        """The processes defined in included files, and those files."""
        return self._origins

    def source_of(self, name: str) -> str | None:
        """The file process ``name`` is defined in (an included one, or ``source``)."""
        return self._origins.get(name, self.source)

    def settings(self) -> dict[str, Any]:
        """The ``[trinit]`` keys, as ``_trusted`` takes them (to rebuild with other processes)."""
        return {key: getattr(self, key) for key in TRINIT_KEYS}

    def main_process(self) -> ProcessSpec | None:
        return next((p for p in self.processes if p.main), None)

    def process(self, name: str) -> ProcessSpec:
        for p in self.processes:
            if p.name == name:
                return p
        raise KeyError(name)


_FIELDS: dict[str, attrs.Attribute[Any]] = {f.alias or f.name: f for f in attrs.fields(ProcessSpec)}


def check_config(
    processes: Sequence[object], given: Mapping[str, Any], *, source: str | None
) -> tuple[dict[str, Any], list[str]]:
    """Validate the ``[trinit]`` keys and everything that needs all processes at once.

    Returns the values for ``Config.__attrs_init__`` (processes with their default
    ``after`` conditions filled in) and the errors.
    """
    problems = Problems(f"{source}: [trinit]" if source else "")
    values = check_trinit(given, problems)
    errors = problems.errors
    specs: list[ProcessSpec] = []
    for i, spec in enumerate(processes, 1):
        if isinstance(spec, ProcessSpec):
            specs.append(spec)
        else:
            errors.append(f"processes: item {i} must be a ProcessSpec (got {show(spec)})")
    drafts = [Draft(s.name, {k: getattr(s, f.name) for k, f in _FIELDS.items()}, []) for s in specs]
    errors += check_graph(drafts, source=source)
    values["processes"] = tuple(ProcessSpec._trusted(d.values) for d in resolve_after(drafts))
    return values, errors
