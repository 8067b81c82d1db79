"""Round trips, flat to flat, FIFO: hand-computed cases."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from botctl.engine.roundtrips import TradeFill, round_trips, trade_stats, trip_record

DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(10)]


def at(i: int) -> datetime:
    return datetime(DAYS[i].year, DAYS[i].month, DAYS[i].day, 15, tzinfo=timezone.utc)


def fill(symbol, side, qty, price, day, reason="rebalance", commission=0.0):
    return TradeFill(symbol, side, qty, price, at(day), reason, commission)


def test_buy_then_sell_is_one_round_trip_with_its_numbers():
    closes = {"A": [100.0, 95.0, 120.0, 110.0]}
    (trip,) = round_trips([fill("A", "buy", 10, 100.0, 0), fill("A", "sell", 10, 110.0, 3)], sessions=DAYS,
                          closes=lambda s, a, b: closes[s][a: b + 1])
    assert (trip.symbol, trip.side, trip.qty, trip.entry_price, trip.exit_price) == ("A", "long", 10, 100.0, 110.0)
    assert trip.pnl == pytest.approx(100.0) and trip.ret == pytest.approx(0.10)
    assert trip.sessions_held == 3 and trip.exit_reason == "rebalance"
    assert trip.mae == pytest.approx(-0.05) and trip.mfe == pytest.approx(0.20)


def test_every_closing_fill_is_one_entry_for_the_part_it_closes():
    trips = round_trips([
        fill("A", "buy", 10, 50.0, 0),
        fill("A", "buy", 10, 60.0, 1),
        fill("A", "sell", 15, 55.0, 2, reason="take_profit"),  # FIFO: 10 @ 50 (+50) and 5 @ 60 (-25)
        fill("A", "sell", 5, 40.0, 4, reason="stop_loss"),  # the rest of the 60 lot: -100
    ], sessions=DAYS)
    first, last = trips
    assert (first.qty, first.exit_reason, first.exit_at, first.sessions_held) == (15, "take_profit", at(2), 2)
    assert first.entry_price == pytest.approx(800.0 / 15) and first.exit_price == 55.0
    assert first.pnl == pytest.approx(25.0) and first.ret == pytest.approx(25.0 / 800.0)
    assert (last.qty, last.exit_reason, last.entry_price, last.exit_price) == (5, "stop_loss", 60.0, 40.0)
    assert last.pnl == pytest.approx(-100.0) and last.entry_at == at(0) and last.sessions_held == 4
    assert sum(t.pnl for t in trips) == pytest.approx(-75.0)


def test_fifo_decides_what_is_still_held():
    # 10 @ 50 then 10 @ 70, sell 10 @ 60: FIFO closes the 50 lot (+100); 10 @ 70 stay, marked at 65 (-50).
    closed, held = round_trips([fill("A", "buy", 10, 50.0, 0), fill("A", "buy", 10, 70.0, 1), fill("A", "sell", 10, 60.0, 2)],
                               sessions=DAYS[:6], last_prices={"A": 65.0}, open_reason="halt")
    assert (closed.qty, closed.entry_price, closed.pnl) == (10, 50.0, pytest.approx(100.0))
    assert held.exit_at is None and held.exit_reason == "halt" and held.exit_price == 65.0
    assert (held.qty, held.entry_price) == (10, 70.0)
    assert held.pnl == pytest.approx(-50.0) and held.sessions_held == 5
    assert trip_record(held)["exit_at"] is None and trip_record(held)["return"] == pytest.approx(-50.0 / 700.0)


def test_commissions_of_an_entry_are_shared_by_its_parts():
    first, second = round_trips([fill("A", "buy", 10, 100.0, 0, commission=2.0),
                                 fill("A", "sell", 4, 100.0, 1, commission=1.0),
                                 fill("A", "sell", 6, 100.0, 2, commission=1.0)])
    assert first.pnl == pytest.approx(-0.8 - 1.0) and second.pnl == pytest.approx(-1.2 - 1.0)


def test_a_sale_through_zero_closes_the_long_and_opens_a_short():
    trips = round_trips([fill("A", "buy", 5, 10.0, 0), fill("A", "sell", 8, 12.0, 1), fill("A", "buy", 3, 11.0, 2)])
    assert [(t.side, t.qty, round(t.pnl, 9)) for t in trips] == [("long", 5, 10.0), ("short", 3, 3.0)]


def test_commissions_are_charged_to_the_round_trip_of_their_fill():
    (trip,) = round_trips([fill("A", "buy", 10, 100.0, 0, commission=1.0),
                           fill("A", "sell", 10, 100.0, 1, reason="flatten", commission=2.0)])
    assert trip.pnl == pytest.approx(-3.0) and trip.exit_reason == "flatten"


def test_symbols_are_independent_and_closed_trips_come_before_open_ones():
    trips = round_trips([fill("B", "buy", 1, 10.0, 0), fill("A", "buy", 1, 10.0, 0), fill("A", "sell", 1, 9.0, 1)],
                        last_prices={"B": 12.0})
    assert [(t.symbol, t.exit_at is None) for t in trips] == [("A", False), ("B", True)]


def test_trade_stats_over_closed_round_trips():
    trips = round_trips([
        fill("A", "buy", 1, 100.0, 0), fill("A", "sell", 1, 130.0, 2),  # +30, 2 sessions
        fill("B", "buy", 1, 100.0, 0), fill("B", "sell", 1, 90.0, 1),  # -10, 1 session
        fill("C", "buy", 1, 100.0, 0), fill("C", "sell", 1, 110.0, 4),  # +10, 4 sessions
        fill("D", "buy", 1, 100.0, 3),  # open at the end
    ], sessions=DAYS[:6], last_prices={"D": 50.0})
    stats = trade_stats(trips)
    assert stats["round_trips"] == 3 and stats["open"] == 1
    assert stats["win_rate"] == pytest.approx(2 / 3)
    assert (stats["avg_win"], stats["avg_loss"]) == (pytest.approx(20.0), pytest.approx(-10.0))
    assert stats["profit_factor"] == pytest.approx(4.0) and stats["expectancy"] == pytest.approx(10.0)
    assert stats["avg_sessions_held"] == pytest.approx(7 / 3)
    assert stats["exits_by_reason"] == {"end": 1, "rebalance": 3}


def test_no_fills_no_statistics():
    stats = trade_stats(round_trips([]))
    assert stats["round_trips"] == 0 and stats["win_rate"] is None and stats["profit_factor"] is None
    assert stats["exits_by_reason"] == {}


def test_a_shorts_excursions_are_signed_for_its_side():
    closes = {"A": [100.0, 90.0, 120.0]}
    (trip,) = round_trips([fill("A", "sell", 10, 100.0, 0), fill("A", "buy", 10, 110.0, 2)], sessions=DAYS,
                          closes=lambda s, a, b: closes[s][a: b + 1])
    assert trip.side == "short" and trip.pnl == pytest.approx(-100.0)
    assert trip.mae == pytest.approx(-0.20) and trip.mfe == pytest.approx(0.10)
