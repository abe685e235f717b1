"""trinit's exit code (SPEC §2), decided in one place from what the run left behind."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .facts import RunnerFacts

#: trinit's own exit code when it hit an internal error (EX_SOFTWARE of sysexits.h).
INTERNAL_ERROR = 70


def exit_code(
    crashed: bool, fixed: int | None, main: RunnerFacts | None, success_exits: frozenset[int]
) -> int:
    """70 after an internal error; else the first failure's code (``fixed``), else the main
    process's status (its ``success_codes`` are 0; no status: it never started, and the
    shutdown that came first is no failure), else 0; then ``-e`` maps accepted codes to 0."""
    if crashed:
        return INTERNAL_ERROR
    code = 0
    if fixed is not None:
        code = fixed
    elif main is not None and (status := main.last_status) is not None:
        code = status.exit_code
        if status.code is not None and status.code in main.spec.success_codes:
            code = 0
    return 0 if code in success_exits else code
