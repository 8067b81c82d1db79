from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botctl.engine.metrics import compute_metrics, drawdown_series, monthly_returns

D0 = dt.date(2020, 1, 1)


def days(n: int, span_days: int | None = None) -> list[dt.date]:
    """n dates starting 2020-01-01; the last one span_days after the first (default: daily)."""
    if span_days is None:
        return [D0 + dt.timedelta(days=i) for i in range(n)]
    return [D0 + dt.timedelta(days=round(i * span_days / (n - 1))) for i in range(n)]


def assert_clean(m: dict) -> None:
    for key, value in m.items():
        assert value is None or isinstance(value, (int, float)), key
        assert not isinstance(value, np.generic), key
        if isinstance(value, float):
            assert math.isfinite(value), key


# --- constant growth -------------------------------------------------------------------


def test_constant_one_percent_a_day():
    n = 253  # 252 returns
    nav = 100.0 * 1.01 ** np.arange(n)
    dates = days(n, span_days=1461)  # 2020-01-01 .. 2024-01-01: exactly 4 years of 365.25 days
    m = compute_metrics(
        dates,
        nav,
        turnover_notional=2 * 4 * float(nav.mean()),
        trades=17,
        gross_exposure=0.5 * nav,
    )
    assert_clean(m)
    assert m["total_return"] == pytest.approx(1.01**252 - 1, rel=1e-12)
    assert m["cagr"] == pytest.approx(1.01**63 - 1, rel=1e-12)
    assert m["volatility"] == 0.0
    assert m["sharpe"] is None
    assert m["sortino"] is None
    assert m["max_drawdown"] == 0.0
    assert m["max_drawdown_days"] == 0
    assert m["calmar"] is None
    assert m["turnover"] == pytest.approx(2.0)
    assert m["trades"] == 17 and isinstance(m["trades"], int)
    assert m["exposure"] == pytest.approx(0.5)
    assert "alpha" not in m and "beta" not in m and "correlation" not in m


def test_key_order_and_exposure_none_without_gross():
    m = compute_metrics(days(3), np.array([1.0, 1.1, 1.0]))
    assert list(m) == [
        "total_return",
        "cagr",
        "volatility",
        "sharpe",
        "sortino",
        "max_drawdown",
        "max_drawdown_days",
        "calmar",
        "turnover",
        "trades",
        "exposure",
    ]
    assert m["exposure"] is None
    assert m["turnover"] == 0.0
    assert m["trades"] == 0


# --- sharpe / sortino / volatility by hand ---------------------------------------------


def test_sharpe_sortino_volatility_by_hand():
    # returns +10%, -10%, +10%: mean 1/30, std(ddof=1) 0.2/sqrt(3), downside dev 0.1/sqrt(3)
    nav = np.array([100.0, 110.0, 99.0, 108.9])
    m = compute_metrics(days(4), nav)
    assert m["volatility"] == pytest.approx(0.2 / math.sqrt(3) * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(math.sqrt(21))
    assert m["sortino"] == pytest.approx(math.sqrt(84))


def test_risk_free_is_subtracted_daily():
    nav = np.array([100.0, 110.0, 99.0, 108.9])
    m = compute_metrics(days(4), nav, risk_free=0.252)  # 0.001 a day
    std = 0.2 / math.sqrt(3)
    assert m["sharpe"] == pytest.approx((1 / 30 - 0.001) / std * math.sqrt(252))
    # excess returns 0.099, -0.101, 0.099: downside deviation sqrt(0.101^2 / 3)
    dd = math.sqrt(0.101**2 / 3)
    assert m["sortino"] == pytest.approx((1 / 30 - 0.001) * 252 / (dd * math.sqrt(252)))
    # volatility does not depend on the risk-free rate
    assert m["volatility"] == pytest.approx(std * math.sqrt(252))


# --- drawdowns -------------------------------------------------------------------------


def test_fifty_percent_drawdown_and_recovery_length():
    nav = np.array([100.0, 200.0, 150.0, 100.0, 150.0, 200.0, 250.0])
    m = compute_metrics(days(7), nav)
    assert m["max_drawdown"] == pytest.approx(-0.5)
    assert m["max_drawdown_days"] == 4  # peak at row 1, back to 200 at row 5
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.5)


def test_unrecovered_drawdown_runs_to_the_end():
    nav = np.array([100.0, 200.0, 100.0, 150.0])
    m = compute_metrics(days(4), nav)
    assert m["max_drawdown"] == pytest.approx(-0.5)
    assert m["max_drawdown_days"] == 2


