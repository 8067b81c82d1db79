"""Small builders for the risk guard tests (imported by the tests in this folder)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import msgspec

from botctl.engine import guard
from botctl.records import SubmitOrder
from botctl.spec.model import RiskSpec

ACCOUNT = "acct"
TODAY = date(2024, 3, 4)
NOW = datetime(2024, 3, 4, 15, 0, tzinfo=timezone.utc)
UNIVERSE = frozenset({"A", "B", "C", "D"})
PRICE = 100.0

# The only rules that may block a sell: data, collar and rate rules.
SELL_RULES = {"stale_data", "price_collar", "max_orders_per_cycle", "max_orders_per_day", "cooldown"}


def buy(symbol: str, qty: float, price: float = PRICE) -> SubmitOrder:
    return SubmitOrder(account=ACCOUNT, symbol=symbol, side="buy", qty=qty, ref_price=price)


def sell(symbol: str, qty: float, price: float = PRICE) -> SubmitOrder:
    return SubmitOrder(account=ACCOUNT, symbol=symbol, side="sell", qty=qty, ref_price=price)


def portfolio(*, nav: float = 100_000.0, qty: dict[str, float] | None = None,
              prices: dict[str, float] | None = None, last_close: dict[str, float] | None = None,
              universe: frozenset[str] = UNIVERSE, data_age: int | None = 1,
              today: date = TODAY) -> guard.Portfolio:
    symbols = set(universe) | set(qty or {}) | {"ZZZ"}
    prices = prices if prices is not None else {s: PRICE for s in symbols}
    return guard.Portfolio(
        nav=nav, qty=dict(qty or {}), prices=prices,
        last_close=last_close if last_close is not None else dict(prices),
        universe=universe, data_as_of=None if data_age is None else today - timedelta(days=data_age), today=today,
    )


def state(**changes) -> guard.GuardState:
    return msgspec.structs.replace(guard.GuardState(account=ACCOUNT), **changes)


def risk(**changes) -> RiskSpec:
    return msgspec.structs.replace(RiskSpec(), **changes)


def check(orders, risk_spec: RiskSpec | None = None, book: guard.Portfolio | None = None,
          guard_state: guard.GuardState | None = None, now: datetime = NOW):
    return guard.check_orders(list(orders), risk_spec or RiskSpec(), book or portfolio(), guard_state or state(), now)


def apply(qty: dict[str, float], orders) -> dict[str, float]:
    """Holdings after `orders` fill in full."""
    out = dict(qty)
    for o in orders:
        out[o.symbol] = out.get(o.symbol, 0.0) + (o.qty if o.side == "buy" else -o.qty)
    return out


def gross(qty: dict[str, float], prices: dict[str, float]) -> float:
    return sum(abs(q * prices[s]) for s, q in qty.items())
