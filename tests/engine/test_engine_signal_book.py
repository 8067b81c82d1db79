"""Signal books on small hand-computed bar series: every exit, every gate, the precedence of
exits on one bar, fills at the next open, scale-out rounding, and state that survives a restart.

Scores come from an external `score_signal` matrix (so each test sets them exactly) unless a
test is about the built-in bar signals."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from book_support import Driver, model
from engine_factories import make_bars

from botctl.engine.positions import FULL_EXITS, decode_state, encode_state, BookState
from botctl.spec import steps as st
from botctl.strategy.signals import Signals

NAN = math.nan
SIGNAL = st.ScoreSignal(kind="k")
ONE_SLOT = st.SelectTopScores(min_score=0.5, max_positions=1)


def scores(*columns: list[float]) -> dict[str, np.ndarray]:
    return {"k": np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])}


def drive(closes: list[float], *steps: st.Step, score: list[float] | None = None, opens: list[float] | None = None,
          fractional: bool = True) -> Driver:
    bars = make_bars({"AAA": closes}, {"AAA": opens} if opens else None)
    score = score if score is not None else [1.0] * len(closes)
    return Driver(model(SIGNAL, ONE_SLOT, *steps), bars, external=scores(score), fractional=fractional).run()


def exits(d: Driver) -> list[tuple[int, str]]:
    return [(row, reason) for row, _, reason in d.reasons() if reason != "entry"]


# Exits -----------------------------------------------------------------------------------------

def test_a_stop_loss_fires_on_the_close_and_fills_at_the_next_open_even_through_a_gap():
    # entry decided on row 0, filled at row 1's open (100): stop at 95
    d = drive([100, 100, 96, 90, 85, 85], st.ExitStopLoss(pct=0.05),
              opens=[100, 100, 97, 92, 80, 85])
    assert exits(d) == [(3, "stop_loss")]  # 96 > 95 on row 2; 90 <= 95 on row 3
    sell = [f for f in d.fills if f[2] == "sell"]
    assert sell == [(4, "AAA", "sell", 100.0, 80.0)]  # the gap: filled at the open, not at 95
    note = next(n for n in d.notes[3] if n.type == "book.exit")
    assert note.numbers["level"] == pytest.approx(95.0) and note.numbers["close"] == 90.0


def test_a_trailing_stop_trails_the_highest_close_since_entry():
    d = drive([100, 100, 110, 120, 115, 113, 113], st.ExitTrailingStop(pct=0.05))
    assert exits(d) == [(5, "trailing_stop")]  # 120 x 0.95 = 114: 115 holds, 113 fires
    assert next(n for n in d.notes[5] if n.type == "book.exit").numbers["high_close"] == 120.0


def test_a_time_exit_after_n_sessions_held():
    d = drive([100, 101, 103, 106, 110, 110], st.ExitTime(sessions=3))
    assert exits(d)[0] == (3, "time")  # filled at row 1's open: rows 1, 2, 3 closed since


def test_a_stale_exit_only_while_the_gain_is_within_the_band():
    flat = drive([100, 100, 100.5, 99.6, 100.4, 100], st.ExitTime(sessions=3, band=0.01))
    assert exits(flat)[0] == (3, "stale")
    trending = drive([100, 101, 103, 106, 110, 110], st.ExitTime(sessions=3, band=0.01))
    assert exits(trending) == []


def test_a_take_profit_ladder_sells_a_share_of_the_entry_per_rung_in_whole_shares():
    ladder = st.ExitTakeProfit(ladder=[st.Rung(at=0.02, sell=0.34), st.Rung(at=0.05, sell=0.33), st.Rung(at=0.10, sell=0.33)])
    d = drive([100, 100, 102.5, 106, 111, 111], ladder, fractional=False)
    sells = [(row, qty) for row, _, side, qty, _ in d.fills if side == "sell"]
    assert sells == [(3, 34.0), (4, 33.0), (5, 33.0)]  # 100 shares: 34, then 67 - 34, then the rest
    # the last rung closed it: an exit like any other, so a new entry waits for the next session
    assert d.reasons()[-2:] == [(4, "AAA", "take_profit"), (5, "AAA", "entry")]


def test_a_jump_over_two_rungs_sells_both_at_once_and_rounds_down():
    ladder = st.ExitTakeProfit(ladder=[st.Rung(at=0.02, sell=0.25), st.Rung(at=0.05, sell=0.25)])
    d = drive([100, 100, 106, 106], ladder, fractional=False, opens=[100, 99, 106, 106])
    # entered floor(10000 / 100) = 100 shares at row 1's open (99): gain 7.1% passes both rungs
    sells = [(row, qty) for row, _, side, qty, _ in d.fills if side == "sell"]
    assert sells == [(3, 50.0)]
    assert d.book is not None and d.book.positions["AAA"].stage == 2 and d.book.positions["AAA"].qty == 50.0


def test_a_rung_that_rounds_to_no_share_sells_nothing_and_says_so():
    ladder = st.ExitTakeProfit(ladder=[st.Rung(at=0.02, sell=0.1)])
    d = Driver(model(SIGNAL, ONE_SLOT, st.WeighFraction(fraction=0.5), ladder),
               make_bars({"AAA": [1000, 1000, 1030, 1030]}), external=scores([1.0] * 4), fractional=False).run()
    assert exits(d) == []  # 5 shares x 10% = 0.5, rounded down to 0
    assert any(n.type == "book.take_profit" and "rounds to 0" in n.message for n in d.notes[2])
    assert d.book is not None and d.book.positions["AAA"].stage == 1  # the rung is spent


def test_fractional_scale_outs_sell_the_exact_share():
    ladder = st.ExitTakeProfit(ladder=[st.Rung(at=0.02, sell=0.3)])
    d = drive([100, 100, 103, 103], ladder)
    assert [(row, qty) for row, _, side, qty, _ in d.fills if side == "sell"] == [(3, pytest.approx(30.0))]


def test_score_below_a_level():
    d = drive([100] * 6, st.ExitScoreBelow(level=0.4), score=[1, 1, 0.6, 0.3, 0.3, 0.3])
    assert exits(d) == [(3, "score_below")]


def test_the_signal_reversing_sign():
    d = drive([100] * 6, st.ExitSignalReverses(), score=[1, 1, 0.1, -0.05, 1, 1])
    assert exits(d)[0] == (3, "signal_reversed")


def regime_bars(spy: list[float]):
    n = len(spy)
    return make_bars({"AAA": [100.0] * n, "SPY": spy})


def test_a_closed_regime_gate_exits_every_position_and_blocks_entries():
    gate = st.WhenRegime(benchmark="SPY", sma_days=2, is_="above")
    # SPY above its 2-day average on rows 1-3 (rising), below from row 4 (falling)
    spy = [100, 101, 102, 103, 99, 98, 97]
    d = Driver(model(SIGNAL, ONE_SLOT, gate, st.ExitRegime()), regime_bars(spy), external=scores([1.0] * 7, [0] * 7)).run()
    assert d.reasons()[0] == (1, "AAA", "entry")  # row 0 has no average yet: gate closed
    assert exits(d) == [(4, "regime")]
    assert [r for r in d.reasons() if r[2] == "entry"] == [(1, "AAA", "entry")]  # none while closed


# Gates, slots and sizing ----------------------------------------------------------------------

def test_a_cooldown_after_a_stop_blocks_re_entry_for_n_sessions():
    cool = st.WhenCooldown(sessions=2, after="stop")
    d = drive([100, 100, 90, 100, 100, 100, 100, 100], st.ExitStopLoss(pct=0.05), cool)
    assert d.reasons()[:2] == [(0, "AAA", "entry"), (2, "AAA", "stop_loss")]
    assert d.reasons()[2] == (5, "AAA", "entry")  # rows 3 and 4 cool down, row 5 may enter


def test_a_stop_only_cooldown_does_not_apply_after_a_time_exit():
    cool = st.WhenCooldown(sessions=3, after="stop")
    d = drive([100] * 6, st.ExitTime(sessions=2), cool)
    assert d.reasons()[:3] == [(0, "AAA", "entry"), (2, "AAA", "time"), (3, "AAA", "entry")]


def test_without_a_cooldown_an_exited_symbol_waits_one_session():
    d = drive([100, 100, 90, 100, 100], st.ExitStopLoss(pct=0.05))
    assert d.reasons()[:3] == [(0, "AAA", "entry"), (2, "AAA", "stop_loss"), (3, "AAA", "entry")]


def test_ties_are_broken_by_symbol_name_and_slots_are_capped():
    bars = make_bars({"CCC": [10.0] * 3, "AAA": [10.0] * 3, "BBB": [10.0] * 3})
    two = st.SelectTopScores(min_score=0.5, max_positions=2)
    d = Driver(model(SIGNAL, two, universe=("CCC", "AAA", "BBB")), bars,
               external=scores([1.0] * 3, [1.0] * 3, [1.0] * 3)).run(0, 0)
    assert [o.symbol for o in d.orders[0]] == ["AAA", "BBB"]
    assert [o.qty for o in d.orders[0]] == [500.0, 500.0]  # equal slots: 1/2 of 10,000 at 10


def test_scores_under_the_minimum_never_enter():
    d = drive([100] * 4, score=[0.49, 0.2, NAN, 0.1])
    assert d.reasons() == []


def test_sizing_by_fraction_and_by_score():
    bars = make_bars({"AAA": [10.0] * 2})
    by_fraction = Driver(model(SIGNAL, ONE_SLOT, st.WeighFraction(fraction=0.25)), bars, external=scores([1.0] * 2)).run(0, 0)
    assert by_fraction.orders[0][0].qty == pytest.approx(250.0)
    by_score = Driver(model(SIGNAL, ONE_SLOT, st.WeighByScore(per_point=0.1, max=0.5)), bars, external=scores([2.0] * 2)).run(0, 0)
    assert by_score.orders[0][0].qty == pytest.approx(200.0)  # 0.1 x 2 of 10,000 at 10
    capped = Driver(model(SIGNAL, ONE_SLOT, st.WeighByScore(per_point=0.1, max=0.5)), bars, external=scores([9.0] * 2)).run(0, 0)
    assert capped.orders[0][0].qty == pytest.approx(500.0)


def test_whole_shares_round_down():
    bars = make_bars({"AAA": [30.0] * 2})
    d = Driver(model(SIGNAL, ONE_SLOT), bars, external=scores([1.0] * 2), fractional=False).run(0, 0)
    assert d.orders[0][0].qty == 333.0


# Displacement --------------------------------------------------------------------------------

def displacing(rule: st.DisplaceWeakest, aaa: list[float], bbb_score: list[float]) -> Driver:
    n = len(aaa)
    bars = make_bars({"AAA": aaa, "BBB": [50.0] * n})
    return Driver(model(SIGNAL, ONE_SLOT, rule, universe=("AAA", "BBB")), bars,
                  external=scores([1.0] * n, bbb_score)).run()


def test_the_weakest_holding_is_displaced_by_a_candidate_scoring_more_than_the_margin_above():
    rule = st.DisplaceWeakest(margin=2.0, min_sessions=3, pnl_band=0.01, cooldown_sessions=5)
    d = displacing(rule, [100.0] * 6, [0, 0, 3.5, 3.5, 3.5, 3.5])
    # filled at row 1's open: on row 2 AAA has been held 2 sessions (< 3); on row 3, 3, flat,
    # and 3.5 - 1.0 > 2.0
    assert d.reasons() == [(0, "AAA", "entry"), (3, "AAA", "displaced"), (3, "BBB", "entry")]
    note = next(n for n in d.notes[3] if n.type == "book.displace")
    assert note.numbers["advantage"] == pytest.approx(2.5)


def test_no_displacement_within_the_margin_or_outside_the_pnl_band():
    rule = st.DisplaceWeakest(margin=2.0, min_sessions=1, pnl_band=0.01, cooldown_sessions=0)
    assert displacing(rule, [100.0] * 5, [0, 3.0, 3.0, 3.0, 3.0]).reasons() == [(0, "AAA", "entry")]
    winning = displacing(rule, [100, 100, 103, 103, 103], [0, 0, 9, 9, 9])
    assert winning.reasons() == [(0, "AAA", "entry")]  # +3% is outside +/-1%


def test_a_displacement_cooldown_holds_the_next_one_off():
    rule = st.DisplaceWeakest(margin=0.5, min_sessions=1, pnl_band=0.05, cooldown_sessions=2)
    n = 8
    bars = make_bars({"AAA": [100.0] * n, "BBB": [50.0] * n, "CCC": [20.0] * n})
    d = Driver(model(SIGNAL, ONE_SLOT, rule, universe=("AAA", "BBB", "CCC")), bars,
               external=scores([1.0] * n, [0, 2, 2, 2, 2, 2, 2, 2], [0, 0, 0, 4, 4, 4, 4, 4])).run()
    displaced = [r for r in d.reasons() if r[2] == "displaced"]
    assert displaced == [(1, "AAA", "displaced"), (4, "BBB", "displaced")]  # rows 2-3 cool down


# Precedence of exits on one bar: the pessimistic first -------------------------------------

ALL_EXITS = {
    "stop_loss": st.ExitStopLoss(pct=0.05),
    "trailing_stop": st.ExitTrailingStop(pct=0.05),
    "signal_reversed": st.ExitSignalReverses(),
    "score_below": st.ExitScoreBelow(level=0.5),
    "time": st.ExitTime(sessions=2),
}


@pytest.mark.parametrize("first,second", [("stop_loss", "trailing_stop"), ("trailing_stop", "signal_reversed"),
                                          ("signal_reversed", "score_below"), ("score_below", "time"),
                                          ("stop_loss", "time")])
def test_when_two_exits_fire_on_one_bar_the_pessimistic_one_names_it(first, second):
    # row 2: close 90 (stop and trailing fire), score -1 (reversal and below fire), held 2 (time)
    d = drive([100, 100, 90, 90], ALL_EXITS[second], ALL_EXITS[first], score=[1, 1, -1, -1])
    assert exits(d) == [(2, first)]
    note = next(n for n in d.notes[2] if n.type == "book.exit")
    assert f"also fired: {second}" in note.message
    assert FULL_EXITS.index(first) < FULL_EXITS.index(second)


def test_the_regime_exit_comes_after_the_stops_and_before_the_signal():
    gate = st.WhenRegime(benchmark="SPY", sma_days=2, is_="above")
    bars = make_bars({"AAA": [100, 100, 100, 90, 90], "SPY": [100, 101, 102, 90, 90]})
    steps = (SIGNAL, ONE_SLOT, gate, st.ExitRegime(), st.ExitScoreBelow(level=0.5))
    d = Driver(model(*steps), bars, external=scores([1, 1, 1, 0, 0], [0] * 5)).run()
    assert exits(d) == [(3, "regime")]
    d = Driver(model(*steps, st.ExitStopLoss(pct=0.05)), bars, external=scores([1, 1, 1, 0, 0], [0] * 5)).run()
    assert exits(d) == [(3, "stop_loss")]


def test_a_full_exit_beats_a_take_profit_rung_on_the_same_bar():
    ladder = st.ExitTakeProfit(ladder=[st.Rung(at=0.02, sell=0.5)])
    d = drive([100, 100, 105, 105], ladder, st.ExitTime(sessions=2))
    assert exits(d) == [(2, "time")]  # not take_profit, and the whole position is sold
    assert [f[3] for f in d.fills if f[2] == "sell"] == [100.0]


# Missing prices and unfilled entries --------------------------------------------------------

def test_a_symbol_without_a_price_is_not_sold_blind_the_exit_waits():
    d = drive([100, 100, NAN, 90, 90], st.ExitStopLoss(pct=0.05), opens=[100, 100, NAN, 90, 90])
    waiting = [n for n in d.notes[2] if n.type == "book.exit_waiting"]
    assert waiting and waiting[0].severity == "WARN"
    assert exits(d) == [(3, "stop_loss")]


def test_an_exit_waiting_for_a_price_remembers_since_when_until_a_price_comes_back():
    closes = [100, 100, NAN, NAN, 90, 90]
    bars = make_bars({"AAA": closes}, {"AAA": closes})
    d = Driver(model(SIGNAL, ONE_SLOT, st.ExitStopLoss(pct=0.05)), bars, external=scores([1.0] * 6))
    since = []
    for row in range(5):
        d.step(row)
        held = d.book.positions.get("AAA") if d.book else None
        since.append(held.waiting_since if held else "sold")
    assert since == [None, None, bars.dates[2], bars.dates[2], "sold"]  # the first session without a close
    assert all(f"(since {bars.dates[2]})" in n.message for n in d.notes[3] if n.type == "book.exit_waiting")


def test_a_sale_waiting_for_a_price_remembers_since_when_and_is_sent_once_there_is_one():
    closes = [100, 100, 90, NAN, NAN, 90, 90]
    bars = make_bars({"AAA": closes}, {"AAA": closes})
    d = Driver(model(SIGNAL, ONE_SLOT, st.ExitStopLoss(pct=0.05)), bars, external=scores([1.0] * 7))
    waiting = []
    for row in range(6):
        d.step(row)
        sale = d.book.selling.get("AAA") if d.book else None
        waiting.append(sale.waiting_since if sale else None)
    # decided on row 2, its open (row 3) has no bar: it waits from row 3, and is sent again on row 5
    assert waiting == [None, None, None, bars.dates[3], bars.dates[3], None]
    assert exits(d) == [(2, "stop_loss"), (5, "stop_loss")]
    assert [n.type for n in d.notes[5] if n.symbol == "AAA"] == ["book.exit_retried"]


def test_an_entry_that_did_not_fill_frees_its_slot():
    d = drive([100, 100, 100, 100], opens=[100, NAN, 100, 100])
    assert any(n.type == "book.entry_unfilled" and n.severity == "WARN" for n in d.notes[1])
    # not an exit: no cooldown, the same session may enter again
    assert [r for r in d.reasons() if r[2] == "entry"] == [(0, "AAA", "entry"), (1, "AAA", "entry")]


# State ---------------------------------------------------------------------------------------

def test_the_state_survives_a_json_round_trip_and_the_run_continues_identically():
    steps = (st.ExitTrailingStop(pct=0.03), st.ExitTakeProfit(ladder=[st.Rung(at=0.02, sell=0.5)]),
             st.WhenCooldown(sessions=1))
    closes = [100, 100, 103, 104, 100, 100, 101, 99, 104, 100]
    whole = drive(closes, *steps)
    bars = make_bars({"AAA": closes})
    first = Driver(model(SIGNAL, ONE_SLOT, *steps), bars, external=scores([1.0] * len(closes))).run(0, 4)
    second = Driver(model(SIGNAL, ONE_SLOT, *steps), bars, external=scores([1.0] * len(closes)))
    second.qty, second.cash = dict(first.qty), first.cash
    restored = decode_state(encode_state(BookState(models={"Book": first.book})))  # type: ignore[dict-item]
    second.book = restored.models["Book"]
    second.run(5)
    assert {**first.orders, **second.orders} == whole.orders
    assert second.book == whole.book
    assert msgspec.json.decode(encode_state(restored)) == msgspec.json.decode(encode_state(BookState(models={"Book": first.book})))  # type: ignore[dict-item]


# Built-in bar signals ------------------------------------------------------------------------

def test_bar_signals_by_hand():
    closes = [10, 11, 12, 11, 13, 12]
    bars = make_bars({"AAA": closes})
    breakout = Signals(bars, (st.ScoreBreakout(lookback_days=3),)).score((st.ScoreBreakout(lookback_days=3),))
    assert np.isnan(breakout[:3, 0]).all()
    assert breakout[3, 0] == pytest.approx(11 / 12 - 1) and breakout[4, 0] == pytest.approx(13 / 12 - 1)
    momentum = Signals(bars, ()).score((st.ScoreMomentum(lookback_days=2, weight=2.0),))
    assert momentum[5, 0] == pytest.approx(2 * (12 / 11 - 1))
    sma = Signals(bars, ()).score((st.ScoreSmaDistance(sma_days=3),))
    assert sma[5, 0] == pytest.approx(12 / 12 - 1) and sma[4, 0] == pytest.approx(13 / 12 - 1)
    rsi = Signals(bars, ()).score((st.ScoreRsi(days=3),))
    # changes over rows 3..5: -1, +2, -1: gains 2/3, losses 2/3 a session: RSI 50 -> 0
    assert rsi[5, 0] == pytest.approx(0.0) and rsi[3, 0] == pytest.approx((2 - 1) / (2 + 1))
    both = Signals(bars, ()).score((st.ScoreMomentum(lookback_days=2), st.ScoreSmaDistance(sma_days=3)))
    assert both[5, 0] == pytest.approx((12 / 11 - 1) + 0.0)


def test_an_optional_external_signal_counts_as_zero_when_missing_a_required_one_as_no_score():
    bars = make_bars({"AAA": [10.0] * 3})
    ext = {"flow": np.array([[1.0], [NAN], [2.0]])}
    optional = Signals(bars, (), ext).score((st.ScoreSignal(kind="flow", optional=True, weight=0.5),))
    assert optional[:, 0].tolist() == [0.5, 0.0, 1.0]
    required = Signals(bars, (), ext).score((st.ScoreSignal(kind="flow"),))
    assert np.isnan(required[1, 0]) and required[2, 0] == 2.0
    unsupplied = Signals(bars, ()).score((st.ScoreSignal(kind="flow"),))
    assert np.isnan(unsupplied).all()


def test_an_exit_that_did_not_happen_is_sent_again_not_forgotten():
    bars = make_bars({"AAA": [100, 100, 90, 90, 90, 90]})
    d = Driver(model(SIGNAL, ONE_SLOT, st.ExitStopLoss(pct=0.05)), bars, external=scores([1.0] * 6))
    d.run(0, 2)
    assert d.orders[2][0].reason == "stop_loss"
    # the broker never filled it (blocked, canceled): undo the fill the driver applied
    d.qty["AAA"] += d.orders[2][0].qty
    d.cash -= d.orders[2][0].qty * 90
    d.fills.pop()
    d.run(3, 3)
    assert [(o.side, o.reason, o.qty) for o in d.orders[3]] == [("sell", "stop_loss", 100.0)]
    assert any(n.type == "book.exit_retried" and n.severity == "WARN" for n in d.notes[3])
    d.run(4, 4)  # this time it filled: nothing more to sell, and no re-entry during the exit
    assert [o for o in d.orders[4] if o.side == "sell"] == []
    assert d.book is not None and d.book.selling == {}


def test_a_pending_sale_counts_as_the_books_shares():
    from botctl.engine.positions import ModelBook, PendingSale

    state = BookState(models={"Book": ModelBook(selling={"AAA": PendingSale(qty=5.0, rule="stop_loss", held_before=5.0,
                                                                              decided_on=make_bars({"A": [1.0]}).dates[0])})})
    assert state.held() == {"AAA": 5.0}
