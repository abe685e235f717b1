"""A running process with nothing to watch holds no trio task (runner._park): its exit resumes its life.

At 10,000 processes a task parked per process costs ~20 MB; these tests pin that none is left
while such processes run, and that everything a task would have done still happens after an exit.
"""

from __future__ import annotations

import signal

import trio
from trio.testing import MockClock

from trinit import Config, ProcessSpec
from trinit.runtime.state import State
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
