"""From a Config to a Plan: start conditions, stop order, stop jobs; pure, no processes.

CONTRACT (the runtime reads exactly these fields):
- ``order``: every process name, dependencies before dependents (stable: config order on ties).
- ``start_after[name]``: the (dependency, condition) pairs that must hold before ``name`` starts
  (empty for stop-phase jobs: they are started by the shutdown, see ``stop_job_after``).
- ``start_layers``: for display: groups of run-phase names that can start together.
- ``stop_waits_for[name]``: for a run-phase process, the names whose stop (or, for a stop job,
  whose end) must come first: its dependents, and every stop job whose ``after`` set does not
  contain it.  Stop jobs map to an empty set (``stop_job_after`` gates them).
- ``stop_job_after[job]``: for a stop-phase job, the run-phase names that must have stopped
  before it runs (its ``after`` names plus, transitively, their dependents).
- ``stop_layers``: for display: groups of names (processes and stop jobs) that stop together.
- ``longest_stop_path``: (seconds, names) the longest sum of ``stop_timeout`` along a stop chain,
  names in the order they stop; a stop job counts its ``timeout`` (0 without one); hooks and
  ``stop_delay`` count too (see :func:`stop_weight`).
- ``restart_followers[name]``: the processes restarted with ``name`` (SPEC §10): its dependents
  through ``restart = true`` edges, transitively along such edges only, in start order (they stop
  in the reverse order). Only names that have some.
- ``warnings``: lines ``trinit check`` prints (e.g. the longest stop path exceeds shutdown_timeout).

A ``Config`` is validated once when it is built (graph included), so planning does not
check again.  Every step is linear in processes plus edges (a heap keeps the stable
order), except that each stop job's set is as large as what it waits for: O(stop jobs x
processes), which is the size of ``stop_waits_for`` itself.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence

import attrs

from .graph import closure, dependents
from .hardening import tool_warnings
from .model import Condition, Config, ProcessSpec


@attrs.frozen
class Plan:
    config: Config
    order: tuple[str, ...]
    start_after: Mapping[str, tuple[tuple[str, Condition], ...]]
    start_layers: tuple[tuple[str, ...], ...]
    stop_waits_for: Mapping[str, frozenset[str]]
    stop_job_after: Mapping[str, frozenset[str]]
    stop_layers: tuple[tuple[str, ...], ...]
    longest_stop_path: tuple[float, tuple[str, ...]]
    warnings: tuple[str, ...] = ()
    restart_followers: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)


#: The one empty set of names (CPython makes a new one at each ``frozenset()``).
_NONE: frozenset[str] = frozenset()


def make_plan(config: Config) -> Plan:
    """Derive the plan of a validated Config."""
    specs = config.processes
    by_name = {s.name: s for s in specs}
    names = [s.name for s in specs]
    jobs = [s.name for s in specs if s.phase == "stop"]
    run = [s.name for s in specs if s.phase != "stop"]
    deps = {s.name: tuple(d for d, _ in s.after) for s in specs}
    start_deps = {n: deps[n] for n in run}  # a run-phase process never waits for a stop job
    waiting = dependents(start_deps)

    start_after = {s.name: (() if s.phase == "stop" else s.after) for s in specs}
    needs = {j: closure(deps[j], waiting) for j in jobs}
    stop_waits_for: dict[str, frozenset[str]] = {
        # One empty set for all: each frozenset() is a new 216-byte object (10,000 of them: 2 MB).
        n: frozenset(waiting[n]).union(j for j in jobs if n not in needs[j]) or _NONE for n in run
    }
    stop_waits_for.update({j: _NONE for j in jobs})
    waits = {**stop_waits_for, **needs}

    weight = {s.name: stop_weight(s) for s in specs}
    order = stable_order(names, deps)
    stop_order = stable_order(names, waits)
    longest = _longest_path(stop_order, waits, weight)
    return Plan(
        config=config,
        order=order,
        start_after=start_after,
        start_layers=_layers(run, [n for n in order if n in start_deps], start_deps),
        stop_waits_for=stop_waits_for,
        stop_job_after=needs,
        stop_layers=_layers(names, stop_order, waits),
        longest_stop_path=longest,
        warnings=tuple(_warnings(config, longest, needs, run, by_name)),
        restart_followers=restart_followers(specs, order),
    )


def stop_weight(spec: ProcessSpec) -> float:
    """The most one process adds to a stop chain: a stop job's ``timeout`` (0 without one), else its
    ``pre_stop`` (bounded by ``hook_timeout``), ``stop_delay`` and ``stop_timeout``; either way its
    ``post_stop``, which runs before it counts as stopped (and a stop job's ``pre_start`` hooks)."""
    post = spec.hook_timeout if spec.post_stop is not None else 0.0
    if spec.phase == "stop":
        return (spec.timeout or 0.0) + len(spec.pre_start) * spec.hook_timeout + post
    pre = spec.hook_timeout if spec.pre_stop is not None else 0.0
    return pre + spec.stop_delay + spec.stop_timeout + post


def restart_followers(specs: Sequence[ProcessSpec], order: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Who restarts with whom: for each process, its dependents along ``restart = true`` edges,
    transitively (along those edges only), in ``order``."""
    led = dependents({s.name: s.restarts_with for s in specs})
    rank = {n: i for i, n in enumerate(order)}
    return {
        name: tuple(sorted(closure(led[name], led), key=rank.__getitem__)) for name in order if led.get(name)
    }


def _warnings(
    config: Config,
    longest: tuple[float, tuple[str, ...]],
    closure: Mapping[str, frozenset[str]],
    run: list[str],
    specs: Mapping[str, ProcessSpec],
) -> Iterable[str]:
    if not config.processes:
        yield "there are no processes: trinit would exit at once (add a [process.NAME] table, or a command after --)"
    seconds, path = longest
    if seconds > config.shutdown_timeout:
        yield (
            f"the longest stop path takes up to {seconds:g} s ({' -> '.join(path)}), more than "
            f"shutdown_timeout ({config.shutdown_timeout:g} s): the last to stop may get SIGKILL "
            "before their grace ends; raise shutdown_timeout, or lower a stop_timeout, stop_delay or hook_timeout"
        )
    yield from tool_warnings(config.processes)
    for job, needs in closure.items():
        if specs[job].timeout is None and len(needs) < len(run):
            yield (
                f'stop job "{job}" has no timeout: while it runs, the processes that stop after it wait, '
                "and only shutdown_timeout bounds it (give it a timeout)"
            )


def stable_order(names: Sequence[str], deps: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """Dependencies first; among the ones free to go, config order (Kahn's algorithm on a heap).

    Names in ``deps`` that are not in ``names`` are ignored.
    """
    rank = {n: i for i, n in enumerate(names)}
    blocking = dict.fromkeys(names, 0)
    unblocks: dict[str, list[str]] = {n: [] for n in names}
    for n in names:
        for d in deps[n]:
            if d in rank:
                blocking[n] += 1
                unblocks[d].append(n)
    free = [rank[n] for n in names if blocking[n] == 0]
    heapq.heapify(free)
    placed: list[str] = []
    while free:
        n = names[heapq.heappop(free)]
        placed.append(n)
        for m in unblocks[n]:
            blocking[m] -= 1
            if blocking[m] == 0:
                heapq.heappush(free, rank[m])
    if len(placed) < len(names):  # pragma: no cover - a validated Config has no cycles
        raise AssertionError(f"dependency cycle among {', '.join(n for n in names if blocking[n])}")
    return tuple(placed)


def _layers(
    names: Sequence[str], order: Sequence[str], waits: Mapping[str, Iterable[str]]
) -> tuple[tuple[str, ...], ...]:
    """Group ``names`` by how many steps of ``waits`` come before them, config order inside;
    ``order`` is ``names`` with each after what it waits for."""
    depth: dict[str, int] = {}
    for n in order:
        ahead = waits[n]  # most wait for nothing: no generator for them
        depth[n] = 1 + max((depth[w] for w in ahead if w in depth), default=-1) if ahead else 0
    levels: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for n in names:
        levels[depth[n]].append(n)
    return tuple(tuple(level) for level in levels)


def _longest_path(
    order: Sequence[str], waits: Mapping[str, Iterable[str]], weight: Mapping[str, float]
) -> tuple[float, tuple[str, ...]]:
    """The heaviest chain of the stop graph, as (seconds, names from first to stop to last).

    ``order`` has every name after what it waits for; each name keeps only its best
    predecessor, and the chain is walked back once at the end.
    """
    total: dict[str, float] = {}
    before: dict[str, str | None] = {}
    for n in order:
        best: str | None = None
        for w in waits[n]:  # the first of equals wins
            if best is None or total[w] > total[best]:
                best = w
        before[n] = best
        total[n] = (total[best] if best is not None else 0.0) + weight[n]
    if not total:
        return 0.0, ()
    end = max(total, key=total.__getitem__)
    path = [end]
    while (prev := before[path[-1]]) is not None:
        path.append(prev)
    return total[end], tuple(reversed(path))
