"""Fixtures of the broker tests: one harness per Broker implementation (broker_support)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from broker_support import API_KEY, CASH, SECRET_KEY, AlpacaHarness, Harness, SimHarness


@pytest.fixture
def fake_alpaca():
    from fakes.fake_alpaca import FakeAlpaca

    with FakeAlpaca(api_key=API_KEY, secret_key=SECRET_KEY, cash=CASH) as fake:
        fake.market_open = True
        yield fake


@pytest.fixture(params=["sim", "alpaca"])
def harness(request) -> Iterator[Harness]:
    if request.param == "sim":
        h: Harness = SimHarness()
    else:
        h = AlpacaHarness(request.getfixturevalue("fake_alpaca"))
    h.fills_now(True)
    for symbol, price in {"SPY": 100.0, "TLT": 50.0}.items():
        h.set_price(symbol, price)
    yield h
