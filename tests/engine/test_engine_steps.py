"""Every step of the vocabulary on small hand-made bars whose answer is obvious.

Bars (30 sessions, lookback 10, decisions read at the last row unless said otherwise):
  A +0.2%/day, B -0.3%/day, C +1%/day, D +0.5%/day, E +3%/day but only listed at row 20,
so 10-day momentum ranks C > D > A > B, and E has no 10-day history yet at row 29.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from engine_factories import growth, make_bars, run_steps

from botctl.spec import steps as st
from botctl.strategy.evaluate import Decision, account_targets

N = 30
LAST = N - 1
NAN = float("nan")


def _listed_from(row: int, rate: float) -> np.ndarray:
    values = growth(rate, N)
    values[:row] = NAN
    return values


@pytest.fixture(scope="module")
def bars():
    return make_bars({
        "A": growth(0.002, N),
        "B": growth(-0.003, N),
        "C": growth(0.01, N),
        "D": growth(0.005, N),
        "E": _listed_from(20, 0.03),
        "TLT": growth(0.0, N),
    })


UNIVERSE = ("A", "B", "C", "D", "E")


def decide_at(bars, steps, row=LAST, universe=UNIVERSE) -> Decision:
    return run_steps(bars, tuple(steps), row, universe)


def assert_weights(decision: Decision, expected: dict[str, float]) -> None:
    assert set(decision.weights) == set(expected), decision
    for symbol, weight in expected.items():
        assert decision.weights[symbol] == pytest.approx(weight, rel=1e-12, abs=1e-15), (symbol, decision)


# --- select_momentum ---------------------------------------------------------------------------

def test_momentum_keeps_the_top_n_by_return(bars):
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=2)])
    assert d.state == "active"
    assert_weights(d, {"C": 0.5, "D": 0.5})


def test_momentum_ranking_order_decides_who_fills_the_slots(bars):
    ranked = [decide_at(bars, [st.SelectMomentum(lookback_days=10, top=3, min_return=None), st.WeighEqually(slots=1)]),
              decide_at(bars, [st.SelectMomentum(lookback_days=10, top=1, min_return=None)])]
    for d in ranked:
        assert_weights(d, {"C": 1.0})
    # top 4 without a floor reaches the loser B; E has no 10-session history and never qualifies.
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=4, min_return=None)])
    assert_weights(d, {s: 0.25 for s in "ABCD"})


def test_momentum_ties_go_to_the_earlier_column_whatever_the_universe_order():
    tied = make_bars({"Q": growth(0.01, N), "P": growth(0.01, N), "R": growth(0.0, N), "S": growth(0.02, N)})
    steps = [st.SelectMomentum(lookback_days=10, top=3, min_return=0.0)]
    # S leads; Q and P tie, Q's column comes first; R's 0% is not above the floor.
    assert_weights(run_steps(tied, (*steps, st.WeighEqually(slots=2)), LAST, ("R", "P", "Q", "S")),
                   {"S": 0.5, "Q": 0.5})
    assert_weights(run_steps(tied, (*steps, st.WeighEqually(slots=3)), LAST, ("P", "R", "S", "Q")),
                   {"S": 1 / 3, "Q": 1 / 3, "P": 1 / 3})


def test_momentum_is_total_return_over_the_lookback(bars):
    from botctl.strategy.signals import Signals

    signals = Signals(bars, (st.SelectMomentum(lookback_days=10),))
    momentum = signals.momentum(10, LAST)
    for i, rate in enumerate([0.002, -0.003, 0.01, 0.005]):
        assert momentum[i] == pytest.approx((1 + rate) ** 10 - 1, rel=1e-9)
    assert math.isnan(momentum[bars.column("E")])  # listed 10 sessions ago: no close 10 sessions back


def test_min_return_filters_out_weak_symbols(bars):
    # A +2.0%, D +5.1%, C +10.5% over 10 days; B is negative.
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=5, min_return=0.0)])
    assert_weights(d, {"A": 1 / 3, "C": 1 / 3, "D": 1 / 3})
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=5, min_return=0.03)])
    assert_weights(d, {"C": 0.5, "D": 0.5})
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=5, min_return=0.2)])
    assert d.state == "empty" and d.weights == {}


def test_momentum_without_enough_history_selects_nothing(bars):
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=3)], row=9)
    assert d.state == "empty" and d.weights == {}
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=3)], row=10)
    assert d.state == "active"


def test_momentum_only_ranks_the_universe(bars):
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=2)], universe=("A", "B"))
    assert_weights(d, {"A": 1.0})  # B is negative; C and D are not in the universe


# --- select_threshold / select_all -------------------------------------------------------------

def test_threshold_keeps_everything_above_the_floor(bars):
    d = decide_at(bars, [st.SelectThreshold(lookback_days=10, min_return=0.0)])
    assert_weights(d, {"A": 1 / 3, "C": 1 / 3, "D": 1 / 3})
    d = decide_at(bars, [st.SelectThreshold(lookback_days=10, min_return=0.03)])
    assert_weights(d, {"C": 0.5, "D": 0.5})
    d = decide_at(bars, [st.SelectThreshold(lookback_days=10, min_return=-1.0)])
    assert_weights(d, {s: 0.25 for s in "ABCD"})


def test_select_all_keeps_every_universe_symbol_with_a_bar(bars):
    assert_weights(decide_at(bars, [st.SelectAll()]), {s: 0.2 for s in "ABCDE"})
    assert_weights(decide_at(bars, [st.SelectAll()], row=10), {s: 0.25 for s in "ABCD"})  # E not listed yet


# --- fallback ----------------------------------------------------------------------------------

def _regime_bars(spy: np.ndarray):
    n = len(spy)
    return make_bars({"SPY": spy, "A": growth(0.01, n), "B": growth(0.005, n), "TLT": growth(0.0, n, 90.0)})


RISING = growth(0.01, N)
FALLING = growth(-0.01, N)


def test_fallback_to_a_symbol_when_gated():
    bars = _regime_bars(FALLING)
    steps = [st.WhenRegime(benchmark="SPY", sma_days=5, is_="above"), st.SelectAll(), st.Fallback(to="TLT")]
    d = decide_at(bars, steps, universe=("A", "B"))
    assert d.state == "gated" and d.weights == {"TLT": 1.0}
    assert "below" in d.reason


def test_fallback_to_cash_when_gated():
    bars = _regime_bars(FALLING)
    for tail in ([st.Fallback(to="cash")], []):
        d = decide_at(bars, [st.WhenRegime(sma_days=5, is_="above"), st.SelectAll(), *tail], universe=("A", "B"))
        assert d.state == "gated" and d.weights == {}


def test_fallback_when_nothing_is_selected(bars):
    select_none = st.SelectMomentum(lookback_days=10, top=3, min_return=0.5)
    d = decide_at(bars, [select_none, st.WeighEqually(slots=3), st.Fallback(to="TLT", weight=0.5)])
    assert d.state == "empty" and d.weights == {"TLT": 0.5}
    d = decide_at(bars, [select_none, st.WeighEqually(slots=3), st.Fallback(to="cash")])
    assert d.state == "empty" and d.weights == {}
    assert "nothing passed" in d.reason


def test_fallback_is_ignored_while_active(bars):
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=1), st.Fallback(to="TLT")])
    assert d.state == "active" and d.weights == {"C": 1.0}


def test_fallback_symbol_without_a_bar_holds_cash(bars):
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=1, min_return=0.5), st.Fallback(to="E")], row=15)
    assert d.state == "empty" and d.weights == {}
    assert "E has no price" in d.reason


# --- weigh_equally -----------------------------------------------------------------------------

def test_equal_weights_without_slots(bars):
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=3), st.WeighEqually()])
    assert_weights(d, {"A": 1 / 3, "C": 1 / 3, "D": 1 / 3})


def test_equal_weights_with_slots_leave_empty_slots_in_cash(bars):
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=2), st.WeighEqually(slots=5)])
    assert_weights(d, {"C": 0.2, "D": 0.2})
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=5), st.WeighEqually(slots=3)])
    assert_weights(d, {"A": 1 / 3, "C": 1 / 3, "D": 1 / 3})  # exactly full: 3 positive symbols


def test_more_picks_than_slots_keeps_the_best(bars):
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=3), st.WeighEqually(slots=2)])
    assert_weights(d, {"C": 0.5, "D": 0.5})


# --- weigh_inverse_volatility ------------------------------------------------------------------

def _zigzag(amplitude: float, n: int) -> np.ndarray:
    """Daily returns alternating +amplitude / -amplitude: std = amplitude * sqrt(k/(k-1))."""
    signs = np.where(np.arange(1, n) % 2 == 1, 1.0, -1.0)
    return 100.0 * np.concatenate([[1.0], np.cumprod(1.0 + amplitude * signs)])


def test_inverse_volatility_weights_are_proportional_to_one_over_std():
    n = 30
    bars = make_bars({"A": _zigzag(0.01, n), "B": _zigzag(0.02, n), "C": _zigzag(0.04, n)})
    d = decide_at(bars, [st.SelectAll(), st.WeighInverseVolatility(lookback_days=10)], universe=("A", "B", "C"))
    # Amplitudes 1:2:4 over an even window (mean return exactly 0) -> weights 4:2:1.
    assert d.weights["A"] == pytest.approx(4 / 7, rel=1e-9)
    assert d.weights["B"] == pytest.approx(2 / 7, rel=1e-9)
    assert d.weights["C"] == pytest.approx(1 / 7, rel=1e-9)
    # And straight from the definition, with numpy on the same closes.
    returns = bars.close[1:] / bars.close[:-1] - 1.0
    inverse = 1.0 / returns[-10:].std(axis=0, ddof=1)
    for i, symbol in enumerate("ABC"):
        assert d.weights[symbol] == pytest.approx(inverse[i] / inverse.sum(), rel=1e-9)


def test_inverse_volatility_skips_symbols_without_enough_history():
    n = 30
    late = _zigzag(0.01, n)
    late[:25] = NAN
    bars = make_bars({"A": _zigzag(0.01, n), "B": _zigzag(0.03, n), "L": late})
    d = decide_at(bars, [st.SelectAll(), st.WeighInverseVolatility(lookback_days=10)], universe=("A", "B", "L"))
    assert_weights(d, {"A": 0.75, "B": 0.25})


def test_inverse_volatility_with_no_usable_history_falls_back():
    bars = make_bars({"A": _zigzag(0.01, 30), "TLT": growth(0.0, 30)})
    steps = [st.SelectAll(), st.WeighInverseVolatility(lookback_days=10), st.Fallback(to="TLT")]
    d = decide_at(bars, steps, row=5, universe=("A",))
    assert d.state == "empty" and d.weights == {"TLT": 1.0}


# --- weigh_fixed / limit_weight ------------------------------------------------------------------

def test_fixed_weights(bars):
    d = decide_at(bars, [st.WeighFixed(weights={"A": 0.6, "C": 0.4})])
    assert_weights(d, {"A": 0.6, "C": 0.4})


def test_fixed_weights_after_a_selection_only_weigh_the_selected(bars):
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=2), st.WeighFixed(weights={"A": 0.6, "C": 0.4})])
    assert_weights(d, {"C": 0.4})  # A was not selected; D was selected but is not named


def test_fixed_weights_skip_symbols_without_a_bar(bars):
    d = decide_at(bars, [st.WeighFixed(weights={"A": 0.5, "E": 0.5})], row=10)
    assert_weights(d, {"A": 0.5})


def test_limit_weight_caps_each_symbol_and_leaves_the_excess_in_cash(bars):
    d = decide_at(bars, [st.WeighFixed(weights={"A": 0.7, "C": 0.2, "D": 0.1}), st.LimitWeight(max=0.5)])
    assert_weights(d, {"A": 0.5, "C": 0.2, "D": 0.1})
    d = decide_at(bars, [st.SelectAll(), st.LimitWeight(max=0.15)])
    assert_weights(d, {s: 0.15 for s in "ABCDE"})


# --- scale_leverage / limit_leverage -------------------------------------------------------------

def test_scale_leverage_multiplies_every_weight(bars):
    d = decide_at(bars, [st.SelectMomentum(lookback_days=10, top=3), st.WeighEqually(), st.ScaleLeverage(gross=1.25)])
    assert_weights(d, {"A": 1.25 / 3, "C": 1.25 / 3, "D": 1.25 / 3})  # fully invested -> 125%
    d = decide_at(bars, [st.WeighFixed(weights={"A": 0.3, "C": 0.2}), st.ScaleLeverage(gross=1.5)])
    assert_weights(d, {"A": 0.45, "C": 0.3})  # half invested stays half of 1.5
    d = decide_at(bars, [st.WeighFixed(weights={"A": 0.8, "C": 0.8}), st.ScaleLeverage(gross=0.5)])
    assert_weights(d, {"A": 0.4, "C": 0.4})


def test_limit_leverage_only_scales_down(bars):
    d = decide_at(bars, [st.WeighFixed(weights={"A": 0.8, "C": 0.6}), st.LimitLeverage(gross=1.0)])
    assert_weights(d, {"A": 0.8 / 1.4, "C": 0.6 / 1.4})
    assert sum(d.weights.values()) == pytest.approx(1.0)
    d = decide_at(bars, [st.WeighFixed(weights={"A": 0.3, "C": 0.2}), st.LimitLeverage(gross=1.0)])
    assert_weights(d, {"A": 0.3, "C": 0.2})


def test_empty_slots_stay_in_cash_after_scale_leverage(bars):
    """The shipped models' shape: slots of 1/3, x1.25. Two picks get 1.25/3 each, not 62.5%."""
    steps = [st.SelectMomentum(lookback_days=10, top=3, min_return=0.05), st.WeighEqually(slots=3),
             st.ScaleLeverage(gross=1.25)]
    d = decide_at(bars, steps)  # only C (+10.5%) and D (+5.1%) beat 5%
    assert_weights(d, {"C": 1.25 / 3, "D": 1.25 / 3})
    steps[0] = st.SelectMomentum(lookback_days=10, top=3, min_return=0.08)
    assert_weights(decide_at(bars, steps), {"C": 1.25 / 3})


