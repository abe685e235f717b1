"""What a reload would change (SPEC §10): the old Config and the new one in, a ReloadPlan out; pure.

The rules, one per kind of difference:

- a process only in the old config stops (``removed``), dependents first;
- a process only in the new one starts once its ``after`` holds (``added``);
- a process in both whose keys differ restarts with its new keys (``changed``; how ``after``
  was written does not count, only what it means); a stop job is only updated, since it
  runs at the shutdown;
- an unchanged process that follows a changed one along ``restart = true`` edges (§10)
  restarts with it (``followers``);
- every other process is not touched: same process, same pid (``unchanged``);
- the main process cannot change, appear or go while trinit runs, and of ``[trinit]`` only
  ``shutdown_timeout``, ``log_format`` and ``ready_file`` can: any other such change refuses the
  whole reload (``refusals``, one line each, naming it and saying what to do).

A process the new config removes while others still depend on it cannot happen here: the new
config is validated whole first, and an ``after`` naming a process that is gone is an error of
its own (so a reload removes a dependency only together with its dependents, or after they no
longer name it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ..boot.parse import signal_name
from .model import Config, ProcessSpec
from .plan import restart_followers, stable_order
from .validate import TRINIT_KEYS

#: ``[trinit]`` keys a reload applies while trinit runs; a change of any other refuses it.
RUNTIME_KEYS = ("shutdown_timeout", "log_format", "ready_file")

#: Spec fields that are not keys of their own (``_after_restart`` is reported as ``after``).
_HIDDEN = {"_after_implicit": None, "_after_restart": "after", "name": None}


@attrs.frozen
class ReloadPlan:
    """The difference between two configs, as a reload applies it."""

    #: Stopped for good, dependents first (the old config's reverse start order).
    removed: tuple[str, ...] = ()
    #: Started as their ``after`` holds, in the new config's start order.
    added: tuple[str, ...] = ()
    #: (name, the keys that changed), in the new config's start order.
    changed: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: (name, the changed process it restarts with), unchanged themselves, in start order.
    followers: tuple[tuple[str, str], ...] = ()
    #: Not touched.
    unchanged: tuple[str, ...] = ()
    #: (key, old value, new value) of the ``[trinit]`` keys that take effect.
    settings: tuple[tuple[str, Any, Any], ...] = ()
    #: Why the reload cannot be applied at all; empty when it can.
    refusals: tuple[str, ...] = ()
    #: Names of stop jobs (they are updated, not started or restarted).
    stop_jobs: frozenset[str] = frozenset()

    @property
    def restarted(self) -> tuple[str, ...]:
        """Changed processes and their followers (stop jobs aside)."""
        names = {n for n, _ in self.changed if n not in self.stop_jobs} | {n for n, _ in self.followers}
        order = [n for n, _ in self.changed] + [n for n, _ in self.followers]
        return tuple(n for n in order if n in names)

    @property
    def changes_anything(self) -> bool:
        return bool(self.removed or self.added or self.changed or self.settings)

    def lines(self) -> list[str]:
        """The plan as ``ctl reload --dry-run`` and ``check --diff`` print it, one change a line."""
        if self.refusals:
            return [f"refused: {why}" for why in self.refusals]
        rows: list[tuple[str, str, str]] = []
        for name in self.removed:
            job = name in self.stop_jobs
            rows.append(
                ("stop", name, "a stop job, no longer in the config" if job else "no longer in the config")
            )
        for name, keys in self.changed:
            job = name in self.stop_jobs
            rows.append(
                (
                    "update" if job else "restart",
                    name,
                    f"{'a stop job; ' if job else ''}changed: {', '.join(keys)}",
                )
            )
        rows += [("restart", name, f"restarts with {leader}") for name, leader in self.followers]
        rows += [("start", name, "new stop job" if name in self.stop_jobs else "new") for name in self.added]
        width = max((len(name) for _, name, _ in rows), default=0)
        out = [f"{verb:<8} {name:<{width}}  ({why})" for verb, name, why in rows]
        out += [f"set      {key}: {_show(key, old)} -> {_show(key, new)}" for key, old, new in self.settings]
        if not self.changes_anything:
            out.append("nothing to do: the config has not changed")
        if self.unchanged:
            out.append(f"unchanged: {', '.join(self.unchanged)}")
        return out


def _show(key: str, value: Any) -> str:
    if value is None:
        return "none"
    if key == "reload_signal":
        return signal_name(value)
    if isinstance(value, float):
        return f"{value:g} s"
    return str(value)


def changed_keys(old: ProcessSpec, new: ProcessSpec) -> tuple[str, ...]:
    """The keys of ``[process.NAME]`` whose values differ, in the order of the model's fields."""
    keys = [
        (field, _HIDDEN.get(field.alias or field.name, field.alias or field.name))
        for field in attrs.fields(ProcessSpec)
    ]
    differ = {shown for field, shown in keys if getattr(old, field.name) != getattr(new, field.name)}
    return tuple(dict.fromkeys(shown for _, shown in keys if shown is not None and shown in differ))


