"""The init-mode Reaper's cost rule: reap in the SIGCHLD handler only while that is cheap."""

from __future__ import annotations

import trio

from trinit.system.reaper import HANDLER_REAP_MAX, Reaper


class CountingOS:
    """Just enough of an OS layer: counts waitpid(-1) calls, has no exits to report."""

    def __init__(self) -> None:
        self.calls = 0

    def wait_any(self) -> tuple[int, int] | None:
        self.calls += 1
        return None


async def test_the_handler_reaps_at_once_only_with_few_children() -> None:
    fake = CountingOS()
    reaper = Reaper(fake)  # type: ignore[arg-type]
    for pid in range(2, 2 + HANDLER_REAP_MAX):
        reaper.watch(pid)
    reaper.collect_if_cheap()
    assert fake.calls == 1  # few children: each waitpid(-1) is a short scan
    reaper.watch(99_999)
    reaper.collect_if_cheap()
    assert fake.calls == 1  # many: each full scan costs O(children); the run loop reaps in batches
    reaper.reap()
    assert fake.calls == 2
    await trio.lowlevel.checkpoint()
