"""A running process with nothing to watch holds no trio task (runner._park): its exit resumes its life.

At 10,000 processes a task parked per process costs ~20 MB; these tests pin that none is left
while such processes run, and that everything a task would have done still happens after an exit.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Any

import trio
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.runtime.state import State
from trinit.runtime.supervisor import Runtime
from trinit.testing import Behaviour, FakeLog, FakeOS, make_supervisor


def _task_names() -> set[str]:
    names: set[str] = set()
    root = trio.lowlevel.current_root_task()
    assert root is not None
    todo = [root]
    while todo:
        task = todo.pop()
        names.add(task.name)
        todo += [child for nursery in task.child_nurseries for child in nursery.child_tasks]
    return names


async def test_running_plain_processes_hold_no_task_and_an_exit_resumes_the_life(autojump_clock: MockClock) -> None:
    plain = [ProcessSpec(f"p{i}", [f"p{i}"], restart="on-failure", restart_delay=1) for i in range(20)]
    config = Config([*plain, ProcessSpec("timed", ["timed"], main=True, timeout=100)], shutdown_timeout=5)
    fake = FakeOS({"p3": [Behaviour.exits(1, after=2), Behaviour.forever()], "*": Behaviour.forever()})
    log = FakeLog()
    sup = make_supervisor(config, fake, log=log)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(1)
        names = _task_names()
        assert not {f"trinit p{i}" for i in range(20)} & names
        assert "trinit timed" in names  # its timeout runs beside its wait: it keeps its task
        assert all(sup.runners[f"p{i}"].state is State.READY for i in range(20))
        await trio.sleep(5)  # p3 exited at 2 with 1, and was restarted at 3 (restart_delay)
        assert fake.start_times("p3") == [0, 3]
        assert [e.fields["code"] for e in log.find("exited", "p3")] == [1]
        assert sup.runners["p3"].state is State.READY and sup.runners["p3"].restarts == 1
        assert "trinit p3" not in _task_names()  # parked again
        sup.request_shutdown("test")
    assert sup.exit_code == 143  # the main process's, killed by SIGTERM
    assert all(sup.runners[f"p{i}"].state is State.EXITED for i in range(20))
    assert [s.signal for s in fake.signals_to("p7")] == [signal.SIGTERM]


class _Watcher(trio.abc.Instrument):
    """The names of the tasks spawned while it is on."""

    def __init__(self) -> None:
        self.spawned: list[str] = []

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned.append(task.name)


async def test_plain_processes_start_without_a_task_and_the_others_get_theirs(autojump_clock: MockClock) -> None:
    plain = [ProcessSpec(f"p{i}", [f"p{i}"]) for i in range(100)]
    waits = ProcessSpec("waits", ["waits"], after=["p0"])  # it waits for p0: it needs a task
    probed = ProcessSpec("probed", ["probed"], ready={"exec": ["true"]})  # its probe runs beside
    broken = ProcessSpec("broken", ["broken"], restart="always", restart_delay=1)
    config = Config([*plain, waits, probed, broken], shutdown_timeout=5)
    fake = FakeOS({"broken": Behaviour.not_found(), "*": Behaviour.forever()})
    sup = make_supervisor(config, fake, log=FakeLog())
    watcher = _Watcher()
    trio.lowlevel.add_instrument(watcher)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(1.5)
        trio.lowlevel.remove_instrument(watcher)
        assert all(sup.runners[f"p{i}"].state is State.READY for i in range(100))
        assert not {f"trinit p{i}" for i in range(100)} & set(watcher.spawned)
        assert {"trinit waits", "trinit probed"} <= set(watcher.spawned)
        # A start that failed at once goes on in a task of its own: its restart comes after the delay.
        assert "trinit broken" in watcher.spawned and len(fake.spawns_of("broken")) >= 2
        sup.request_shutdown("test")
    assert all(sup.runners[f"p{i}"].state is State.EXITED for i in range(100))


class _StopAfter(FakeOS):
    """At its ``n``th spawn a task is started that asks for the shutdown, the way a SIGTERM
    comes in: it can run only when the start lets other tasks run."""

    def __init__(self, n: int) -> None:
        super().__init__({"*": Behaviour.forever()})
        self.n = n
        self.then: list[tuple[trio.Nursery, Runtime]] = []

    def spawn(self, argv: Sequence[str], **kwargs: Any) -> int:
        pid = super().spawn(argv, **kwargs)
        if len(self.spawns) == self.n:
            nursery, sup = self.then[0]
            nursery.start_soon(self._stop, sup)
        return pid

    async def _stop(self, sup: Runtime) -> None:
        sup.request_shutdown("a stop during the start")


async def test_a_stop_during_a_long_start_is_seen_within_a_batch_and_skips_the_rest(autojump_clock: MockClock) -> None:
    fake = _StopAfter(10)
    config = Config([ProcessSpec(f"p{i}", [f"p{i}"]) for i in range(1000)], shutdown_timeout=5)
    log = FakeLog()
    sup = make_supervisor(config, fake, log=log)
    async with trio.open_nursery() as nursery:
        fake.then.append((nursery, sup))
        await nursery.start(sup.run)
    started = len(fake.spawns)
    assert 10 <= started <= 2 * 64  # seen at the next look (or one batch on): not after 1,000 starts
    states = [r.state for r in sup.runners.values()]
    assert states.count(State.EXITED) == started and states.count(State.SKIPPED) == 1000 - started
    assert len(log.find("skipped")) == 1000 - started
