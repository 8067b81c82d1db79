"""diff_orders: from held quantities and target weights to orders."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from botctl.engine.rebalance import diff_orders


def diff(targets, qty, cash, prices, *, min_trade_value=0.0, fractional=True):
    return diff_orders("acct", targets, qty, cash, prices, min_trade_value=min_trade_value, fractional=fractional)


def as_tuples(orders):
    return [(o.symbol, o.side, pytest.approx(o.qty)) for o in orders]


def test_a_switch_sells_before_it_buys():
    orders = diff({"A": 0.5, "B": 0.5}, {"Y": 100.0, "Z": 50.0}, 0.0, {"A": 10.0, "B": 20.0, "Y": 50.0, "Z": 100.0})
    # NAV = 100*50 + 50*100 = 10,000.
    assert as_tuples(orders) == [("Y", "sell", 100.0), ("Z", "sell", 50.0), ("A", "buy", 500.0), ("B", "buy", 250.0)]
    assert [o.ref_price for o in orders] == [50.0, 100.0, 10.0, 20.0]
    assert all(o.account == "acct" for o in orders)


def test_partial_moves_trade_only_the_difference():
    orders = diff({"A": 0.25, "B": 0.75}, {"A": 600.0, "B": 100.0}, 2000.0, {"A": 10.0, "B": 20.0})
    # NAV = 6000 + 2000 + 2000 = 10,000 -> A 250 shares (sell 350), B 375 shares (buy 275).
    assert as_tuples(orders) == [("A", "sell", 350.0), ("B", "buy", 275.0)]


def test_leverage_targets_spend_borrowed_cash():
    orders = diff({"A": 1.25}, {}, 10_000.0, {"A": 100.0})
    assert as_tuples(orders) == [("A", "buy", 125.0)]


def test_dust_below_min_trade_value_is_skipped():
    # NAV 10,000; A wants 5,004 (holds 5,000): a $4 trade under a $10 minimum.
    orders = diff({"A": 0.5004, "B": 0.4}, {"A": 50.0}, 5000.0, {"A": 100.0, "B": 100.0}, min_trade_value=10.0)
    assert as_tuples(orders) == [("B", "buy", 40.0)]
    # The same $4 moves once the minimum is lower.
    orders = diff({"A": 0.5004, "B": 0.4}, {"A": 50.0}, 5000.0, {"A": 100.0, "B": 100.0}, min_trade_value=1.0)
    assert as_tuples(orders) == [("A", "buy", 0.04), ("B", "buy", 40.0)]


def test_dust_rule_never_blocks_closing_a_position():
    # 0.05 shares of C ($5) under a $10 minimum: dropping C from the targets still sells it.
    orders = diff({"A": 0.5}, {"A": 50.0, "C": 0.05}, 4995.0, {"A": 100.0, "C": 100.0}, min_trade_value=10.0)
    assert as_tuples(orders) == [("C", "sell", 0.05)]


def test_whole_shares_when_not_fractional():
    orders = diff({"A": 0.5, "B": 0.5}, {}, 10_000.0, {"A": 33.0, "B": 70.0}, fractional=False)
    assert [(o.symbol, o.side, o.qty) for o in orders] == [("A", "buy", 151), ("B", "buy", 71)]
    assert all(float(o.qty).is_integer() for o in orders)
    # Fractional, the same targets buy fractions.
    orders = diff({"A": 0.5, "B": 0.5}, {}, 10_000.0, {"A": 33.0, "B": 70.0}, fractional=True)
    assert orders[0].qty == pytest.approx(5000 / 33)


def test_whole_shares_round_down_a_target_under_one_share_to_a_full_close():
    orders = diff({"A": 0.004}, {"A": 3.0}, 9700.0, {"A": 100.0}, fractional=False, min_trade_value=1000.0)
    assert [(o.symbol, o.side, o.qty) for o in orders] == [("A", "sell", 3)]


def test_a_symbol_without_a_price_is_not_traded():
    orders = diff({"A": 0.5, "B": 0.5}, {}, 10_000.0, {"A": 10.0, "B": float("nan")})
    assert as_tuples(orders) == [("A", "buy", 500.0)]


def test_only_wanted_or_held_symbols_need_a_price_and_a_held_one_without_counts_nothing():
    prices = {"A": 10.0, "B": 0.0, "C": None, "D": float("nan"), "E": -1.0, "F": 20.0}
    # B is held without a usable price: worth nothing to the NAV, not traded; C..E are neither.
    orders = diff({"A": 0.5, "F": 0.5}, {"B": 7.0, "F": 100.0}, 8_000.0, prices)
    # NAV = 8,000 + 100 x 20 = 10,000 -> A 500 shares, F 250 (150 more).
    assert as_tuples(orders) == [("A", "buy", 500.0), ("F", "buy", 150.0)]


def test_no_orders_when_nothing_changes_or_nav_is_not_positive():
    assert diff({"A": 0.5}, {"A": 50.0}, 5000.0, {"A": 100.0}) == []
    assert diff({"A": 1.0}, {}, 0.0, {"A": 100.0}) == []
    assert diff({"A": 1.0}, {"A": 10.0}, -2000.0, {"A": 100.0}) == []


@settings(max_examples=50, deadline=None)
@given(
    held=hst.dictionaries(hst.sampled_from("ABCDE"), hst.floats(0, 500), max_size=5),
    wanted=hst.dictionaries(hst.sampled_from("ABCDEF"), hst.floats(0, 0.5), max_size=6),
    cash=hst.floats(100, 50_000),
)
def test_orders_reach_the_targets(held, wanted, cash):
    prices = {s: 10.0 + 7 * i for i, s in enumerate("ABCDEF")}
    orders = diff(wanted, held, cash, prices)
    sides = [o.side for o in orders]
    assert sides == sorted(sides, key=lambda s: s != "sell")  # every sell before any buy
    qty = dict(held)
    for o in orders:
        assert o.qty > 0
        qty[o.symbol] = qty.get(o.symbol, 0.0) + (o.qty if o.side == "buy" else -o.qty)
    nav = cash + sum(q * prices[s] for s, q in held.items())
    for symbol in set(wanted) | set(held):
        assert qty.get(symbol, 0.0) * prices[symbol] == pytest.approx(wanted.get(symbol, 0.0) * nav, abs=1e-6)
