"""Shared test fixtures: a fresh random seed per session (printed, and settable to reproduce)."""

from __future__ import annotations

import numpy as np
import pytest

from session_seed import SESSION_SEED


def pytest_report_header(config: pytest.Config) -> str:
    return f"fusionrt test seed: {SESSION_SEED} (set FUSIONRT_TEST_SEED to reproduce)"


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """A seed unique to this test and session."""
    return (SESSION_SEED + hash(request.node.nodeid)) % 2**32


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)
