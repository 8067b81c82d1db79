"""Suspect bars: a cycle does not decide on a bar that is missing, not a price, or outside the
price collar; a backtest or replay tries the owed rebalance again at the next session."""

from __future__ import annotations

import math
from datetime import date

import msgspec
import numpy as np
import pytest
from engine_factories import make_bars

from botctl.engine.guard import suspect_bars
from botctl.runtime.backtest import run_backtest

COLLAR = 0.10


def bars_of(**closes):
    return make_bars({s: list(v) for s, v in closes.items()})


def test_clean_bars_are_not_suspect():
    bars = bars_of(AAA=[100, 101, 102, 101], BBB=[50, 50.5, 50, 49])
    assert suspect_bars(bars, 3, ("AAA", "BBB"), COLLAR) == []


@pytest.mark.parametrize(("last", "flagged"), [(110.0, False), (110.0001, True), (90.0, False), (89.99, True),
                                              (500.0, True)])
def test_a_move_is_suspect_only_beyond_the_collar(last, flagged):
    bars = bars_of(AAA=[100, 100, last], BBB=[50, 50, 50])
    found = suspect_bars(bars, 2, ("AAA", "BBB"), COLLAR)
    assert [s for s, _ in found] == (["AAA"] if flagged else [])
    if flagged:
        assert "outside the 10% price collar" in found[0][1] and "from 100.00" in found[0][1]


@pytest.mark.parametrize(("last", "words"), [(math.nan, "has no bar"), (0.0, "not a price"), (-3.0, "not a price"),
                                             (math.inf, "not a price")])
def test_a_missing_or_impossible_price_is_suspect(last, words):
    bars = bars_of(AAA=[100, 100, last], BBB=[50, 50, 50])
    found = suspect_bars(bars, 2, ("AAA", "BBB"), COLLAR)
    assert [s for s, _ in found] == ["AAA"] and words in found[0][1]


def test_a_symbol_not_listed_yet_is_not_suspect():
    bars = bars_of(AAA=[100, 100, 100], NEW=[math.nan, math.nan, math.nan])
    assert suspect_bars(bars, 2, ("AAA", "NEW"), COLLAR) == []


def test_the_first_session_has_nothing_to_compare_with():
    assert suspect_bars(bars_of(AAA=[100.0, 101.0]), 0, ("AAA",), COLLAR) == []
    assert [s for s, _ in suspect_bars(bars_of(AAA=[0.0, 101.0]), 0, ("AAA",), COLLAR)] == ["AAA"]


def test_a_gap_of_a_few_sessions_compares_with_the_last_close_before_it():
    bars = bars_of(AAA=[100, math.nan, math.nan, 104])
    assert suspect_bars(bars, 3, ("AAA",), COLLAR) == []
    bars = bars_of(AAA=[100, math.nan, math.nan, 130])
    assert [s for s, _ in suspect_bars(bars, 3, ("AAA",), COLLAR)] == ["AAA"]


def test_a_backtest_refuses_a_suspect_bar_and_rebalances_at_the_next_clean_session(plan, bundled_bars):
    # XLE closes at five times its price on the last session of February 2024: the monthly
    # rebalance of 1 March decides on that bar, and 4 March on the fall back from it.
    close = bundled_bars.close.copy()
    spike = bundled_bars.dates.index(date(2024, 2, 29))
    close[spike, bundled_bars.symbols.index("XLE")] *= 5
    bad = msgspec.structs.replace(bundled_bars, close=close)
    clean = run_backtest(plan, bundled_bars, start=date(2024, 1, 2), end=date(2024, 3, 28))
    result = run_backtest(plan, bad, start=date(2024, 1, 2), end=date(2024, 3, 28))
    for book, clean_book in zip(result.books, clean.books):
        march = sorted({o.ts_init.date() for o in book.orders if o.ts_init.date() >= date(2024, 3, 1)})
        assert march and march[0] == date(2024, 3, 5), (book.account.id, march)
        assert any(o.ts_init.date() == date(2024, 3, 1) for o in clean_book.orders)  # the clean run trades the 1st
        rejected = [e for e in book.events if e.type == "data.rejected"]
        assert [e.ts_event.date() for e in rejected] == [date(2024, 3, 1), date(2024, 3, 4)]
        assert all(e.severity == "WARN" and "XLE" in e.message and "price collar" in e.message for e in rejected)
    for curve in result.accounts.values():
        assert curve.blocked == {"suspect_data": 2}
        assert np.isfinite(curve.nav).all()


def reference_flags(close: np.ndarray, row: int) -> set[int]:
    """The rule written plainly, symbol by symbol."""
    flagged = set()
    for col in range(close.shape[1]):
        now = close[row, col]
        earlier = [v for v in close[max(0, row - 10): row, col] if not math.isnan(v)]
        previous = earlier[-1] if earlier else math.nan
        if math.isnan(now):
            if earlier:
                flagged.add(col)
        elif not math.isfinite(now) or now <= 0:
            flagged.add(col)
        elif earlier and (previous == 0 or abs(now / previous - 1) > COLLAR + 1e-9):
            flagged.add(col)  # after a zero close any price is an infinite move
    return flagged


def test_suspect_bars_agrees_with_the_rule_written_plainly_on_random_bad_data():
    rng = np.random.default_rng(3)
    close = 100 * np.cumprod(1 + rng.normal(0, 0.04, size=(400, 6)), axis=0)
    close[rng.random(close.shape) < 0.05] = np.nan  # gaps
    close[:30, 5] = np.nan  # listed late
    close[rng.random(close.shape) < 0.01] = 0.0
    close[rng.random(close.shape) < 0.01] *= 3
    close[rng.random(close.shape) < 0.005] = np.inf
    bars = make_bars({f"S{i}": close[:, i] for i in range(6)})
    flagged_rows = 0
    for row in range(len(bars.dates)):
        found = {bars.symbols.index(s) for s, _ in suspect_bars(bars, row, bars.symbols, COLLAR)}
        assert found == reference_flags(close, row), row
        flagged_rows += bool(found)
    assert 30 < flagged_rows < 400
