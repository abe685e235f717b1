"""Exceptions trinit raises; a user mistake is a ConfigError, never a traceback."""

from __future__ import annotations

from collections.abc import Iterable


class TrinitError(Exception):
    """Base class of every error trinit raises on purpose."""


class ConfigError(TrinitError):
    """A config (TOML, keyword arguments or command line) is invalid.

    ``errors`` lists every problem found, each a full line that names the file, the
    process and the key, so a user can fix them all in one go.
    """

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors: list[str] = list(errors)
        super().__init__("\n".join(self.errors))
