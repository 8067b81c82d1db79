"""The dashboard's numbers: FIFO trade statistics, period returns, rebasing, and the journal
reader's incremental catch-up on long histories."""

from __future__ import annotations

import math
from datetime import date

import pytest

from botctl.tui.figures import TradeBook, performance, rebased


def feed(book: TradeBook, fills):
    for i, (symbol, side, qty, price, day) in enumerate(fills, book.last_id + 1):
        book.add(i, symbol, side, qty, price, day)
    return book.stats


def test_a_round_trip_is_one_trade_with_its_pnl_and_hold_time():
    stats = feed(TradeBook(), [("XLK", "buy", 10, 100.0, 0.0), ("XLK", "sell", 10, 110.0, 30.0)])
    assert (stats.trades, stats.wins, stats.win_rate) == (1, 1, 1.0)
    assert stats.avg_hold_days == 30.0
    assert stats.best == pytest.approx((100.0, "XLK", 0.1)) and stats.worst == stats.best


def test_a_partial_sell_closes_part_of_the_position_and_counts_as_its_own_round_trip():
    # the same definition as backtest --json: one round trip per closed part
    stats = feed(TradeBook(), [
        ("XLE", "buy", 10, 50.0, 0.0),
        ("XLE", "buy", 10, 60.0, 10.0),
        ("XLE", "sell", 15, 55.0, 20.0),  # FIFO: 10 @ 50 (+50) and 5 @ 60 (-25): one part, +25
        ("XLE", "sell", 5, 40.0, 40.0),  # the rest of the 60 lot: -100
    ])
    assert stats.trades == 2 and stats.wins == 1
    assert stats.best[0] == pytest.approx(25.0) and stats.best[2] == pytest.approx(25.0 / 800.0)
    assert stats.worst[0] == pytest.approx(-100.0)
    assert stats.avg_hold_days == 30.0  # each part from the first buy: 20 and 40 days


def test_a_sell_without_a_lot_opens_a_short_that_a_buy_closes():
    stats = feed(TradeBook(), [("TLT", "sell", 5, 100.0, 0.0), ("TLT", "buy", 5, 90.0, 2.0)])
    assert stats.trades == 1 and stats.best[0] == pytest.approx(50.0)


def test_no_fills_no_statistics():
    stats = TradeBook().stats
    assert stats.trades == 0 and stats.win_rate is None and stats.avg_hold_days is None and stats.best is None


def test_period_returns_against_the_benchmark():
    days = [date(2020, 12, 30), date(2020, 12, 31), date(2021, 1, 4), date(2021, 2, 1), date(2021, 2, 2)]
    nav = [100.0, 110.0, 121.0, 110.0, 115.5]
    bench = [10.0, 10.0, 11.0, math.nan, 12.0]
    perf = performance(days, nav, bench)
    got = {p.label: (p.portfolio, p.benchmark) for p in perf.periods}
    assert got["Day"][0] == pytest.approx(0.05)
    assert got["MTD"][0] == pytest.approx(115.5 / 121.0 - 1)  # from the last mark of January
    assert got["YTD"][0] == pytest.approx(0.05)  # from the last mark of 2020
    assert got["Total"] == pytest.approx((0.155, 0.2))
    assert got["Day"][1] is None  # the benchmark's missing bar is not a zero return
    assert perf.drawdown == pytest.approx(115.5 / 121.0 - 1) and perf.max_drawdown == pytest.approx(110 / 121 - 1)
    excess = next(p for p in perf.periods if p.label == "Total").excess
    assert excess == pytest.approx(-0.045)


def test_performance_of_nothing_and_of_one_mark():
    assert performance([], [], []).periods == []
    one = performance([date(2021, 1, 4)], [100.0], [10.0])
    assert {p.label: p.portfolio for p in one.periods}["Day"] is None
    assert one.alpha is None


def test_rebased_starts_at_100_and_keeps_gaps():
    assert rebased([math.nan, 50.0, 75.0])[1:] == [100.0, 150.0]
    assert math.isnan(rebased([math.nan, 50.0])[0])
    assert all(math.isnan(v) for v in rebased([math.nan]))


def test_a_long_fill_history_is_read_in_chunks_and_only_once(db):
    from botctl.tui import data
    from botctl.tui.data import Source

    source = Source(db, data.Path("."))
    original = data.FILLS_PER_REFRESH
    data.FILLS_PER_REFRESH = 3  # the replayed journal has a few dozen fills
    try:
        snap = source.snapshot("rotation-sim", market=False)
        assert snap.trades_partial
        while True:
            stats, more = source.more_trades("rotation-sim", limit=3)
            if not more:
                break
    finally:
        data.FILLS_PER_REFRESH = original
    whole = Source(db, data.Path(".")).snapshot("rotation-sim", market=False)
    assert not whole.trades_partial
    assert (stats.trades, stats.wins, stats.best, stats.worst) == (
        whole.trades.trades, whole.trades.wins, whole.trades.best, whole.trades.worst)
    again = source.snapshot("rotation-sim", market=False)  # nothing new: nothing re-read
    assert again.trades.trades == stats.trades and not again.trades_partial


def test_total_return_and_drawdown_are_measured_from_the_money_put_in():
    days = [date(2021, 1, 4), date(2021, 1, 5), date(2021, 1, 6)]
    nav = [99_000.0, 98_000.0, 99_500.0]  # never back to the $100,000 put in
    perf = performance(days, nav, [1.0, 1.0, 1.0], invested=100_000.0)
    total = next(p for p in perf.periods if p.label == "Total")
    assert total.portfolio == pytest.approx(-0.005)
    assert perf.max_drawdown == pytest.approx(-0.02) and perf.drawdown == pytest.approx(-0.005)
    # Without it, the first mark is the base (a journal writes the money put in as its first mark).
    assert next(p for p in performance(days, nav, [1.0] * 3).periods if p.label == "Total").portfolio == \
        pytest.approx(99_500 / 99_000 - 1)
