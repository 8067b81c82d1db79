"""Test support for tests/broker: harnesses that put every Broker implementation behind one
small test-facing interface, so test_broker_contract.py runs the same assertions against each."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import msgspec

from botctl.adapters.sim_broker import SimBroker
from botctl.records import Fill, Order
from botctl.spec.model import SimSpec

UTC = timezone.utc
CASH = 100_000.0
# Distinctive credentials: a test that finds them in an error message knows where they leaked from.
API_KEY = "PKLEAKCHECK7Q3ZKEYID"
SECRET_KEY = "sk-LEAKCHECK-9f3c1e7b2d4a-SECRET"

_ids = itertools.count(1)


def make_order(symbol: str, side: str, qty: float, ref_price: float, *, cid: str | None = None,
               now: datetime | None = None) -> Order:
    now = now or datetime.now(UTC)
    return Order(client_order_id=cid or f"test-{next(_ids)}-{symbol}-{side}", run_id="run-test", account="acct",
                 symbol=symbol, side=side, qty=qty, status="pending", ts_init=now, ts_event=now,
                 ref_price=ref_price)


class Harness:
    """What a contract test needs beyond the Broker port: prices, and whether orders fill now."""

    name: str
    broker: object

    def __init__(self) -> None:
        self.prices: dict[str, float] = {}
        self.now = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)

    def order(self, symbol: str, side: str, qty: float, cid: str | None = None) -> Order:
        return make_order(symbol, side, qty, self.prices[symbol], cid=cid, now=self.now)

    def set_price(self, symbol: str, price: float) -> None:
        raise NotImplementedError

    def fills_now(self, flag: bool) -> None:
        """True: market orders fill as they are submitted. False: they stay open."""
        raise NotImplementedError

    def settle(self, orders: list[Order]) -> list[tuple[Order, list[Fill]]]:
        """Let the open `orders` fill; their new state and the fills reported for them."""
        raise NotImplementedError

    def held_order_ids(self) -> list[str]:
        """Client ids of the orders the broker holds (rejected ones excluded)."""
        raise NotImplementedError

    def close_market(self) -> None:
        """From now on the market is shut, as this broker learns it."""
        raise NotImplementedError


class SimHarness(Harness):
    name = "sim"

    def __init__(self) -> None:
        super().__init__()
        self.broker = SimBroker(CASH, SimSpec(fill="close"))

    def set_price(self, symbol: str, price: float) -> None:
        self.prices[symbol] = price
        self.broker.mark({symbol: price})

    def fills_now(self, flag: bool) -> None:
        # The simulator reads its `fill` setting at every submit: `close` fills at once at the
        # order's reference price, `open` waits for the next bar's open (on_open).
        self.broker.settings = msgspec.structs.replace(self.broker.settings, fill="close" if flag else "open")

    def settle(self, orders: list[Order]) -> list[tuple[Order, list[Fill]]]:
        results = {o.client_order_id: (o, fills) for o, fills in self.broker.on_open(dict(self.prices), self.now)}
        return [results.get(o.client_order_id, (self.broker.get_order(o.client_order_id), [])) for o in orders]

    def held_order_ids(self) -> list[str]:
        return [c for c, o in self.broker.orders.items() if o.status != "rejected"]

    def close_market(self) -> None:
        self.now = datetime(2024, 3, 2, 15, 0, tzinfo=UTC)  # a Saturday: the calendar has no session


class AlpacaHarness(Harness):
    name = "alpaca"

    def __init__(self, fake) -> None:
        from botctl.adapters.alpaca_broker import AlpacaBroker

        super().__init__()
        self.fake = fake
        self.broker = AlpacaBroker(API_KEY, SECRET_KEY, paper=True, base_url=fake.url, timeout=2.0, retries=2,
                                   backoff=0.0, sleep=lambda s: None)

    def set_price(self, symbol: str, price: float) -> None:
        self.prices[symbol] = price
        self.fake.set_price(symbol, price)

    def fills_now(self, flag: bool) -> None:
        self.fake.market_open = flag

    def settle(self, orders: list[Order]) -> list[tuple[Order, list[Fill]]]:
        self.fake.fill_pending()
        out = []
        for o in orders:
            found = self.broker.get_order(o.client_order_id, o)
            out.append((found, self.broker.fills_for(found) if found is not None else []))
        return out

    def held_order_ids(self) -> list[str]:
        return [o["client_order_id"] for o in self.fake.orders()]

    def close_market(self) -> None:
        self.fake.market_open = False  # what the fake's /v2/clock answers
