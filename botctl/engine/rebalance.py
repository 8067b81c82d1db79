"""Turn account target weights into orders: the diff between what is held and what is wanted.

Pure arithmetic. Sells come before buys so cash freed by sells funds the buys; trades worth
less than the account's minimum are skipped as dust, except a sell that closes a position.
"""

from __future__ import annotations

import math

from botctl.records import Side, SubmitOrder


def nav_of(cash: float, qty: dict[str, float], prices: dict[str, float]) -> float:
    return cash + sum(q * prices[s] for s, q in qty.items() if q)


def _usable(price: float | None) -> float | None:
    """A price orders can be sized at: a number above zero (None and NaN are not)."""
    return price if price is not None and not math.isnan(price) and price > 0 else None


def diff_orders(
    account: str,
    targets: dict[str, float],
    qty: dict[str, float],
    cash: float,
    prices: dict[str, float],
    *,
    min_trade_value: float,
    fractional: bool,
    nav: float | None = None,
) -> list[SubmitOrder]:
    """Orders that bring holdings `qty` to `targets` (weights of NAV) at `prices`.
    A symbol without a usable price is not traded (the caller records why). `nav` overrides
    the NAV the weights apply to (when `qty` is only part of the account's holdings)."""
    if nav is None:
        nav = cash + sum(q * (_usable(prices.get(s)) or 0.0) for s, q in qty.items())
    sells: list[SubmitOrder] = []
    buys: list[SubmitOrder] = []
    if nav <= 0:
        return []
    # Only the symbols wanted or held are looked up: `prices` may cover a universe of thousands.
    for symbol in sorted(set(targets) | {s for s, q in qty.items() if q}):
        price = _usable(prices.get(symbol))
        if price is None:
            continue
        held = qty.get(symbol, 0.0)
        wanted = targets.get(symbol, 0.0) * nav / price
        if not fractional:
            wanted = math.floor(wanted + 1e-9)
        delta = wanted - held
        closing = wanted == 0 and held != 0
        if abs(delta) < 1e-9 or (abs(delta) * price < min_trade_value and not closing):
            continue
        side: Side = "buy" if delta > 0 else "sell"
        order = SubmitOrder(account=account, symbol=symbol, side=side, qty=abs(delta), ref_price=price)
        (buys if side == "buy" else sells).append(order)
    return sells + buys
