"""run_backtest windows: where a curve starts and ends."""

from __future__ import annotations

from datetime import date

import pytest

from botctl.errors import DataError, UsageError
from botctl.runtime.backtest import run_backtest


def test_the_curve_starts_at_the_close_before_the_first_session(plan, bundled_bars):
    result = run_backtest(plan, bundled_bars, start=date(2015, 1, 1), end=date(2015, 3, 31))
    assert (result.start, result.end) == (date(2015, 1, 2), date(2015, 3, 31))
    for curve in [*result.accounts.values(), *result.models.values(), result.benchmark]:
        assert curve.dates[0] == date(2014, 12, 31) and curve.dates[-1] == date(2015, 3, 31)
        assert curve.nav[0] == pytest.approx(100_000.0)


def test_a_start_after_the_end_is_a_usage_error(plan, bundled_bars):
    with pytest.raises(UsageError):
        run_backtest(plan, bundled_bars, start=date(2020, 1, 1), end=date(2019, 1, 1))


def test_a_window_after_the_data_is_a_data_error(plan, bundled_bars):
    with pytest.raises(DataError):
        run_backtest(plan, bundled_bars, start=date(2030, 1, 1), end=date(2030, 2, 1))


def test_a_start_before_the_data_begins_at_the_second_session(plan, bundled_bars):
    result = run_backtest(plan, bundled_bars, start=date(1990, 1, 1), end=date(1995, 12, 31))
    assert result.start == bundled_bars.dates[1]  # the first session has no prior close to decide on
    assert result.accounts["rotation-sim"].dates[0] == bundled_bars.dates[0]


def test_round_trips_account_for_every_dollar_of_each_curve(plan, bundled_bars):
    from botctl.runtime.backtest import summary

    result = run_backtest(plan, bundled_bars, start=date(2015, 1, 1), end=date(2025, 12, 31))
    body = summary(result)
    for name, curve in [*result.accounts.items(), *result.models.items()]:
        # Closed round trips realised, open ones marked at the last close: together the NAV change.
        assert sum(t.pnl for t in curve.round_trips) == pytest.approx(curve.nav[-1] - curve.nav[0], rel=1e-9)
        listed = {**body["accounts"], **body["models"]}[name]
        assert listed["trade_stats"]["round_trips"] == sum(1 for t in curve.round_trips if t.exit_at is not None)
        assert listed["trade_stats"]["round_trips"] < listed["trades"]  # fewer round trips than fills
        assert {"symbol", "entry_at", "exit_at", "entry_price", "exit_price", "qty", "pnl", "return",
                "sessions_held", "exit_reason", "mae", "mfe"} <= set(listed["round_trips"][0])
    # The shipped model halts on 2025-04-04: what it still holds is listed as held by the halt.
    model = body["models"]["SectorRotationModel_v1"]
    assert [t["at"] for t in model["breaker_trips"]] == ["2025-04-04"]
    assert {t["exit_reason"] for t in model["round_trips"] if t["exit_at"] is None} == {"halt"}


def test_reweight_trades_back_to_the_last_targets_every_session_keeping_the_selection(plan, bundled_bars):
    from botctl.strategy.schedule import rebalance_sessions

    window = dict(start=date(2021, 1, 1), end=date(2021, 6, 30))
    held = run_backtest(plan, bundled_bars, **window)
    weighted = run_backtest(plan, bundled_bars, **window, rebalancing="reweight")
    model = next(m for a in plan.accounts for m in a.models if m.name == "SectorRotationModel_v1")
    scheduled = set(rebalance_sessions(bundled_bars.dates, model.schedule)) | {held.start}
    for result, mode in ((held, "hold"), (weighted, "reweight")):
        book = next(b for b in result.books if b.account.id == "adaptive-sim")
        days = {o.ts_init.date() for o in book.orders}
        off_schedule = {o.ts_init.date() for o in book.orders if o.reason == "reweight"}
        if mode == "hold":
            assert days <= scheduled and not off_schedule
        else:
            assert len(off_schedule) > 20 and not off_schedule & scheduled
            # The selection is the schedule's: no symbol is bought off schedule that was not held.
            bought = {o.symbol for o in book.orders if o.reason == "reweight" and o.side == "buy"}
            assert bought <= {o.symbol for o in book.orders if o.reason == "rebalance" and o.side == "buy"}
    assert weighted.accounts["adaptive-sim"].trades > held.accounts["adaptive-sim"].trades
