"""Suspect bars: a cycle does not decide on a bar that is missing, not a price, or outside the
price collar; a backtest or replay tries the owed rebalance again at the next session."""

from __future__ import annotations

import math
from datetime import date

import msgspec
import numpy as np
import pytest
from engine_factories import REPO_ROOT, make_bars, plan_from_yaml

from botctl.engine.guard import judge_bars, suspect_bars, suspect_fill_prices
from botctl.runtime.backtest import run_backtest
from botctl.spec.steps import is_signal_book

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


def rebalancers(plan):
    """The shipped plan without its signal-book account (these tests follow monthly rebalances)."""
    return msgspec.structs.replace(plan, accounts=tuple(
        a for a in plan.accounts if not any(is_signal_book(m.steps) for m in a.models)))


def test_a_backtest_refuses_a_suspect_bar_and_rebalances_at_the_next_clean_session(plan, bundled_bars):
    plan = rebalancers(plan)
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


def reference_market(close: np.ndarray, row: int, prices: np.ndarray | None = None) -> float:
    """The market move written plainly: the median move of every symbol, 0 with fewer than 3."""
    prices = close if prices is None else prices
    moves = []
    for col in range(close.shape[1]):
        now, before = prices[row, col], close[row - 1, col] if row else math.nan
        if math.isfinite(now) and math.isfinite(before) and now > 0 and before > 0:
            moves.append(now / before - 1)
    return min(max(float(np.median(moves)), -0.25), 0.25) if len(moves) >= 3 else 0.0


def reference_sigma(close: np.ndarray, row: int, col: int) -> float:
    """The symbol's robust volatility written plainly: 1.4826 x the median absolute deviation
    of its last 63 daily returns (only between two usable closes), 0 with fewer than 20."""
    returns = []
    for t in range(max(1, row - 63), row):
        a, b = close[t - 1, col], close[t, col]
        if math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0:
            returns.append(b / a - 1)
    if len(returns) < 20:
        return 0.0
    middle = float(np.median(returns))
    return 1.4826 * float(np.median([abs(r - middle) for r in returns]))


def reference_flags(close: np.ndarray, row: int, opens: np.ndarray | None = None) -> set[int]:
    """The rule written plainly, symbol by symbol: a move beyond the collar is suspect when it
    differs from the market's move by more than the collar plus five of the symbol's sigmas."""
    prices = close if opens is None else opens
    flagged = set()
    for col in range(close.shape[1]):
        now = prices[row, col]
        earlier = [v for v in close[max(0, row - 10): row, col] if not math.isnan(v)]
        previous = earlier[-1] if earlier else math.nan
        if math.isnan(now):
            if earlier and opens is None:
                flagged.add(col)
        elif not math.isfinite(now) or now <= 0:
            flagged.add(col)
        elif earlier and (previous == 0 or abs(now / previous - 1) > COLLAR + 1e-9):
            move = math.inf if previous == 0 else now / previous - 1  # after a zero close any price is an infinite move
            limit = COLLAR + 5 * reference_sigma(close, row, col)
            if not abs(move - reference_market(close, row, prices)) <= limit + 1e-9:
                flagged.add(col)
    return flagged


@pytest.mark.parametrize("seed", [3, 4])
def test_suspect_bars_agrees_with_the_rule_written_plainly_on_random_bad_data(seed):
    rng = np.random.default_rng(seed)
    market = rng.normal(0, 0.03, size=(400, 1))  # a shared move, as on a crash day
    close = 100 * np.cumprod(1 + market + rng.normal(0, 0.03, size=(400, 6)), axis=0)
    opens = close * (1 + rng.normal(0, 0.04, size=close.shape))
    close[rng.random(close.shape) < 0.05] = np.nan  # gaps
    close[:30, 5] = np.nan  # listed late
    close[rng.random(close.shape) < 0.01] = 0.0
    close[rng.random(close.shape) < 0.01] *= 3
    close[rng.random(close.shape) < 0.005] = np.inf
    opens[rng.random(close.shape) < 0.01] *= 4
    opens[rng.random(close.shape) < 0.005] = -np.inf
    bars = make_bars({f"S{i}": close[:, i] for i in range(6)}, {f"S{i}": opens[:, i] for i in range(6)})
    flagged_rows = accepted_rows = fill_rows = 0
    for row in range(len(bars.dates)):
        verdict = judge_bars(bars, row, bars.symbols, COLLAR)
        found = {bars.symbols.index(s) for s, _ in verdict.suspect}
        assert found == reference_flags(close, row), row
        fills = {bars.symbols.index(s) for s, _ in suspect_fill_prices(bars, row, bars.symbols, COLLAR)}
        assert fills == reference_flags(close, row, opens), row
        flagged_rows += bool(found)
        accepted_rows += bool(verdict.accepted)
        fill_rows += bool(fills)
    assert 30 < flagged_rows < 400 and accepted_rows > 10 and 10 < fill_rows < 400