def test_duration_is_that_of_the_deepest_drawdown_not_the_longest():
    nav = np.array([100.0, 90.0, 95.0, 99.0, 101.0, 50.0, 101.0])
    m = compute_metrics(days(7), nav)
    assert m["max_drawdown"] == pytest.approx(50 / 101 - 1)
    assert m["max_drawdown_days"] == 2


def test_drawdown_series():
    nav = np.array([100.0, 200.0, 150.0, 100.0, 300.0, 240.0])
    np.testing.assert_allclose(drawdown_series(nav), [0, 0, -0.25, -0.5, 0, -0.2])
    assert drawdown_series(np.array([])).size == 0


# --- CAPM ------------------------------------------------------------------------------


def _bench_and_curve(k: float, extra: float = 0.0, n: int = 500):
    rng = np.random.default_rng(7)
    rb = rng.normal(0.0004, 0.01, n)
    r = k * rb + extra
    bench = 100.0 * np.concatenate([[1.0], np.cumprod(1 + rb)])
    nav = 100.0 * np.concatenate([[1.0], np.cumprod(1 + r)])
    return days(n + 1), nav, bench


def test_twice_the_benchmark_has_beta_two_alpha_zero():
    dates, nav, bench = _bench_and_curve(2.0)
    m = compute_metrics(dates, nav, benchmark_nav=bench)
    assert_clean(m)
    assert m["beta"] == pytest.approx(2.0, abs=1e-9)
    assert m["correlation"] == pytest.approx(1.0, abs=1e-12)
    assert m["alpha"] == pytest.approx(0.0, abs=1e-9)


def test_leverage_without_financing_earns_the_risk_free_rate_as_alpha():
    # x = 2*rb - rf_d, y = rb - rf_d  =>  alpha = (mean x - 2 mean y) * 252 = rf
    dates, nav, bench = _bench_and_curve(2.0)
    m = compute_metrics(dates, nav, benchmark_nav=bench, risk_free=0.05)
    assert m["beta"] == pytest.approx(2.0, abs=1e-9)
    assert m["alpha"] == pytest.approx(0.05, abs=1e-9)


def test_constant_daily_excess_is_alpha():
    dates, nav, bench = _bench_and_curve(1.0, extra=0.001)
    m = compute_metrics(dates, nav, benchmark_nav=bench)
    assert m["beta"] == pytest.approx(1.0, abs=1e-9)
    assert m["alpha"] == pytest.approx(0.252, abs=1e-9)
    assert m["correlation"] == pytest.approx(1.0, abs=1e-12)


def test_inverse_curve_has_negative_beta_and_correlation():
    dates, nav, bench = _bench_and_curve(-1.0)
    m = compute_metrics(dates, nav, benchmark_nav=bench)
    assert m["beta"] == pytest.approx(-1.0, abs=1e-9)
    assert m["correlation"] == pytest.approx(-1.0, abs=1e-12)


def test_flat_benchmark_gives_none_not_nan():
    nav = np.array([100.0, 101.0, 99.0, 102.0])
    m = compute_metrics(days(4), nav, benchmark_nav=np.full(4, 50.0))
    assert m["alpha"] is None and m["beta"] is None and m["correlation"] is None
    assert_clean(m)


# --- monthly returns -------------------------------------------------------------------


def test_monthly_returns_three_months():
    dates = [
        dt.date(2021, 1, 29),
        dt.date(2021, 1, 31),
        dt.date(2021, 2, 1),
        dt.date(2021, 2, 26),
        dt.date(2021, 3, 1),
        dt.date(2021, 3, 31),
    ]
    nav = np.array([100.0, 110.0, 90.0, 99.0, 120.0, 108.9])
    out = monthly_returns(dates, nav)
    assert [(y, m) for y, m, _ in out] == [(2021, 1), (2021, 2), (2021, 3)]
    # Jan from the first nav, later months from the previous month-end.
    assert out[0][2] == pytest.approx(0.10)
    assert out[1][2] == pytest.approx(-0.10)
    assert out[2][2] == pytest.approx(0.10)
    assert all(isinstance(r, float) for _, _, r in out)


def test_monthly_returns_across_a_year_end_and_edge_cases():
    dates = [dt.date(2020, 12, 30), dt.date(2020, 12, 31), dt.date(2021, 1, 4)]
    out = monthly_returns(dates, np.array([100.0, 100.0, 105.0]))
    assert out[0] == (2020, 12, 0.0)
    assert out[1][:2] == (2021, 1) and out[1][2] == pytest.approx(0.05)
    assert monthly_returns([], np.array([])) == []
    assert monthly_returns([dt.date(2021, 5, 3)], np.array([7.0])) == [(2021, 5, 0.0)]


