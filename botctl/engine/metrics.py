"""Performance metrics of a daily equity curve.

Pure functions: no I/O, no clock, no data frames. The definitions below are the
documented contract; every number in a backtest report comes from here.

Inputs
------
``dates`` are the trading days of the curve in ascending order (``datetime.date``,
``datetime.datetime`` or ``numpy.datetime64``); ``nav`` is the net asset value at
the close of each of those days, one value per date. ``benchmark_nav`` and
``gross_exposure`` (the sum of absolute position values, in the same currency as
``nav``) are aligned with ``dates`` in the same way. Arrays whose lengths disagree
are a caller bug and raise ``ValueError``; every other input, however degenerate,
returns a result.

Conventions
-----------
With ``n`` navs ``nav_0 .. nav_{n-1}``:

* daily simple returns ``r_t = nav_t / nav_{t-1} - 1`` for ``t = 1 .. n-1``;
* ``rf_d = risk_free / 252`` is the daily risk-free rate (``risk_free`` is an
  annual simple rate, e.g. ``0.04``) and ``x_t = r_t - rf_d`` the daily excess return;
* ``years = (dates[-1] - dates[0]).days / 365.25`` (calendar time).

Metrics returned by :func:`compute_metrics` (plain ``float``/``int`` or ``None``):

``total_return``
    ``nav_{n-1} / base - 1``, where ``base`` is ``invested`` (the money put in:
    starting cash plus deposits) when given, else ``nav_0``. Backtest curves start at
    their starting cash, so both agree there; :func:`pnl_since` is the same definition
    for a single NAV (status, the replay summary, the dashboard).
``cagr``
    ``(nav_{n-1} / base) ** (1 / years) - 1``; ``-1.0`` when the curve ends at or
    below zero (everything lost).
``volatility``
    ``std(r, ddof=1) * sqrt(252)``.
``sharpe``
    ``mean(x) / std(r, ddof=1) * sqrt(252)``.
``sortino``
    ``mean(x) * 252 / (DD * sqrt(252))`` where the downside deviation
    ``DD = sqrt(mean(min(x_t, 0) ** 2))`` is averaged over *all* days, not only the
    down days.
``max_drawdown``
    ``min_t(nav_t / max(invested, max_{s<=t} nav_s) - 1)`` (the running peak starts at
    ``invested`` when given, as the drawdown breaker's high-water mark does), a fraction ``<= 0`` (``-0.3392`` is a
    33.92% drawdown).
``max_drawdown_days``
    duration, in trading days (rows), of the drawdown that reaches ``max_drawdown``:
    from its peak (the last new high before the trough) to its recovery (the first
    day after the trough whose nav is back at or above that peak), or to the last
    day when it has not recovered. ``0`` when there is no drawdown.
``calmar``
    ``cagr / |max_drawdown|``.
``turnover``
    annualised turnover, ``turnover_notional / mean(nav) / years`` (``1.0`` means
    the portfolio's average value was traded once a year; buys and sells both
    count, as ``turnover_notional`` is the sum of absolute traded notionals).
``trades``
    the ``trades`` argument, passed through as an ``int``.
``exposure``
    ``mean_t(gross_exposure_t / nav_t)`` when ``gross_exposure`` is given, else ``None``.

Only when ``benchmark_nav`` is given, with ``rb_t`` its daily returns and
``y_t = rb_t - rf_d`` (daily CAPM regression ``x_t = a + beta * y_t + e_t``):

``beta``
    ``cov(x, y) / var(y)``.
``alpha``
    ``(mean(x) - beta * mean(y)) * 252``, annualised.
``correlation``
    Pearson correlation of ``r`` and ``rb``.

Degenerate inputs
-----------------
A metric that is undefined is ``None``, never ``inf`` or ``NaN``: fewer than two
navs (no returns), fewer than three navs for the ``ddof=1`` statistics, a zero
time span (``cagr``, ``turnover``), zero volatility (``sharpe``, and ``beta``,
``alpha``, ``correlation`` for a flat benchmark), no down day (``sortino``), no
drawdown (``calmar``), a non-positive starting nav, or any value that does not
come out finite. A daily standard deviation below ``1e-12`` counts as zero, so a
curve growing by exactly 1% a day has volatility ``0.0`` and ``sharpe`` ``None``.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence

import numpy as np

# The one definition of P&L from the money put in. It lives in a numpy-free module so that
# `status` can use it without importing numpy; it is part of this module's contract.
from botctl.engine.pnl import pnl_since

TRADING_DAYS = 252
DAYS_PER_YEAR = 365.25
# Daily return standard deviations (and drawdowns) smaller than this are float noise.
_EPS = 1e-12

__all__ = [
    "DAYS_PER_YEAR",
    "TRADING_DAYS",
    "compute_metrics",
    "drawdown_series",
    "monthly_returns",
    "pnl_since",
]


def as_date(value: object) -> datetime.date:
    if isinstance(value, np.datetime64):
        day: datetime.date = value.astype("datetime64[D]").item()
        return day
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    raise TypeError(f"expected a date, got {type(value).__name__}")


def _as_array(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _finite(value: float | np.floating | None) -> float | None:
    """A plain float, or None when the value is missing, NaN or infinite."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _returns(nav: np.ndarray) -> np.ndarray:
    if nav.size < 2:
        return np.empty(0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns: np.ndarray = nav[1:] / nav[:-1] - 1.0
    return returns


def _years(dates: Sequence[object]) -> float:
    if len(dates) < 2:
        return 0.0
    return (as_date(dates[-1]) - as_date(dates[0])).days / DAYS_PER_YEAR


def drawdown_series(nav: np.ndarray | Sequence[float], invested: float | None = None) -> np.ndarray:
    """``nav / running max of nav - 1`` at every point (``<= 0``; same length as ``nav``).
    With ``invested`` (the money put in) the running max starts there, as the drawdown
    breaker's high-water mark does: a curve that never rose above it is measured from it."""
    values = _as_array(nav)
    if values.size == 0:
        return np.empty(0, dtype=np.float64)
    peak = np.maximum.accumulate(values)
    if invested is not None and math.isfinite(invested):
        peak = np.maximum(peak, float(invested))
    with np.errstate(divide="ignore", invalid="ignore"):
        return values / peak - 1.0


def _max_drawdown(nav: np.ndarray, invested: float | None = None) -> tuple[float | None, int | None]:
    """(max drawdown, its duration in rows from peak to recovery or to the end)."""
    if nav.size == 0:
        return None, None
    dd = drawdown_series(nav, invested)
    if not np.all(np.isfinite(dd)):
        return None, None
    trough = int(np.argmin(dd))
    depth = float(dd[trough])
    if depth > -_EPS:
        return 0.0, 0
    at_high = dd >= -_EPS
    # The peak is the last new high at or before the trough (row 0 when the curve starts
    # below the money put in and never got back to it).
    highs = np.flatnonzero(at_high[: trough + 1])
    peak = int(highs[-1]) if highs.size else 0
    after = np.flatnonzero(at_high[trough + 1 :])
    end = trough + 1 + int(after[0]) if after.size else nav.size - 1
    return depth, end - peak


def compute_metrics(
    dates: Sequence[datetime.date],
    nav: np.ndarray,
    *,
    benchmark_nav: np.ndarray | None = None,
    risk_free: float = 0.0,
    turnover_notional: float = 0.0,
    trades: int = 0,
    gross_exposure: np.ndarray | None = None,
    invested: float | None = None,
) -> dict[str, float | int | None]:
    """Performance metrics of a daily equity curve; see the module docstring for definitions."""
    with np.errstate(all="ignore"):
        return _compute(
            dates,
            nav,
            benchmark_nav=benchmark_nav,
            risk_free=risk_free,
            turnover_notional=turnover_notional,
            trades=trades,
            gross_exposure=gross_exposure,
            invested=invested,
        )


def _compute(
    dates: Sequence[datetime.date],
    nav: np.ndarray,
    *,
    benchmark_nav: np.ndarray | None,
    risk_free: float,
    turnover_notional: float,
    trades: int,
    gross_exposure: np.ndarray | None,
    invested: float | None,
) -> dict[str, float | int | None]:
    values = _as_array(nav)
    n = values.size
    if len(dates) != n:
        raise ValueError(f"dates has {len(dates)} entries but nav has {n}")
    bench = None if benchmark_nav is None else _as_array(benchmark_nav)
    if bench is not None and bench.size != n:
        raise ValueError(f"benchmark_nav has {bench.size} entries but nav has {n}")
    gross = None if gross_exposure is None else _as_array(gross_exposure)
    if gross is not None and gross.size != n:
        raise ValueError(f"gross_exposure has {gross.size} entries but nav has {n}")

    years = _years(dates)
    rf_d = float(risk_free) / TRADING_DAYS
    base = float(invested) if invested is not None else (float(values[0]) if n > 0 else math.nan)
    start_ok = n > 0 and math.isfinite(base) and base > 0

    # Growth, from the money put in.
    total_return: float | None = None
    cagr: float | None = None
    if start_ok:
        growth = float(values[-1] / base)
        total_return = _finite(growth - 1.0)
        if years > 0 and math.isfinite(growth):
            cagr = -1.0 if growth <= 0 else _finite(np.power(growth, 1.0 / years) - 1.0)

    # Return statistics.
    r = _returns(values)
    returns_ok = r.size > 0 and bool(np.all(np.isfinite(r)))
    volatility = sharpe = sortino = None
    std = None
    if returns_ok:
        x = r - rf_d
        mean_x = float(np.mean(x))
        if r.size >= 2:
            std = float(np.std(r, ddof=1))
            if std < _EPS:
                std = 0.0
            volatility = _finite(std * math.sqrt(TRADING_DAYS))
            if 0 < std < math.inf:
                sharpe = _finite(mean_x / std * math.sqrt(TRADING_DAYS))
        downside = float(np.sqrt(np.mean(np.minimum(x, 0.0) ** 2)))
        if downside >= _EPS:
            sortino = _finite(mean_x * TRADING_DAYS / (downside * math.sqrt(TRADING_DAYS)))

    # Drawdown.
    max_dd, max_dd_days = _max_drawdown(values, invested)
    calmar = None
    if cagr is not None and max_dd is not None and max_dd < 0:
        calmar = _finite(cagr / abs(max_dd))

    # Trading activity.
    turnover = None
    if n > 0 and years > 0:
        mean_nav = float(np.mean(values))
        if mean_nav > 0:
            turnover = _finite(float(turnover_notional) / mean_nav / years)
    exposure = None
    if gross is not None and n > 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            exposure = _finite(float(np.mean(gross / values)))

    out: dict[str, float | int | None] = {
        "total_return": total_return,
        "cagr": cagr,
        "volatility": volatility,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": max_dd,
        "max_drawdown_days": max_dd_days,
        "calmar": calmar,
        "turnover": turnover,
        "trades": int(trades),
        "exposure": exposure,
    }

    if bench is not None:
        out.update(_capm(r if returns_ok else None, _returns(bench), rf_d))
    return out


def _capm(r: np.ndarray | None, rb: np.ndarray, rf_d: float) -> dict[str, float | None]:
    alpha = beta = correlation = None
    if r is not None and r.size >= 2 and rb.size == r.size and np.all(np.isfinite(rb)):
        x = r - rf_d
        y = rb - rf_d
        std_x = float(np.std(x, ddof=1))
        std_y = float(np.std(y, ddof=1))
        if std_y >= _EPS:
            cov = float(np.sum((x - x.mean()) * (y - y.mean())) / (x.size - 1))
            beta = _finite(cov / (std_y * std_y))
            if beta is not None:
                alpha = _finite((float(np.mean(x)) - beta * float(np.mean(y))) * TRADING_DAYS)
            if std_x >= _EPS:
                # Clip float noise so a perfect fit reads exactly within [-1, 1].
                correlation = _finite(max(-1.0, min(1.0, cov / (std_x * std_y))))
    return {"alpha": alpha, "beta": beta, "correlation": correlation}


def monthly_returns(dates: Sequence[datetime.date], nav: np.ndarray) -> list[tuple[int, int, float]]:
    """``(year, month, return)`` for every calendar month in ``dates``, oldest first.

    A month's return is its last nav over the previous month's last nav, minus one;
    the first month is measured from the first nav of the curve (so a curve that
    starts mid-month gets a partial first month). A first month that holds only that
    first nav (a backtest's starting mark at the close before its first session) is
    not listed when later months follow: it is the base of the next month, with no
    return of its own. A month whose base nav is not positive has return ``NaN``.
    ``dates`` must be ascending.
    """
    values = _as_array(nav)
    if len(dates) != values.size:
        raise ValueError(f"dates has {len(dates)} entries but nav has {values.size}")
    out: list[tuple[int, int, float]] = []
    if values.size == 0:
        return out
    base = float(values[0])
    current: tuple[int, int] | None = None
    last = base
    for d, v in zip(dates, values.tolist()):
        day = as_date(d)
        key = (day.year, day.month)
        if current is not None and key != current:
            out.append((current[0], current[1], _month_return(last, base)))
            base = last
        current = key
        last = v
    assert current is not None
    out.append((current[0], current[1], _month_return(last, base)))
    if len(out) > 1 and values.size > 1 and (as_date(dates[0]).year, as_date(dates[0]).month) != \
            (as_date(dates[1]).year, as_date(dates[1]).month):
        out.pop(0)
    return out


def _month_return(end: float, base: float) -> float:
    if not (base > 0) or not math.isfinite(end):
        return math.nan
    return end / base - 1.0