def diff_configs(old: Config, new: Config) -> ReloadPlan:
    """What reloading from ``old`` to ``new`` does (both validated configs)."""
    before = {p.name: p for p in old.processes}
    after = {p.name: p for p in new.processes}
    old_order = stable_order(list(before), {n: [d for d, _ in p.after] for n, p in before.items()})
    new_order = stable_order(list(after), {n: [d for d, _ in p.after] for n, p in after.items()})
    removed = tuple(n for n in reversed(old_order) if n not in after)
    added = tuple(n for n in new_order if n not in before)
    changed = [(n, keys) for n in new_order if n in before and (keys := changed_keys(before[n], after[n]))]
    touched = {n for n, _ in changed} | set(added)
    leaders = restart_followers(new.processes, new_order)
    followers: dict[str, str] = {}
    for name, _ in changed:
        for f in leaders.get(name, ()):
            if f not in touched:
                followers.setdefault(f, name)
    stop_jobs = frozenset(n for n, p in {**before, **after}.items() if p.is_stop_job)
    return ReloadPlan(
        removed=removed,
        added=added,
        changed=tuple(changed),
        followers=tuple((n, followers[n]) for n in new_order if n in followers),
        unchanged=tuple(n for n in new_order if n in before and n not in touched and n not in followers),
        settings=tuple(_settings(old, new, RUNTIME_KEYS)),
        refusals=tuple(_refusals(old, new, before, after, dict(changed))),
        stop_jobs=stop_jobs,
    )


def _settings(old: Config, new: Config, keys: Iterable[str]) -> Iterable[tuple[str, Any, Any]]:
    for key in keys:
        if getattr(old, key) != getattr(new, key):
            yield key, getattr(old, key), getattr(new, key)


def _refusals(
    old: Config,
    new: Config,
    before: Mapping[str, ProcessSpec],
    after: Mapping[str, ProcessSpec],
    changed: Mapping[str, Sequence[str]],
) -> Iterable[str]:
    was, now = old.main_process(), new.main_process()
    restart = "restart trinit (the container) to apply it"
    if was is not None and (now is None or now.name != was.name):
        gone = "is no longer in the config" if was.name not in after else "is no longer the main process"
        yield f'the main process "{was.name}" {gone}: its end would end the run; {restart}'
    if now is not None and (was is None or now.name != was.name):
        yield f'"{now.name}" would become the main process, which cannot change while trinit runs; {restart}'
    elif now is not None and now.name in changed:
        keys = ", ".join(changed[now.name])
        yield f'the main process "{now.name}" changed ({keys}): it cannot restart without ending the run; {restart}'
    fixed = [key for key in TRINIT_KEYS if key not in RUNTIME_KEYS]
    for key, old_value, new_value in _settings(old, new, fixed):
        yield (
            f"{key} cannot change while trinit runs ({_show(key, old_value)} -> {_show(key, new_value)}); "
            f"{restart}"
        )


__all__ = ["RUNTIME_KEYS", "ReloadPlan", "changed_keys", "diff_configs"]
