"""An independent numpy re-implementation of the momentum rotation, checked against the engine.

The reference reads the bundled parquet itself and knows nothing of botctl's code: 126-session total
return on adjusted closes, the best 3 with positive momentum, 1/3 of the book per slot (an empty
slot stays in cash) times 1.25, rebalanced on the first session of every month and on the first
session of the backtest, deciding on the previous session's close and trading at that close, with
fractional shares and no costs. The engine runs it as a one-model account with `fill: close`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from engine_factories import REPO_ROOT, plan_from_yaml

import botctl
from botctl.runtime.backtest import run_backtest
from botctl.strategy.bars import bars_from_frame

UNIVERSE = ("XLK", "XLF", "XLE", "XLV", "XLI", "XLP", "XLU", "XLY", "XLC", "XLB", "XLRE", "TLT")
START, END = date(2015, 1, 1), date(2024, 12, 31)
LOOKBACK, TOP, SLOTS, LEVERAGE, CASH = 126, 3, 3, 1.25, 100_000.0


def load_adjusted_closes() -> tuple[np.ndarray, np.ndarray]:
    """(dates, closes[session, symbol]) from the bundled parquet: adj_close, NaN before a listing."""
    raw = pl.read_parquet(Path(botctl.__file__).parent / "data" / "etf_daily.parquet")
    raw = raw.filter(pl.col("symbol").is_in([*UNIVERSE, "SPY"]))
    dates = np.array(sorted(set(raw["date"].to_list())))
    row_of = {d: i for i, d in enumerate(dates)}
    closes = np.full((len(dates), len(UNIVERSE)), np.nan)
    for j, symbol in enumerate(UNIVERSE):
        rows = raw.filter(pl.col("symbol") == symbol)
        closes[[row_of[d] for d in rows["date"].to_list()], j] = rows["adj_close"].to_numpy()
    return dates, closes


def reference_curve(renormalise: bool = False) -> tuple[list[date], np.ndarray]:
    """NAV at every close from the one before START to END. `renormalise` instead scales the
    picks to a gross of 1.25 whatever their number (used only to show the test is sensitive)."""
    dates, closes = load_adjusted_closes()
    momentum = np.full_like(closes, np.nan)
    momentum[LOOKBACK:] = closes[LOOKBACK:] / closes[:-LOOKBACK] - 1.0
    first = int(np.searchsorted(dates, START))
    last = int(np.searchsorted(dates, END, side="right")) - 1
    cash, shares = CASH, np.zeros(len(UNIVERSE))

    def value(t: int) -> float:
        return cash + float(np.nansum(shares * closes[t]))

    nav = [value(first - 1)]
    for t in range(first, last + 1):
        new_month = (dates[t].year, dates[t].month) != (dates[t - 1].year, dates[t - 1].month)
        if t == first or new_month:
            signal = t - 1
            book = value(signal)
            score = momentum[signal]
            eligible = [j for j in range(len(UNIVERSE)) if np.isfinite(score[j]) and score[j] > 0.0]
            picks = sorted(eligible, key=lambda j: -score[j])[:TOP]
            weights = np.zeros(len(UNIVERSE))
            weights[picks] = 1.0 / SLOTS
            if renormalise and picks:
                weights *= LEVERAGE / weights.sum()
            else:
                weights *= LEVERAGE
            shares = np.where(weights > 0, weights * book / np.where(np.isnan(closes[signal]), 1.0, closes[signal]), 0.0)
            cash = book - float(weights.sum()) * book
        nav.append(value(t))
    return list(dates[first - 1: last + 1]), np.array(nav)


ACCOUNT = """
accounts:
  solo:
    broker: sim
    starting_cash: 100000
    min_trade_value: 0
    models: [{{name: {model}, budget: 1.0}}]
    sim: {{fill: close, commission_bps: 0, slippage_bps: 0, margin: 2.0, borrow_rate: 0.0}}
"""

# The same rotation spelled differently: x1.25 through scale_by_regime with one factor on both sides.
SLOT_ROTATION = """
benchmark: SPY
universes:
  sectors_and_bonds: [XLK, XLF, XLE, XLV, XLI, XLP, XLU, XLY, XLC, XLB, XLRE, TLT]
strategies:
  SlotRotation:
    universe: sectors_and_bonds
    rebalance: monthly
    steps:
      - select_momentum: {lookback_days: 126, top: 3, min_return: 0.0}
      - weigh_equally: {slots: 3}
      - scale_by_regime: {benchmark: SPY, sma_days: 200, above: 1.25, below: 1.25}
"""


def engine_curve(plan, frame):
    result = run_backtest(plan, bars_from_frame(frame, plan.symbols), start=START, end=END)
    return result.accounts["solo"]


@pytest.fixture(scope="module")
def shipped_model_curve(tmp_path_factory, bundled_frame):
    """The shipped SectorRotationModel_v1, exactly as strategies.yaml defines it, alone in an account."""
    strategies = (REPO_ROOT / "strategies.yaml").read_text()
    plan = plan_from_yaml(tmp_path_factory.mktemp("shipped"), strategies, ACCOUNT.format(model="SectorRotationModel_v1"))
    return engine_curve(plan, bundled_frame)


def assert_same_curve(curve, expected_dates, expected_nav):
    assert curve.dates == expected_dates
    assert curve.dates[0] == date(2014, 12, 31) and curve.dates[-1] == date(2024, 12, 31)
    relative = np.abs(np.asarray(curve.nav) / expected_nav - 1.0)
    worst = int(np.argmax(relative))
    assert relative[worst] <= 1e-9, f"{curve.dates[worst]}: engine {curve.nav[worst]:.6f} vs numpy {expected_nav[worst]:.6f}"


def test_engine_matches_the_numpy_slot_rotation(tmp_path, bundled_frame):
    plan = plan_from_yaml(tmp_path, SLOT_ROTATION, ACCOUNT.format(model="SlotRotation"))
    dates, nav = reference_curve()
    assert_same_curve(engine_curve(plan, bundled_frame), dates, nav)
    assert nav[-1] / nav[0] > 2.5  # a real strategy, not a flat line


def test_shipped_model_matches_the_numpy_slot_rotation(shipped_model_curve):
    """SectorRotationModel_v1 exactly as shipped (weigh_equally{slots: 3} + scale_leverage{gross: 1.25})."""
    assert_same_curve(shipped_model_curve, *reference_curve())


def test_the_reference_would_notice_renormalised_weights():
    """Months with fewer than three positive picks exist, so the slot rule is really exercised."""
    dates, with_slots = reference_curve()
    _, renormalised = reference_curve(renormalise=True)
    assert np.max(np.abs(renormalised / with_slots - 1.0)) > 0.01
