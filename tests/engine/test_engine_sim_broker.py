"""SimBroker: fill prices, costs, buying power, no shorting, borrow interest; and the same through a Book."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from engine_factories import T0, make_bars, order, plan_from_yaml, weekdays

from botctl.adapters.sim_broker import SimBroker
from botctl.runtime.backtest import run_backtest
from botctl.spec.model import SimSpec

T1 = T0 + timedelta(days=1)


def broker(cash=10_000.0, **settings) -> SimBroker:
    return SimBroker(cash, SimSpec(**settings))


def test_market_order_fills_at_the_next_open_with_slippage_and_commission():
    b = broker(fill="open", slippage_bps=10, commission_bps=5)
    accepted, fills = b.submit(order("XLK", "buy", 10, ref_price=100.0), T0)
    assert accepted.status == "accepted" and fills == []
    assert b.cash == 10_000.0 and b.open_orders() == [accepted]

    [(filled, [fill])] = b.on_open({"XLK": 101.0}, T1)
    price = 101.0 * 1.001  # 10 bps against a buyer
    commission = 10 * price * 0.0005
    assert filled.status == "filled" and filled.filled_qty == 10
    assert fill.price == pytest.approx(price, rel=1e-12) and filled.avg_fill_price == fill.price
    assert fill.commission == pytest.approx(commission, rel=1e-12)
    assert b.cash == pytest.approx(10_000.0 - 10 * price - commission, rel=1e-12)
    assert b.qty == {"XLK": 10} and b.avg_price["XLK"] == pytest.approx(price)
    assert fill.ts_event == T1 and b.open_orders() == []

    b.submit(order("XLK", "sell", 4, ref_price=105.0, n=1), T1)
    [(_, [sale])] = b.on_open({"XLK": 110.0}, T1 + timedelta(days=1))
    sell_price = 110.0 * 0.999  # 10 bps against a seller
    assert sale.price == pytest.approx(sell_price, rel=1e-12)
    assert sale.commission == pytest.approx(4 * sell_price * 0.0005, rel=1e-12)
    assert b.cash == pytest.approx(10_000.0 - 10 * price - commission + 4 * sell_price * (1 - 0.0005), rel=1e-12)
    assert b.qty == {"XLK": 6}


def test_an_order_without_a_bar_at_the_open_is_canceled():
    b = broker()
    b.submit(order("XLK", "buy", 1, ref_price=100.0), T0)
    [(canceled, fills)] = b.on_open({"SPY": 400.0}, T1)
    assert canceled.status == "canceled" and fills == [] and b.qty == {} and b.cash == 10_000.0


def test_fill_at_close_fills_at_the_reference_price_immediately():
    b = broker(fill="close", slippage_bps=20, commission_bps=1)
    filled, [fill] = b.submit(order("XLK", "buy", 10, ref_price=100.0), T0)
    assert filled.status == "filled" and fill.price == pytest.approx(100.2)
    assert b.cash == pytest.approx(10_000.0 - 1002.0 - 1002.0 * 1e-4)
    assert b.open_orders() == [] and b.on_open({"XLK": 150.0}, T1) == []


def test_submit_is_idempotent_on_the_client_order_id():
    b = broker(fill="close")
    o = order("XLK", "buy", 10, ref_price=100.0)
    b.submit(o, T0)
    again, fills = b.submit(o, T0)
    assert fills == [] and again.status == "filled" and b.qty == {"XLK": 10}


def test_buy_over_margin_is_rejected_with_the_numbers():
    b = broker(cash=10_000.0, margin=1.0)
    rejected, fills = b.submit(order("XLK", "buy", 101, ref_price=100.0), T0)
    assert rejected.status == "rejected" and fills == []
    assert "insufficient buying power" in rejected.reject_reason
    assert "$10,100.00" in rejected.reject_reason and "$10,000.00" in rejected.reject_reason
    assert b.cash == 10_000.0 and b.open_orders() == []
    ok, _ = b.submit(order("XLK", "buy", 100, ref_price=100.0, n=1), T0)
    assert ok.status == "accepted"


def test_margin_allows_leverage_up_to_the_multiplier_counting_pending_orders():
    b = broker(cash=10_000.0, margin=2.0)
    b.mark({"XLK": 100.0, "XLF": 100.0, "XLE": 100.0})  # as a Book does before every rebalance
    assert b.submit(order("XLK", "buy", 150, ref_price=100.0), T0)[0].status == "accepted"  # 1.5x
    assert b.submit(order("XLF", "buy", 50, ref_price=100.0, n=1), T0)[0].status == "accepted"  # 2.0x
    third, _ = b.submit(order("XLE", "buy", 1, ref_price=100.0, n=2), T0)
    assert third.status == "rejected" and "2x equity" in third.reject_reason
    b.on_open({"XLK": 100.0, "XLF": 100.0}, T1)
    assert b.cash == pytest.approx(-10_000.0)
    assert b.account().buying_power == pytest.approx(0.0)


def test_pending_buys_in_unmarked_symbols_count_toward_buying_power():
    b = broker(cash=10_000.0, margin=2.0)
    assert b.submit(order("XLK", "buy", 150, ref_price=100.0), T0)[0].status == "accepted"
    assert b.submit(order("XLF", "buy", 50, ref_price=100.0, n=1), T0)[0].status == "accepted"
    third, _ = b.submit(order("XLE", "buy", 100, ref_price=100.0, n=2), T0)  # would make gross 3x equity
    assert third.status == "rejected"


def test_orders_no_longer_pending_stop_counting_toward_buying_power():
    b = broker(cash=10_000.0, margin=1.0)
    b.mark({"XLK": 100.0, "XLF": 100.0, "XLE": 100.0})
    assert b.submit(order("XLK", "buy", 100, ref_price=100.0), T0)[0].status == "accepted"
    assert b.submit(order("XLF", "buy", 1, ref_price=100.0, n=1), T0)[0].status == "rejected"
    b.cancel("t-XLK-buy-0", T0)  # canceled: its $10,000 is free again
    assert b.submit(order("XLF", "buy", 60, ref_price=100.0, n=2), T0)[0].status == "accepted"
    b.on_open({"XLF": 100.0}, T1)  # filled: held now, counted once
    assert b.submit(order("XLE", "buy", 40, ref_price=100.0, n=3), T1)[0].status == "accepted"
    assert b.submit(order("XLK", "buy", 1, ref_price=100.0, n=4), T1)[0].status == "rejected"
    b.submit(order("XLF", "sell", 60, ref_price=100.0, n=5), T1)
    b.on_open({"XLF": 100.0, "XLE": 100.0}, T1 + timedelta(days=1))  # XLF sold, XLE bought
    assert b.qty == {"XLE": 40} and b.open_orders() == []
    assert b.submit(order("XLK", "buy", 60, ref_price=100.0, n=6), T1)[0].status == "accepted"
    assert b.submit(order("XLK", "buy", 1, ref_price=100.0, n=7), T1)[0].status == "rejected"


def test_fills_at_the_close_count_toward_the_next_buys_buying_power():
    b = broker(cash=10_000.0, margin=1.0, fill="close")
    b.mark({"XLK": 100.0, "XLF": 100.0, "XLE": 100.0})
    assert b.submit(order("XLK", "buy", 100, ref_price=100.0), T0)[0].status == "filled"
    assert b.submit(order("XLF", "buy", 1, ref_price=100.0, n=1), T0)[0].status == "rejected"
    assert b.submit(order("XLK", "sell", 100, ref_price=100.0, n=2), T0)[0].status == "filled"
    assert b.submit(order("XLF", "buy", 100, ref_price=100.0, n=3), T0)[0].status == "filled"  # the sale's cash
    assert b.submit(order("XLE", "buy", 1, ref_price=100.0, n=4), T0)[0].status == "rejected"
    assert b.qty == {"XLF": 100} and b.cash == pytest.approx(0.0)


def test_a_mark_keeps_the_last_good_price_of_a_symbol_marked_without_one():
    b = broker(cash=0.0)
    b.mark({"A": 10.0, "B": 20.0, "C": 30.0, "D": 40.0, "E": 50.0})
    b.mark({"A": 11.0, "B": float("nan"), "C": None, "D": 0.0, "E": float("inf"), "F": 60.0})
    assert b.last_price == {"A": 11.0, "B": 20.0, "C": 30.0, "D": 40.0, "E": 50.0, "F": 60.0}
    b.mark({"A": 12.0, "F": 61.0})
    assert b.last_price["A"] == 12.0 and b.last_price["F"] == 61.0


def test_no_short_selling():
    b = broker(fill="close")
    rejected, fills = b.submit(order("XLK", "sell", 1, ref_price=100.0), T0)
    assert rejected.status == "rejected" and fills == []
    assert "no short selling" in rejected.reject_reason
    b.submit(order("XLK", "buy", 5, ref_price=100.0, n=1), T0)
    too_many, _ = b.submit(order("XLK", "sell", 6, ref_price=100.0, n=2), T0)
    assert too_many.status == "rejected" and "exceeds the 5 held" in too_many.reject_reason
    whole, _ = b.submit(order("XLK", "sell", 5, ref_price=100.0, n=3), T0)
    assert whole.status == "filled" and b.qty == {} and b.cash == pytest.approx(10_000.0)


def test_a_sell_may_not_oversell_shares_a_pending_sell_already_takes():
    b = broker(fill="open")
    b.qty["XLK"] = 5.0
    assert b.submit(order("XLK", "sell", 3, ref_price=100.0), T0)[0].status == "accepted"
    second, _ = b.submit(order("XLK", "sell", 3, ref_price=100.0, n=1), T0)
    assert second.status == "rejected"


def test_an_order_without_a_reference_price_is_rejected():
    rejected, _ = broker().submit(order("XLK", "buy", 1, ref_price=float("nan")), T0)
    assert rejected.status == "rejected" and rejected.reject_reason == "no reference price"


def test_borrow_interest_accrues_only_on_negative_cash():
    b = broker(cash=-10_000.0, borrow_rate=0.05)
    assert b.accrue_borrow(365) == pytest.approx(500.0)
    assert b.cash == pytest.approx(-10_500.0)
    assert b.accrue_borrow(73) == pytest.approx(10_500.0 * 0.05 * 73 / 365)
    assert broker(cash=5_000.0, borrow_rate=0.05).accrue_borrow(365) == 0.0
    assert broker(cash=-5_000.0, borrow_rate=0.0).accrue_borrow(365) == 0.0


LEVERED_STRATEGY = """
benchmark: SPY
strategies:
  Levered:
    universe: [XLK]
    rebalance: monthly
    steps:
      - weigh_fixed: {weights: {XLK: 1.5}}
