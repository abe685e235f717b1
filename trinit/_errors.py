"""Exceptions trinit raises; a user mistake is a ConfigError, never a traceback."""

from __future__ import annotations

from collections.abc import Iterable

from ._text import escape_controls


class TrinitError(Exception):
    """Base class of every error trinit raises on purpose."""


class ConfigError(TrinitError):
    """A config (TOML, keyword arguments or command line) is invalid.

    ``errors`` lists every problem found, each a full line that names the file, the
    process and the key, so a user can fix them all in one go. Control characters (from a
    name, a key, a value or a path) are escaped, so each problem is exactly one line.
    """

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors: list[str] = [escape_controls(error) for error in errors]
        super().__init__("\n".join(self.errors))
