"""Turn account target weights into orders: the diff between what is held and what is wanted.

Pure arithmetic. Sells come before buys so cash freed by sells funds the buys; trades worth
less than the account's minimum are skipped as dust, except a sell that closes a position.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from botctl.engine.orders import OrderBatch
from botctl.records import SubmitOrder


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
    """`diff_batch` as a list of commands."""
    return diff_batch(account, targets, qty, cash, prices, min_trade_value=min_trade_value, fractional=fractional,
                      nav=nav).commands()


def diff_batch(
    account: str,
    targets: Mapping[str, float],
    qty: Mapping[str, float],
    cash: float,
    prices: Mapping[str, float | None],
    *,
    min_trade_value: float,
    fractional: bool,
    nav: float | None = None,
) -> OrderBatch:
    """Orders that bring holdings `qty` to `targets` (weights of NAV) at `prices`: sells, then
    buys, each in symbol order. A symbol without a usable price is not traded (the caller
    records why). `nav` overrides the NAV the weights apply to (when `qty` is only part of the
    account's holdings)."""
    if nav is None:
        nav = cash + sum(q * (_usable(prices.get(s)) or 0.0) for s, q in qty.items())
    if nav <= 0:
        return OrderBatch.empty(account)
    # Only the symbols wanted or held are looked up: `prices` may cover a universe of thousands.
    symbols = sorted(set(targets) | {s for s, q in qty.items() if q})
    price = np.fromiter((_number(prices.get(s)) for s in symbols), dtype=float, count=len(symbols))
    held = np.fromiter((qty.get(s, 0.0) for s in symbols), dtype=float, count=len(symbols))
    weight = np.fromiter((targets.get(s, 0.0) for s in symbols), dtype=float, count=len(symbols))
    with np.errstate(invalid="ignore", divide="ignore"):
        wanted = weight * nav / price
        if not fractional:
            wanted = np.floor(wanted + 1e-9)
        delta = wanted - held
        size = np.abs(delta)
        closing = (wanted == 0) & (held != 0)
        keep = (price > 0) & (size >= 1e-9) & ((size * price >= min_trade_value) | closing)
    rows = np.concatenate([np.flatnonzero(keep & (delta < 0)), np.flatnonzero(keep & (delta > 0))])
    names = [symbols[i] for i in rows.tolist()]
    return OrderBatch(account, names, delta[rows] > 0, size[rows], price[rows], ["rebalance"] * len(names))


def _number(price: float | None) -> float:
    return math.nan if price is None else price
