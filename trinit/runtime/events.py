"""The live event stream (SPEC §8): what ``ctl events`` and the library's ``events()`` follow.

Every event trinit logs (§6: started, ready, exited, restarting, stopping, …), whatever the
log's verbosity, plus a ``state`` event on every state change, goes to each follower's
bounded queue. Nothing is built while nobody follows. A follower that falls
``QUEUE_SIZE`` events behind is not silently skipped: its stream ends with an
``overflow`` event, so a reader always knows whether it saw everything.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import trio

from ..io.log import rfc3339_utc

if TYPE_CHECKING:
    from types import TracebackType

    from ..io.log import Logger
    from .runner import Runner

Event = dict[str, Any]

#: How far a follower may fall behind before its stream ends with ``overflow``.
QUEUE_SIZE = 10_000


class EventHub:
    """Fans events out to the followers; hooks itself into the logger only while followed."""

    def __init__(self, log: Logger) -> None:
        self._log = log
        self._followers: set[EventStream] = set()
        self.closed = False

    @property
    def followed(self) -> bool:
        return bool(self._followers)

    def follow(self) -> EventStream:
        stream = EventStream(self)
        if self.closed:
            stream.end()
        else:
            self._followers.add(stream)
            self._log.listener = self.publish
        return stream

    def publish(self, event: Event) -> None:
        for stream in list(self._followers):
            stream.put(event)

    def state_changed(self, runner: Runner) -> None:
        if not self._followers:
            return
        handle = runner.handle
        self.publish(
            {
                "ts": rfc3339_utc(runner.since),
                "level": "info",
                "event": "state",
                "process": runner.name,
                "pid": handle.pid if handle is not None else None,
                "message": f"is {runner.state.public}",
                "state": runner.state.public,
            }
        )

    def close(self) -> None:
        """The run has ended: every stream ends once its queue is read."""
        self.closed = True
        for stream in list(self._followers):
            stream.end()

    def _drop(self, stream: EventStream) -> None:
        self._followers.discard(stream)
        if not self._followers:
            self._log.listener = None


class EventStream:
    """One follower: an async iterator of event dicts; ``close()`` (or ``with``) unfollows."""

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._queue: deque[Event] = deque()
        self._arrived = trio.Event()
        self._ended = False

    def put(self, event: Event) -> None:
        if len(self._queue) >= QUEUE_SIZE:
            message = f"this follower fell {QUEUE_SIZE} events behind; its stream ends here (follow again)"
            self._queue.append(
                {
                    "ts": rfc3339_utc(),
                    "level": "error",
                    "event": "overflow",
                    "process": None,
                    "pid": None,
                    "message": message,
                }
            )
            self.end()
            return
        self._queue.append(event)
        self._arrived.set()

    def end(self) -> None:
        self._ended = True
        self._arrived.set()
        self._hub._drop(self)

    def close(self) -> None:
        """Stop following (events already queued are dropped)."""
        self._queue.clear()
        self.end()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self._ended:
                raise StopAsyncIteration
            await self._arrived.wait()
            self._arrived = trio.Event()
        return self._queue.popleft()
