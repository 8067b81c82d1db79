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
