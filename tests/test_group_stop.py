"""A process stopped as a group (``signal_group``, ``-g``) has stopped only when its whole process
group is gone (SPEC §5.2, issue 10 defect 10): a pre-fork server's workers drain while what it
depends on stays up. On a fake OS, the workers are adopted processes in the leader's group.
"""

from __future__ import annotations

import signal

import trio
from fakeutil import sent, settle, stop_at
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.runtime.supervisor import Runtime
from trinit.testing import Behaviour, Exit, FakeLog, FakeOS, run_supervisor

TERM, KILL = signal.SIGTERM, signal.SIGKILL


def add_workers(fake: FakeOS, leader: str, behaviour: Behaviour, count: int = 2) -> None:
    """Workers forked by ``leader``'s process (they share its process group)."""
    (proc,) = fake.processes_named(leader)
    for i in range(count):
        worker = fake.adopt(behaviour, name=f"worker{i}")
        worker.pgid = proc.pgid


def config(**app: object) -> Config:
    return Config(
        [
            ProcessSpec("redis", ["redis"]),
            ProcessSpec("app", ["app"], after={"redis": "started"}, signal_group=True, **app),  # type: ignore[arg-type]
        ]
    )


def workers_at(fake: FakeOS) -> list[float | None]:
    return [p.exited_at for p in fake.processes.values() if p.name.startswith("worker")]


async def test_dependency_stops_only_once_the_workers_drained(autojump_clock: MockClock) -> None:
    fake = FakeOS({"redis": Behaviour.forever()})
    drain = Behaviour.forever(on_signal={TERM: Exit(code=0, delay=0.5)})

    async def run() -> int:
        return await run_supervisor(config(), fake, at=stop_at(1))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await trio.sleep(0.1)
        add_workers(fake, "app", drain)
    assert sent(fake, "app") == [(1, TERM)]  # one group signal: the leader exits at once
    assert workers_at(fake) == [1.5, 1.5]
    assert sent(fake, "redis") == [(1.5, TERM)]


async def test_workers_outliving_the_grace_get_sigkill_to_the_group(autojump_clock: MockClock) -> None:
    fake = FakeOS({"redis": Behaviour.forever()})
    log = FakeLog()
    done: list[int] = []

    async def run() -> None:
        done.append(await run_supervisor(config(stop_timeout=2), fake, log=log, at=stop_at(1)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await trio.sleep(0.1)
        add_workers(fake, "app", Behaviour.stubborn())
    assert sent(fake, "app") == [(1, TERM), (3, KILL)]
    assert [s.group for s in fake.signals_to("app")] == [True, True]
    assert workers_at(fake) == [3, 3]
    assert sent(fake, "redis") == [(3, TERM)]
    assert "process group" in log.first("killed", "app").message


async def test_a_group_left_behind_by_an_exited_leader_is_stopped_in_order(autojump_clock: MockClock) -> None:
    # The leader exited by itself (the main process, say): its workers are still draining
    # requests; the shutdown stops them first, and redis only once they are gone.
    cfg = Config(
        [
            ProcessSpec("redis", ["redis"]),
            ProcessSpec("app", ["app"], main=True, after={"redis": "started"}, signal_group=True),
        ]
    )
    fake = FakeOS({"redis": Behaviour.forever(), "app": Behaviour.exits(0, after=1)})
    drain = Behaviour.forever(on_signal={TERM: Exit(code=0, delay=0.5)})
    sup: list[Runtime] = []

    async def run() -> None:
        await run_supervisor(cfg, fake, at=[(0, sup.append)])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await trio.sleep(0.1)
        add_workers(fake, "app", drain)
        await settle()
    assert sent(fake, "app") == [(1, TERM)]
    assert workers_at(fake) == [1.5, 1.5]
    assert sent(fake, "redis") == [(1.5, TERM)]