def test_no_session_of_the_bundled_history_is_suspect_crashes_included(bundled_bars):
    """1993-2025, March 2020 and October 2008 included: no close and no open of the shipped
    symbols is bad data; the fixed collar alone would have refused dozens of sessions."""
    symbols = bundled_bars.symbols
    accepted = set()
    for row in range(len(bundled_bars.dates)):
        verdict = judge_bars(bundled_bars, row, symbols, COLLAR)
        assert verdict.suspect == (), (bundled_bars.dates[row], verdict.suspect)
        assert suspect_fill_prices(bundled_bars, row, symbols, COLLAR) == [], bundled_bars.dates[row]
        if verdict.accepted:
            accepted.add(bundled_bars.dates[row])
    assert {date(2020, 3, 9), date(2020, 3, 16), date(2008, 10, 13)} <= accepted and len(accepted) > 30


@pytest.mark.parametrize(("factor", "symbols"), [(5.0, ["XLE"]), (0.5, ["XLE"]), (5.0, "all")])
def test_a_spike_on_a_crash_day_is_still_suspect(bundled_bars, factor, symbols):
    """x5 or a missed 2:1 split in one symbol on 16 March 2020, or the whole file x5 that day."""
    row = bundled_bars.dates.index(date(2020, 3, 16))
    close = bundled_bars.close.copy()
    columns = list(range(len(bundled_bars.symbols))) if symbols == "all" else [bundled_bars.symbols.index(s) for s in symbols]
    close[row, columns] *= factor
    bad = msgspec.structs.replace(bundled_bars, close=close)
    found = [s for s, _ in suspect_bars(bad, row, bad.symbols, COLLAR)]
    assert found == [bad.symbols[c] for c in columns]


def test_a_daily_rotation_through_march_2020_trades_every_session_and_a_spike_is_still_refused(tmp_path, bundled_bars):
    strategies = (REPO_ROOT / "strategies.yaml").read_text().replace("rebalance: monthly", "rebalance: daily") \
        .replace("{every: monthly, day: 1, after_open_minutes: 30}", "daily")
    daily = plan_from_yaml(tmp_path, strategies, (REPO_ROOT / "accounts.yaml").read_text())
    start, end = date(2020, 2, 3), date(2020, 4, 30)
    result = run_backtest(daily, bundled_bars, start=start, end=end)
    for name, curve in result.accounts.items():
        assert "suspect_data" not in curve.blocked and "price_collar" not in curve.blocked, (name, curve.blocked)
        assert curve.collar_widened > 0, name  # the fixed collar alone would have refused these sessions
    close = bundled_bars.close.copy()
    close[bundled_bars.dates.index(date(2020, 3, 16)), bundled_bars.symbols.index("XLE")] *= 5
    spiked = run_backtest(daily, msgspec.structs.replace(bundled_bars, close=close), start=start, end=end)
    for name, curve in spiked.accounts.items():
        assert curve.blocked.get("suspect_data") == 2, (name, curve.blocked)  # the spike, and the fall back from it


def test_a_fill_at_a_bad_opening_price_never_happens(plan, bundled_bars):
    """XLK's adjusted prices x50 on 1 June 2023, the session the monthly rebalance fills at:
    the orders are canceled unfilled with a WARN, and the rebalance is retried on clean bars."""
    plan = rebalancers(plan)
    row = bundled_bars.dates.index(date(2023, 6, 1))
    column = bundled_bars.symbols.index("XLK")
    opens, close = bundled_bars.open.copy(), bundled_bars.close.copy()
    opens[row, column] *= 50
    close[row, column] *= 50
    bad = msgspec.structs.replace(bundled_bars, open=opens, close=close)
    clean = run_backtest(plan, bundled_bars, start=date(2023, 5, 1), end=date(2023, 7, 31))
    result = run_backtest(plan, bad, start=date(2023, 5, 1), end=date(2023, 7, 31))
    for book in result.books:
        june = [f for f in book.fills if f.ts_event.date() >= date(2023, 6, 1)]
        assert june and all(f.ts_event.date() > date(2023, 6, 5) for f in june), book.account.id
        xlk = [f.price for f in book.fills if f.symbol == "XLK"]
        assert max(xlk, default=0) < 500, xlk  # XLK traded near $160 adjusted: never at x50
        warned = [e for e in book.events if e.type == "data.rejected" and e.details["rule"] == "suspect_fill_price"]
        assert len(warned) == 1 and warned[0].severity == "WARN" and "XLK opened at" in warned[0].message
        assert all(o.status != "filled" for o in book.orders if o.ts_event.date() == date(2023, 6, 1))
    for name, curve in result.accounts.items():
        assert curve.nav.max() < 1.2 * clean.accounts[name].nav.max(), name
        assert np.isfinite(curve.nav).all()
