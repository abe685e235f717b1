"""``ready_file``: a file that exists exactly while every run-phase process is up (SPEC §4).

Once the run is ending (the main process exited, a long-running process is gone with no
restart to come, the shutdown began) it is retired: removed, and never created again, so a
Kubernetes probe never sees "ready" after the app is dead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from ..io.log import Logger
    from ..system.protocol import OSLayer


@attrs.define(eq=False)
class ReadyFile:
    """Creates and removes the file through the OS layer; ``path`` None makes it a no-op."""

    path: str | None
    os: OSLayer
    log: Logger
    _made: bool = False
    _retired: bool = False

    def update(self, all_up: bool) -> None:
        """Create the file when everything is up, remove it when something no longer is."""
        path = self.path
        if path is None or self._retired:
            return
        if not all_up:
            self.remove()
            return
        if self._made:
            return
        try:
            self.os.write_ready_file(path, f"{self.os.pid}\n".encode())
        except OSError as exc:
            self.log.warning(
                "ready_file",
                f"everything is up, but ready_file {path} could not be created ({exc.strerror}); "
                "make its folder writable for trinit's user or change ready_file",
            )
            return
        self._made = True
        self.log.info("all_ready", f"everything is up; created {path}")

    def move(self, path: str | None) -> None:
        """Use another path from now on (a reload, SPEC §10): the old file goes."""
        if path != self.path:
            self.remove()
            self.path = path

    def retire(self) -> None:
        """Remove the file for good: the run is ending, so it is never created again."""
        self._retired = True
        self.remove()

    def remove(self) -> None:
        if self.path is None or not self._made:
            return
        self.os.remove_ready_file(self.path)
        self._made = False
