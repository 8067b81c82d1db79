"""No look-ahead: changing bars after a date D never changes a decision or a NAV at or before D."""

from __future__ import annotations

from datetime import date

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from botctl.runtime.backtest import run_backtest
from botctl.strategy.bars import Bars
from botctl.strategy.evaluate import decide
from botctl.strategy.signals import Signals

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def perturb_after(bars: Bars, row: int, seed: int, spread: float) -> Bars:
    """Every open and close after `row` multiplied by its own random positive factor."""
    rng = np.random.default_rng(seed)
    open_, close = bars.open.copy(), bars.close.copy()
    tail = close[row + 1:].shape
    open_[row + 1:] *= np.exp(rng.uniform(-spread, spread, tail))
    close[row + 1:] *= np.exp(rng.uniform(-spread, spread, tail))
    return Bars(bars.dates, bars.symbols, open_, close)


def slice_rows(bars: Bars, first: date, last: date) -> Bars:
    a, b = bars.index_of(first) + 1, bars.index_of(last)
    return Bars(bars.dates[a: b + 1], bars.symbols, bars.open[a: b + 1], bars.close[a: b + 1])


def all_steps(plan):
    return tuple(step for account in plan.accounts for model in account.models for step in model.steps)


def models(plan):
    return {m.name: m for account in plan.accounts for m in account.models}


def decisions(plan, signals, rows):
    return {(name, row): decide(m.steps, m.universe, signals, row) for name, m in models(plan).items() for row in rows}


@SETTINGS
@given(data=hst.data())
def test_later_bars_never_change_earlier_decisions(plan, bundled_bars, data):
    # 2014..2019 holds XLRE's and XLC's listings and both SPY regimes; 200 sessions of warm-up.
    bars = slice_rows(bundled_bars, date(2014, 1, 1), date(2019, 12, 31))
    cut = data.draw(hst.integers(min_value=150, max_value=len(bars.dates) - 2), label="D")
    seed = data.draw(hst.integers(min_value=0, max_value=2**32 - 1), label="seed")
    spread = data.draw(hst.sampled_from([0.01, 0.3, 2.0]), label="spread")
    steps = all_steps(plan)
    original = Signals(bars, steps)
    changed = Signals(perturb_after(bars, cut, seed, spread), steps)
    rows = range(cut + 1)
    before = decisions(plan, original, rows)
    assert before == decisions(plan, changed, rows)
    # The live path, which only ever has the bars up to D, decides D the same way too.
    live = Signals(bars.until(cut), steps)
    assert {k: v for k, v in before.items() if k[1] == cut} == decisions(plan, live, [cut])
    # The check is not vacuous: the decisions are neither all empty nor all alike.
    assert any(d.state == "active" for d in before.values())
    assert len({tuple(d.weights) for d in before.values()}) > 1


@SETTINGS
@given(data=hst.data())
def test_later_bars_never_change_the_nav_curve_up_to_d(plan, bundled_bars, data):
    start, end = date(2015, 1, 1), date(2019, 12, 31)
    first, last = bundled_bars.index_of(start) + 1, bundled_bars.index_of(end)
    cut = data.draw(hst.integers(min_value=first, max_value=last - 1), label="D")
    seed = data.draw(hst.integers(min_value=0, max_value=2**32 - 1), label="seed")
    day = bundled_bars.dates[cut]
    base = run_backtest(plan, bundled_bars, start=start, end=end)
    changed = run_backtest(plan, perturb_after(bundled_bars, cut, seed, 0.3), start=start, end=end)
    stopped = run_backtest(plan, bundled_bars, start=start, end=day)
    for kind in ("accounts", "models"):
        for name, curve in getattr(base, kind).items():
            keep = sum(1 for d in curve.dates if d <= day)
            other, short = getattr(changed, kind)[name], getattr(stopped, kind)[name]
            assert other.dates[:keep] == curve.dates[:keep] == short.dates
            np.testing.assert_array_equal(other.nav[:keep], curve.nav[:keep], err_msg=f"{name} up to {day}")
            np.testing.assert_array_equal(short.nav, curve.nav[:keep], err_msg=f"{name} ending {day}")
            if keep < len(curve.nav) - 25:  # the perturbation does reach the curve after D
                assert not np.array_equal(other.nav[keep:], curve.nav[keep:])


def perturb_from_close(bars: Bars, row: int, seed: int) -> Bars:
    """Change the close of `row` and everything after it; the open of `row` stays as it was."""
    rng = np.random.default_rng(seed)
    open_, close = bars.open.copy(), bars.close.copy()
    close[row:] *= np.exp(rng.uniform(-0.3, 0.3, close[row:].shape))
    open_[row + 1:] *= np.exp(rng.uniform(-0.3, 0.3, open_[row + 1:].shape))
    return Bars(bars.dates, bars.symbols, open_, close)


def trades_until(result, day: date) -> dict[str, list[tuple]]:
    return {book.account.id: [(f.ts_event, f.symbol, f.side, f.qty, f.price) for f in book.fills if f.ts_event.date() <= day]
            for book in result.books}


@SETTINGS
@given(data=hst.data())
def test_a_session_trades_on_what_was_known_before_its_close(plan, bundled_bars, data):
    """Orders filled during session D (at its open) may depend on D's open but not on D's close."""
    start, end = date(2015, 1, 1), date(2019, 12, 31)
    rebalance_days = sorted({d for book in run_backtest(plan, bundled_bars, start=start, end=end).books
                             for d in (f.ts_event.date() for f in book.fills)})
    day = data.draw(hst.sampled_from(rebalance_days), label="D")
    seed = data.draw(hst.integers(min_value=0, max_value=2**32 - 1), label="seed")
    cut = bundled_bars.dates.index(day)
    base = run_backtest(plan, bundled_bars, start=start, end=end)
    changed = run_backtest(plan, perturb_from_close(bundled_bars, cut, seed), start=start, end=end)
    before = trades_until(base, day)
    assert before == trades_until(changed, day)
    assert any(f[0].date() == day for fills in before.values() for f in fills)


def book_decisions(model, bars: Bars, last: int):
    """A signal book's orders, notes and state for rows 0..last, filled at each next open."""
    from book_support import Driver

    driver = Driver(model, bars, cash=100_000.0)
    states = []
    for row in range(last + 1):
        driver.step(row)
        states.append(driver.book)
    # fills at row last + 1 read that row's open, which the perturbation is allowed to change
    return driver.orders, driver.notes, states


@SETTINGS
@given(data=hst.data())
def test_later_bars_never_change_a_signal_books_earlier_orders_or_state(plan, bundled_bars, data):
    books = [m for m in models(plan).values() if any(type(s).__name__.startswith("Score") for s in m.steps)]
    assert books, "the shipped plan has a signal book"
    bars = slice_rows(bundled_bars, date(2014, 1, 1), date(2017, 12, 31))
    cut = data.draw(hst.integers(min_value=250, max_value=len(bars.dates) - 2), label="D")
    seed = data.draw(hst.integers(min_value=0, max_value=2**32 - 1), label="seed")
    for model in books:
        before = book_decisions(model, bars, cut)
        assert before == book_decisions(model, perturb_after(bars, cut, seed, 0.3), cut)
        assert before == book_decisions(model, bars.until(cut), cut)  # what the live path knows at D
        assert sum(len(o) for o in before[0].values()) > 0  # not vacuous: the book traded