# --- when_regime / scale_by_regime ---------------------------------------------------------------

def test_when_regime_above_and_below():
    for spy, open_gate in ((RISING, "above"), (FALLING, "below")):
        bars = _regime_bars(spy)
        shut_gate = "below" if open_gate == "above" else "above"
        d = decide_at(bars, [st.WhenRegime(sma_days=5, is_=open_gate), st.SelectAll()], universe=("A", "B"))
        assert d.state == "active" and d.weights == {"A": 0.5, "B": 0.5}
        d = decide_at(bars, [st.WhenRegime(sma_days=5, is_=shut_gate), st.SelectAll()], universe=("A", "B"))
        assert d.state == "gated" and d.weights == {}
        assert f"SPY is {open_gate} its 5-day average" in d.reason


def test_when_regime_flips_with_the_benchmark():
    spy = np.concatenate([growth(0.01, 20), growth(-0.02, 10, 100 * 1.01**19 * 0.98)])
    bars = _regime_bars(spy)
    steps = [st.WhenRegime(sma_days=5, is_="above"), st.SelectAll()]
    assert decide_at(bars, steps, row=19, universe=("A",)).state == "active"
    assert decide_at(bars, steps, row=LAST, universe=("A",)).state == "gated"


def test_when_regime_without_enough_history_is_gated_either_way():
    bars = _regime_bars(RISING)
    for side in ("above", "below"):
        steps = [st.WhenRegime(sma_days=5, is_=side), st.SelectAll(), st.Fallback(to="TLT")]
        d = decide_at(bars, steps, row=3, universe=("A", "B"))
        assert d.state == "gated" and d.weights == {"TLT": 1.0}
        assert "under 5 sessions of history" in d.reason
    assert decide_at(bars, [st.WhenRegime(sma_days=5), st.SelectAll()], row=4, universe=("A",)).state == "active"


