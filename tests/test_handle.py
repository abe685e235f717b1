"""The public handle: only what SPEC §5 documents, and no public constructor (issue 9)."""

from __future__ import annotations

import pytest

import trinit
from trinit import Config, ProcessSpec

DOCUMENTED = ["events", "reload", "restart", "send_signal", "start", "status", "stop", "wait", "wait_ready"]


def test_the_handle_type_exposes_only_the_documented_methods() -> None:
    assert [n for n in dir(trinit.Supervisor) if not n.startswith("_")] == DOCUMENTED


def test_the_handle_cannot_be_constructed() -> None:
    with pytest.raises(TypeError, match=r"no public constructor.*open_supervisor"):
        trinit.Supervisor()  # type: ignore[call-arg]


async def test_open_supervisor_yields_the_handle_and_nothing_else_leaks() -> None:
    config = Config([ProcessSpec("app", ["sleep", "30"])])
    async with trinit.open_supervisor(config) as sup:
        assert type(sup) is trinit.Supervisor
        assert [n for n in dir(sup) if not n.startswith("_")] == DOCUMENTED
        with pytest.raises(AttributeError):
            sup.extra = 1  # type: ignore[attr-defined]
        await sup.wait_ready("app")
        assert sup.status()["app"].state == "ready"
    assert sup.status()["app"].state == "exited"
