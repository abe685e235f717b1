"""The container suite's gate and image: skip on a laptop, fail under CI, build Dockerfile.example once."""

from __future__ import annotations

import os

import pytest

from .podman import IMAGE, REPO, podman, unavailable


@pytest.fixture(scope="session")
def image() -> str:
    """Dockerfile.example, built unmodified from this checkout with no network (layers are cached)."""
    reason = unavailable()
    if reason is not None:
        if os.environ.get("TRINIT_REQUIRE_NAMESPACES"):
            pytest.fail(f"container test cannot run here: {reason} (TRINIT_REQUIRE_NAMESPACES is set)")
        pytest.skip(reason)
    podman(
        "build",
        "--pull=never",
        "--network=none",
        "-f",
        "Dockerfile.example",
        "-t",
        IMAGE,
        str(REPO),
        timeout=600,
    )
    return IMAGE