def test_when_regime_with_a_benchmark_listed_late_is_gated_until_it_has_history():
    """Rows before the benchmark's listing, or with fewer than sma_days of its bars, are unknown, not 'below'."""
    spy = growth(-0.01, N)
    spy[:10] = NAN  # listed at row 10; a 5-day average exists from row 14 on
    bars = _regime_bars(spy)
    steps = [st.WhenRegime(sma_days=5, is_="below"), st.SelectAll(), st.Fallback(to="TLT")]
    for row in range(0, 14):
        d = decide_at(bars, steps, row=row, universe=("A", "B"))
        assert d.state == "gated" and d.weights == {"TLT": 1.0}, (row, d)
        assert "history" in d.reason
    assert decide_at(bars, steps, row=14, universe=("A", "B")).state == "active"
    scaled = [st.SelectAll(), st.WeighEqually(), st.ScaleByRegime(sma_days=5, above=1.0, below=0.6)]
    assert_weights(decide_at(bars, scaled, row=12, universe=("A", "B")), {"A": 0.3, "B": 0.3})  # cautious
    scaled = [st.SelectAll(), st.WeighEqually(), st.ScaleByRegime(sma_days=5, above=0.6, below=1.0)]
    assert_weights(decide_at(bars, scaled, row=12, universe=("A", "B")), {"A": 0.3, "B": 0.3})