"""


def _levered_accounts(**sim) -> str:
    settings = ", ".join(f"{k}: {v}" for k, v in sim.items())
    return f"""
accounts:
  levered:
    broker: sim
    starting_cash: 100000
    models: [{{name: Levered, budget: 1.0}}]
    sim: {{{settings}}}
    # These tests are about the simulated broker: the risk guard must not stand in the way.
    risk: {{max_weight: 2.0, max_order_pct_nav: 2.0, max_gross_leverage: 2.0}}
"""


def test_borrow_interest_compounds_daily_in_a_backtest(tmp_path):
    """1.5x in a flat-priced XLK borrows $50,000; NAV falls by exactly the compounded interest."""
    plan = plan_from_yaml(tmp_path, LEVERED_STRATEGY, _levered_accounts(fill="open", borrow_rate=0.1, margin=2.0))
    dates = weekdays(20, start=date(2024, 4, 1))
    bars = make_bars({"SPY": [500.0] * 20, "XLK": [200.0] * 20}, dates=dates)
    curve = run_backtest(plan, bars, start=date(2024, 4, 2), end=dates[-1]).accounts["levered"]
    assert curve.dates == list(dates)
    cash, expected = -50_000.0, [100_000.0]
    for prev, day in zip(dates, dates[1:]):
        cash *= 1 + 0.1 * (day - prev).days / 365
        expected.append(150_000.0 + cash)
    np.testing.assert_allclose(curve.nav, expected, rtol=1e-12)
    assert curve.trades == 1


def test_fill_close_trades_at_the_signal_close_and_fill_open_at_the_next_open(tmp_path):
    dates = weekdays(6, start=date(2024, 4, 1))
    closes = [100.0, 110.0, 120.0, 130.0, 140.0, 150.0]
    opens = [99.0, 105.0, 115.0, 125.0, 135.0, 145.0]
    bars = make_bars({"SPY": closes, "XLK": closes}, opens={"XLK": opens}, dates=dates)
    strategy = LEVERED_STRATEGY.replace("1.5", "1.0")
    at_close = run_backtest(plan_from_yaml(tmp_path / "c", strategy, _levered_accounts(fill="close")), bars,
                            start=dates[1], end=dates[-1]).accounts["levered"]
    # Decided on the 100 close, bought 1000 shares at 100: NAV follows the closes from there.
    np.testing.assert_allclose(at_close.nav, [100_000.0 * c / 100.0 for c in closes], rtol=1e-12)
    at_open = run_backtest(plan_from_yaml(tmp_path / "o", strategy, _levered_accounts(fill="open")), bars,
                           start=dates[1], end=dates[-1]).accounts["levered"]
    # Sized on the 100 close (1000 shares), paid 105 at the next open: cash -5,000.
    np.testing.assert_allclose(at_open.nav, [100_000.0] + [1000 * c - 5000.0 for c in closes[1:]], rtol=1e-12)


def test_no_fill_happens_before_its_order_was_placed(plan, bundled_bars):
    result = run_backtest(plan, bundled_bars, start=date(2020, 1, 1), end=date(2020, 3, 31))
    for book in result.books:
        placed = {o.client_order_id: o.ts_init for o in book.orders}
        for fill in book.fills:
            assert fill.ts_event >= placed[fill.client_order_id], (fill.symbol, fill.ts_event, placed[fill.client_order_id])

