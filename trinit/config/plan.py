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
  names in the order they stop; a stop job counts its ``timeout`` (0 without one).
- ``warnings``: lines ``trinit check`` prints (e.g. the longest stop path exceeds shutdown_timeout).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from .._errors import ConfigError
from .model import Condition, Config, did_you_mean, place

if TYPE_CHECKING:
    from .model import Draft


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


def make_plan(config: Config) -> Plan:
    """Derive the plan; raises ConfigError for cycles (naming the cycle).

    A ``Config`` is validated when it is built, so the error is only a safety net.
    """
    from .model import Draft

    specs = config.processes
    drafts = [
        Draft(s.name, {"oneshot": s.oneshot, "phase": s.phase, "main": s.main, "after": s.after}, [])
        for s in specs
    ]
    errors = check_graph(drafts, source=config.source)
    if errors:
        raise ConfigError(errors)
    names = [s.name for s in specs]
    jobs = [s.name for s in specs if s.phase == "stop"]
    run = [s.name for s in specs if s.phase != "stop"]
    deps = {s.name: tuple(d for d, _ in s.after) for s in specs}
    dependents = _dependents({n: deps[n] for n in run})

    start_after = {s.name: (() if s.phase == "stop" else s.after) for s in specs}
    closure = {j: _closure(deps[j], dependents) for j in jobs}
    stop_waits_for: dict[str, frozenset[str]] = {
        n: frozenset(dependents[n]) | {j for j in jobs if n not in closure[j]} for n in run
    }
    stop_waits_for.update({j: frozenset() for j in jobs})
    waits = {**stop_waits_for, **closure}

    weight = {s.name: (s.timeout or 0.0) if s.phase == "stop" else s.stop_timeout for s in specs}
    longest = _longest_path(names, waits, weight)
    return Plan(
        config=config,
        order=_stable_order(names, deps),
        start_after=start_after,
        start_layers=_layers(run, {n: deps[n] for n in run}),
        stop_waits_for=stop_waits_for,
        stop_job_after=closure,
        stop_layers=_layers(names, waits),
        longest_stop_path=longest,
        warnings=tuple(_warnings(config, longest, closure, run)),
    )


def _warnings(
    config: Config,
    longest: tuple[float, tuple[str, ...]],
    closure: Mapping[str, frozenset[str]],
    run: list[str],
) -> Iterable[str]:
    if not config.processes:
        yield "there are no processes: trinit would exit at once (add a [process.NAME] table, or a command after --)"
    seconds, path = longest
    if seconds > config.shutdown_timeout:
        yield (
            f"the longest stop path takes up to {seconds:g} s ({' -> '.join(path)}), more than "
            f"shutdown_timeout ({config.shutdown_timeout:g} s): the last to stop may get SIGKILL "
            "before their grace ends; raise shutdown_timeout or lower a stop_timeout"
        )
    for job, needs in closure.items():
        if config.process(job).timeout is None and any(n not in needs for n in run):
            yield (
                f'stop job "{job}" has no timeout: while it runs, the processes that stop after it wait, '
                "and only shutdown_timeout bounds it (give it a timeout)"
            )


# ------------------------------------------------------------------------------ graph checks


def check_graph(drafts: Sequence[Draft], *, source: str | None) -> list[str]:
    """The checks that need every process: names, mains, conditions, cycles, stop jobs.

    ``drafts`` may be partly invalid (a key that failed its own check is missing from
    ``values``); each rule runs only on what is known, so one mistake is not reported
    twice.
    """
    errors: list[str] = []

    def add(name: str, key: str, message: str) -> None:
        errors.append(
            f"{place(source, name)}: {key}: {message}" if key else f"{place(source, name)}: {message}"
        )

    by_name: dict[str, Draft] = {}
    for d in drafts:
        if d.name in by_name:
            add(d.name, "", "two processes have this name")
        by_name.setdefault(d.name, d)
    mains = [d.name for d in drafts if d.values.get("main") is True]
    for extra in mains[1:]:
        add(extra, "main", f'"{mains[0]}" is already the main process; only one process can have main = true')

    def is_job(d: Draft) -> bool:
        return d.values.get("oneshot") is True and d.values.get("phase") == "stop"

    jobs = {d.name for d in drafts if is_job(d)}
    implicit_of = {d.name: d.values.get("_after_implicit", frozenset()) for d in drafts}
    edges: dict[str, list[str]] = {}
    for d in drafts:
        known: list[str] = []
        for dep, cond in d.values.get("after", ()):
            target = by_name.get(dep)
            if target is None:
                add(d.name, "after", f'no process named "{dep}"{did_you_mean(dep, by_name)}')
            elif dep in jobs and d.name in jobs:
                add(
                    d.name,
                    "after",
                    f'"{dep}" is a stop job; a stop job\'s after names run-phase processes, '
                    "the ones that must have stopped before it runs",
                )
            elif dep in jobs:
                add(
                    d.name,
                    "after",
                    f'"{dep}" is a stop job (phase = "stop"): it runs during shutdown, '
                    "so nothing can start after it",
                )
            else:
                if (
                    cond == "completed"
                    and dep not in implicit_of[d.name]
                    and target.values.get("oneshot") is False
                ):
                    add(
                        d.name,
                        "after",
                        f'"{dep}" is not a oneshot, so it never completes: wait for "ready" or "started"',
                    )
                known.append(dep)
        edges[d.name] = known
    run_edges = {n: [e for e in es if e not in jobs] for n, es in edges.items() if n not in jobs}
    cycles = _cycles([d.name for d in drafts if d.name in run_edges], run_edges)
    for cycle in cycles:
        add(cycle[0], "after", f"dependency cycle: {' -> '.join(cycle)}")
    if cycles or len(jobs) < 2:
        return errors
    dependents = _dependents(run_edges)
    closure = {j: _closure(edges[j], dependents) for j in edges if j in jobs}
    order = [d.name for d in drafts]
    listed = [j for j in order if j in closure]
    for i, a in enumerate(listed):
        for b in listed[i + 1 :]:
            only_a = [n for n in order if n in closure[a] - closure[b]]
            only_b = [n for n in order if n in closure[b] - closure[a]]
            if only_a and only_b:
                add(
                    a,
                    "after",
                    (
                        f'stop jobs "{a}" and "{b}" would wait for each other: "{only_a[0]}" must stop before '
                        f'"{a}" runs but stays up until "{b}" ends, and "{only_b[0]}" must stop before "{b}" '
                        f'runs but stays up until "{a}" ends (give them the same after, or let one\'s after '
                        "contain the other's)"
                    ),
                )
    return errors