def test_scale_by_regime_above_and_below():
    steps = [st.SelectAll(), st.WeighEqually(), st.ScaleByRegime(sma_days=5, above=1.2, below=0.5)]
    up = decide_at(_regime_bars(RISING), steps, universe=("A", "B"))
    assert up.state == "active"
    assert_weights(up, {"A": 0.6, "B": 0.6})
    down = decide_at(_regime_bars(FALLING), steps, universe=("A", "B"))
    assert_weights(down, {"A": 0.25, "B": 0.25})


def test_scale_by_regime_without_history_takes_the_cautious_factor():
    for above, below, factor in ((1.2, 0.5, 0.5), (0.3, 1.0, 0.3)):
        steps = [st.SelectAll(), st.WeighEqually(), st.ScaleByRegime(sma_days=5, above=above, below=below)]
        d = decide_at(_regime_bars(RISING), steps, row=2, universe=("A", "B"))
        assert_weights(d, {"A": 0.5 * factor, "B": 0.5 * factor})


def test_scale_by_regime_to_zero_holds_the_fallback():
    steps = [st.SelectAll(), st.WeighEqually(), st.ScaleByRegime(sma_days=5, above=1.0, below=0.0),
             st.Fallback(to="TLT")]
    d = decide_at(_regime_bars(FALLING), steps, universe=("A", "B"))
    assert d.state == "empty" and d.weights == {"TLT": 1.0}


# --- combining models ----------------------------------------------------------------------------

def test_account_targets_add_budget_weighted_models():
    decisions = {"m1": Decision({"A": 1.0}, "active"), "m2": Decision({"A": 0.5, "B": 0.5}, "active"),
                 "m3": Decision({}, "gated")}
    targets = account_targets(decisions, {"m1": 0.5, "m2": 0.25, "m3": 0.25})
    assert targets == pytest.approx({"A": 0.625, "B": 0.125})
