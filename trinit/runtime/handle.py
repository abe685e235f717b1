"""The public handle of a running supervisor: what ``open_supervisor`` yields.

Only the documented methods (SPEC §5) are reachable; it is made by the runtime alone
(trio's ``NoPublicConstructor`` habit), so the internals behind it can change freely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
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
        """Send ``sig`` to ``name``'s running process (its group with ``signal_group``)."""
        self._runtime.send_signal(name, sig)

    async def wait_ready(self, name: str) -> None:
        """Return once ``name`` is ready (a oneshot: has completed); raise if it never will be."""
        await self._runtime.wait_ready(name)

    async def stop(self, name: str) -> None:
        """Stop ``name`` for good with its stop signal and grace; return once it has exited."""
        await self._runtime.stop(name)

    async def restart(self, name: str) -> None:
        """Stop ``name``'s process and start it again (a finished one starts anew)."""
        await self._runtime.restart(name)

    async def wait(self) -> int:
        """Wait until the run has ended (by itself or a shutdown); return its exit code."""
        return await self._runtime.wait()


def make_handle(runtime: Runtime) -> Supervisor:
    handle: Supervisor = Supervisor._create(runtime)
    return handle