def _dependents(deps: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Invert ``name -> what it waits for`` into ``name -> who waits for it``."""
    out: dict[str, list[str]] = {n: [] for n in deps}
    for name, ds in deps.items():
        for d in ds:
            if d in out and name not in out[d]:
                out[d].append(name)
    return out


def _closure(start: Iterable[str], dependents: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """``start`` plus, transitively, everything that waits for it."""
    seen: set[str] = set()
    todo = [n for n in start if n in dependents]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(dependents[n])
    return frozenset(seen)


def _cycles(names: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle per strongly connected component, each as ``[a, b, ..., a]``
    starting from its first name in config order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(root: str) -> None:  # Tarjan's algorithm, iterative: no recursion limit
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, ())
            if i < len(targets):
                work.append((node, i + 1))
                nxt = targets[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                comp: set[str] = set()
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.add(top)
                    if top == node:
                        break
                components.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])

    for n in names:
        if n not in index:
            visit(n)
    rank = {n: i for i, n in enumerate(names)}
    cycles = []
    for comp in components:
        first = min(comp, key=rank.__getitem__)
        if len(comp) == 1 and first not in edges.get(first, ()):
            continue
        cycles.append(_path_back(first, comp, edges))
    return sorted(cycles, key=lambda c: rank[c[0]])


def _path_back(start: str, comp: Collection[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """The shortest walk from ``start`` back to itself inside one component."""
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for e in edges.get(node, ()):
                if e == start:
                    path = [start]
                    while node != start:
                        path.append(node)
                        node = prev[node]
                    return [start, *reversed(path[1:]), start]
                if e in comp and e not in prev:
                    prev[e] = node
                    nxt.append(e)
        frontier = nxt
    raise AssertionError("a component without a cycle")  # pragma: no cover


def _stable_order(names: Sequence[str], deps: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """Dependencies first; among the ones free to go, config order."""
    placed: list[str] = []
    done: set[str] = set()
    left = list(names)
    while left:
        for n in left:
            if all(d in done or d not in deps for d in deps[n]):
                placed.append(n)
                done.add(n)
                left.remove(n)
                break
        else:  # pragma: no cover - check_graph rules cycles out
            raise ConfigError([f"dependency cycle among {', '.join(left)}"])
    return tuple(placed)


def _layers(names: Sequence[str], waits: Mapping[str, Iterable[str]]) -> tuple[tuple[str, ...], ...]:
    """Group ``names`` by how many steps of ``waits`` come before them, config order inside."""
    depth: dict[str, int] = {}
    for n in _stable_order(names, {k: [w for w in waits[k] if w in waits] for k in names}):
        depth[n] = 1 + max((depth[w] for w in waits[n] if w in depth), default=-1)
    return tuple(
        tuple(n for n in names if depth[n] == level) for level in range(max(depth.values(), default=-1) + 1)
    )


def _longest_path(
    names: Sequence[str], waits: Mapping[str, Iterable[str]], weight: Mapping[str, float]
) -> tuple[float, tuple[str, ...]]:
    """The heaviest chain of the stop graph, as (seconds, names from first to stop to last)."""
    best: dict[str, tuple[float, tuple[str, ...]]] = {}
    for n in _stable_order(names, {k: list(waits[k]) for k in names}):
        before = max((best[w] for w in waits[n]), key=lambda b: b[0], default=(0.0, ()))
        best[n] = (before[0] + weight[n], (*before[1], n))
    return max(best.values(), key=lambda b: b[0], default=(0.0, ()))
