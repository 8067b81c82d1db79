from __future__ import annotations

import pytest
from engine_factories import shipped_plan

from botctl.adapters.file_data import load_bars
from botctl.strategy.bars import bars_from_frame


@pytest.fixture(scope="session")
def bundled_frame():
    return load_bars()


@pytest.fixture(scope="session")
def plan():
    """The shipped strategies.yaml + accounts.yaml, compiled."""
    return shipped_plan()


@pytest.fixture(scope="session")
def bundled_bars(plan, bundled_frame):
    """The bundled data as adjusted bars over every symbol of the shipped plan."""
    return bars_from_frame(bundled_frame, plan.symbols)