def test_numpy_datetime64_dates_are_accepted():
    dates = np.array(["2021-01-29", "2021-02-26"], dtype="datetime64[D]")
    assert monthly_returns(list(dates), np.array([100.0, 110.0])) == [(2021, 2, pytest.approx(0.1))]
    m = compute_metrics(list(dates), np.array([100.0, 110.0]))
    assert m["total_return"] == pytest.approx(0.1)


# --- degenerate inputs -----------------------------------------------------------------


def test_empty_curve():
    m = compute_metrics([], np.array([]))
    assert_clean(m)
    assert all(v is None for k, v in m.items() if k != "trades")


def test_single_point():
    m = compute_metrics([D0], np.array([100.0]), benchmark_nav=np.array([5.0]))
    assert_clean(m)
    assert m["total_return"] == 0.0
    assert m["max_drawdown"] == 0.0 and m["max_drawdown_days"] == 0
    for key in ("cagr", "volatility", "sharpe", "sortino", "calmar", "turnover", "alpha", "beta", "correlation"):
        assert m[key] is None, key


def test_two_points_have_no_ddof1_statistics():
    m = compute_metrics(days(2), np.array([100.0, 90.0]), benchmark_nav=np.array([1.0, 1.1]))
    assert_clean(m)
    assert m["volatility"] is None and m["sharpe"] is None
    assert m["sortino"] == pytest.approx(-math.sqrt(252))  # mean -0.1 over downside dev 0.1
    assert m["beta"] is None and m["correlation"] is None


def test_flat_curve():
    m = compute_metrics(days(10), np.full(10, 100.0), benchmark_nav=np.linspace(1, 2, 10))
    assert_clean(m)
    assert m["total_return"] == 0.0 and m["cagr"] == 0.0
    assert m["volatility"] == 0.0
    assert m["sharpe"] is None and m["sortino"] is None and m["calmar"] is None
    assert m["max_drawdown"] == 0.0
    assert m["beta"] == pytest.approx(0.0) and m["correlation"] is None


def test_zero_time_span():
    same_day = [D0, D0, D0]
    m = compute_metrics(same_day, np.array([100.0, 90.0, 95.0]), turnover_notional=1e6)
    assert_clean(m)
    assert m["cagr"] is None and m["turnover"] is None and m["calmar"] is None
    assert m["max_drawdown"] == pytest.approx(-0.1)


def test_wiped_out_and_non_positive_navs_do_not_raise():
    m = compute_metrics(days(4), np.array([100.0, 50.0, 0.0, 0.0]), gross_exposure=np.ones(4))
    assert_clean(m)
    assert m["total_return"] == -1.0 and m["cagr"] == -1.0
    assert m["max_drawdown"] == pytest.approx(-1.0)
    assert m["sharpe"] is None and m["exposure"] is None  # 0/0 returns are undefined
    m = compute_metrics(days(3), np.array([0.0, 1.0, 2.0]))
    assert_clean(m)
    assert m["total_return"] is None and m["cagr"] is None
    m = compute_metrics(days(3), np.array([100.0, np.nan, 120.0]))
    assert_clean(m)


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        compute_metrics(days(3), np.ones(4))
    with pytest.raises(ValueError):
        compute_metrics(days(3), np.ones(3), benchmark_nav=np.ones(2))
    with pytest.raises(ValueError):
        compute_metrics(days(3), np.ones(3), gross_exposure=np.ones(2))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=-10, max_value=1e6, allow_nan=False),
            st.just(0.0),
            st.just(100.0),
        ),
        min_size=0,
        max_size=30,
    ),
    st.floats(min_value=-0.1, max_value=0.2),
)
def test_never_nan_or_inf(values, rf):
    nav = np.array(values, dtype=np.float64)
    bench = nav[::-1].copy()
    m = compute_metrics(days(nav.size), nav, benchmark_nav=bench, risk_free=rf, gross_exposure=nav)
    assert_clean(m)


def test_a_lone_starting_mark_is_the_base_of_the_next_month_not_a_month():
    dates = [dt.date(2014, 12, 31), dt.date(2015, 1, 2), dt.date(2015, 1, 30)]
    out = monthly_returns(dates, np.array([100.0, 101.0, 110.0]))
    assert out == [(2015, 1, pytest.approx(0.10))]  # no 2014 row with one empty December
