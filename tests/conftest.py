"""Shared test helpers: running trinit as PID 1 of a fresh PID namespace."""

from __future__ import annotations

import os
import shutil

import pytest


def namespaces_available() -> str | None:
    """None if we can run `unshare --pid --fork --mount-proc`, else why not."""
    if os.geteuid() != 0:
        return "needs root for unshare --pid --fork --mount-proc"
    if shutil.which("unshare") is None:
        return "needs the unshare command (util-linux)"
    return None


def require_namespaces() -> None:
    """Skip with the reason on a laptop; fail under CI, which must run every PID-1 test."""
    reason = namespaces_available()
    if reason is None:
        return
    if os.environ.get("TRINIT_REQUIRE_NAMESPACES"):
        pytest.fail(f"PID-1 test cannot run here: {reason} (TRINIT_REQUIRE_NAMESPACES is set)")
    pytest.skip(reason)


@pytest.fixture
def pid1() -> None:
    require_namespaces()


#: Skips seen in this session (xfails aside): under CI (TRINIT_REQUIRE_NAMESPACES) any fails the run,
#: whatever raised it, so a probe that skips on a bad moment cannot pass CI unseen.
_SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SKIPPED and os.environ.get("TRINIT_REQUIRE_NAMESPACES") and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nTRINIT_REQUIRE_NAMESPACES is set, and {len(_SKIPPED)} test(s) were skipped: {', '.join(_SKIPPED)}")
