"""The public handle of a running supervisor: what ``open_supervisor`` yields.

Only the documented methods (SPEC §5) are reachable; it is made by the runtime alone
(trio's ``NoPublicConstructor`` habit), so the internals behind it can change freely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from ..config.model import Config
    from .events import EventStream
    from .process import ProcessStatus
    from .supervisor import Runtime


class _NoPublicConstructor(type):
    """Calling the class raises; the runtime makes instances with ``_create``."""

    def __call__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} has no public constructor; "
            "get one from trinit.open_supervisor()."
        )

    def _create(cls, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(*args, **kwargs)


class Supervisor(metaclass=_NoPublicConstructor):
    """A running set of processes, inside ``async with trinit.open_supervisor(config)``."""

    __slots__ = ("_runtime",)

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def status(self) -> dict[str, ProcessStatus]:
        """Every process's state, pid, restart count and last exit, by name."""
        return self._runtime.status()

    def send_signal(self, name: str, sig: int) -> None:
        """Send ``sig`` to ``name``'s running process (its group with ``signal_group``).

        Raises ProcessLookupError if it is not running, KeyError for an unknown name.
        """
        self._runtime.send_signal(name, sig)

    async def wait_ready(self, name: str) -> None:
        """Return once ``name`` is ready (a oneshot: has completed); raise TrinitError if it never will be."""
        await self._runtime.wait_ready(name)

    async def start(self, name: str, *, wait: bool = False) -> None:
        """Start a stopped, exited or failed process (a oneshot runs again) once its ``after`` holds.

        ``wait``: return once it is ready (a oneshot: completed). Raises TrinitError if it
        is running already or the shutdown has begun.
        """
        await self._runtime.start(name, wait=wait)

    async def stop(self, name: str) -> None:
        """Stop ``name`` with its stop signal and grace; it stays stopped until started.

        Returns once it has exited. Stopping the main process begins the shutdown.
        """
        await self._runtime.stop(name)

    async def restart(self, name: str) -> None:
        """Stop ``name``'s process and start it again (a finished one starts anew).

        Never a failure, and never counted toward ``max_restarts``.
        """
        await self._runtime.restart(name)

    async def reload(self, config: Config, *, dry_run: bool = False) -> list[str]:
        """Apply ``config`` in place of the running one (SPEC §10); return the plan, one line a change.

        Processes no longer in it stop, new ones start once their ``after`` holds, changed ones
        restart (with their ``restart = true`` followers), unchanged ones are not touched.
        Nothing changes when it cannot be applied: a change to the main process, or to a
        ``[trinit]`` key other than ``shutdown_timeout``, ``log_format`` and ``ready_file``,
        raises ConfigError listing why (as does an unusable ``user`` or ``env_file``); so does
        ``dry_run``, which only returns the plan. Raises TrinitError during another reload
        or the shutdown.
        """
        return await self._runtime.reloader.reload(config, dry_run=dry_run)

    def events(self) -> EventStream:
        """Follow what happens from now on: an async iterator of event dicts (SPEC §6 fields).

        It ends when the run ends, or with an ``overflow`` event if it falls 10,000 events
        behind. Use it in a ``with`` block (or call ``close()``) to stop following.
        """
        return self._runtime.events.follow()

    async def wait(self) -> int:
        """Wait until the run has ended (by itself or a shutdown); return its exit code."""
        return await self._runtime.wait()


def make_handle(runtime: Runtime) -> Supervisor:
    handle: Supervisor = Supervisor._create(runtime)
    return handle
