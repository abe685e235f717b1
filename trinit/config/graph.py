"""The checks that need every process at once: names, mains, conditions, cycles, stop
jobs; and the graph helpers the plan shares.

Every pass is linear in processes plus ``after`` edges, except the rule that two stop
jobs must not gate each other, which compares stop jobs pairwise (quadratic in the
number of stop jobs only, which is small).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from .schedule import is_scheduled
from .validate import Draft
from .values import did_you_mean, place


def check_graph(drafts: Sequence[Draft], *, source: str | None) -> list[str]:
    """The checks that need every process: names, mains, conditions, cycles, stop jobs.

    ``drafts`` may be partly invalid (a key that failed its own check is missing from
    ``values``); each rule runs only on what is known, so one mistake is not reported
    twice.
    """
    errors: list[str] = []

    files = {d.name: d.source for d in drafts if d.source is not None}  # included ones

    def add(name: str, key: str, message: str) -> None:
        where = place(files.get(name, source), name)
        errors.append(f"{where}: {key}: {message}" if key else f"{where}: {message}")

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
            elif d.name not in jobs and is_scheduled(target.values):
                add(
                    d.name,
                    "after",
                    f'"{dep}" is a scheduled job: it runs again and again, so nothing can wait for it',
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
        errors.extend(_restart_edge_errors(d, by_name, place(d.source or source, d.name)))
    run_edges = {n: [e for e in es if e not in jobs] for n, es in edges.items() if n not in jobs}
    cycles = _cycles([d.name for d in drafts if d.name in run_edges], run_edges)
    for cycle in cycles:
        add(cycle[0], "after", f"dependency cycle: {' -> '.join(cycle)}")
    if cycles or len(jobs) < 2:
        return errors
    waiting = dependents(run_edges)
    needs = {j: closure(edges[j], waiting) for j in edges if j in jobs}
    rank: dict[str, int] = {}
    for i, d in enumerate(drafts):
        rank.setdefault(d.name, i)
    listed = sorted(needs, key=rank.__getitem__)
    # Pairwise: quadratic in the number of stop jobs (a handful), each pair linear in its sets.
    for i, a in enumerate(listed):
        for b in listed[i + 1 :]:
            only_a = sorted(needs[a] - needs[b], key=rank.__getitem__)
            only_b = sorted(needs[b] - needs[a], key=rank.__getitem__)
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


def _restart_edge_errors(d: Draft, by_name: Mapping[str, Draft], where: str) -> list[str]:
    """``after = { db = { restart = true } }`` fits only where a restart of db can restart this
    process: not on or toward the main process, a stop job or a scheduled job (SPEC §10)."""
    out: list[str] = []
    for dep in sorted(d.values.get("_after_restart", ())):
        target = by_name.get(dep)
        if target is None:
            continue  # reported as an unknown name already
        why = ""
        if d.values.get("main") is True:
            why = "not allowed on the main process: its exit ends trinit, so it is never restarted"
        elif d.values.get("phase") == "stop" and d.values.get("oneshot") is True:
            why = "not allowed on a stop job: it runs once, during the shutdown"
        elif is_scheduled(d.values):
            why = "not allowed on a scheduled job: its after gates only its first run"
        elif target.values.get("main") is True:
            why = f'"{dep}" is the main process, which is never restarted (its exit ends trinit)'
        if why:
            out.append(f"{where}: after.{dep}.restart: {why}")
    return out


def dependents(deps: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Invert ``name -> what it waits for`` into ``name -> who waits for it``."""
    out: dict[str, list[str]] = {n: [] for n in deps}
    for name, ds in deps.items():
        for d in ds:  # ``after`` names each process once, so no duplicates
            if d in out:
                out[d].append(name)
    return out


def closure(start: Iterable[str], dependents: Mapping[str, Iterable[str]]) -> frozenset[str]:
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
