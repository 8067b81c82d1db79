"""The dashboard's numbers, computed from plain series: period returns against the benchmark,
drawdown, and trade statistics by round trip. Pure (no store, no clock), so tests can pin them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import cast

import numpy as np

from botctl.engine.metrics import compute_metrics, drawdown_series, pnl_since
from botctl.engine.roundtrips import RoundTripLedger, TradeFill


@dataclass(frozen=True)
class PeriodReturn:
    label: str
    portfolio: float | None
    benchmark: float | None

    @property
    def excess(self) -> float | None:
        if self.portfolio is None or self.benchmark is None:
            return None
        return self.portfolio - self.benchmark


@dataclass(frozen=True)
class Performance:
    periods: list[PeriodReturn]
    alpha: float | None  # annualised CAPM alpha against the benchmark
    beta: float | None
    drawdown: float | None  # now, from the peak of the series (<= 0)
    max_drawdown: float | None


def _ret(end: float, base: float) -> float | None:
    if base is None or not math.isfinite(base) or base <= 0 or not math.isfinite(end):
        return None
    return end / base - 1.0


def _base_index(dates: list[date], key) -> int | None:
    """Index of the last mark before the period that contains the newest date, or the first
    mark when the series starts inside the period."""
    current = key(dates[-1])
    for i in range(len(dates) - 1, -1, -1):
        if key(dates[i]) != current:
            return i
    return 0


def performance(dates: list[date], nav: list[float], bench: list[float], invested: float | None = None) -> Performance:
    """Day, month-to-date, year-to-date and total returns of `nav` and `bench` (aligned with
    `dates`; NaN where the benchmark has no bar), the CAPM alpha and the drawdown now.

    Total return and drawdown are measured from the money put in (`invested`; by default the
    first mark, which a journal writes at the starting cash before the first trade), by the
    same definitions as backtests (engine.metrics)."""
    if not nav:
        return Performance([], None, None, None, None)
    invested = nav[0] if invested is None else invested
    values = np.asarray(nav, dtype=np.float64)
    b = np.asarray(bench, dtype=np.float64) if len(bench) == len(nav) else np.full(len(nav), np.nan)
    bases = {
        "Day": len(nav) - 2 if len(nav) > 1 else None,
        "MTD": _base_index(dates, lambda d: (d.year, d.month)),
        "YTD": _base_index(dates, lambda d: d.year),
        "Total": 0,
    }
    periods = [PeriodReturn(label, _ret(values[-1], values[i]) if i is not None else None,
                            _ret(b[-1], b[i]) if i is not None else None)
               for label, i in bases.items()]
    periods[-1] = PeriodReturn("Total", pnl_since(float(values[-1]), invested)[1], periods[-1].benchmark)
    alpha = beta = None
    usable = np.isfinite(b)
    if usable.sum() >= 3:
        metrics = compute_metrics([d for d, ok in zip(dates, usable) if ok], values[usable], benchmark_nav=b[usable])
        alpha, beta = metrics.get("alpha"), metrics.get("beta")
    dd = drawdown_series(values, invested)
    finite = dd[np.isfinite(dd)]
    return Performance(periods, alpha, beta, float(dd[-1]) if math.isfinite(dd[-1]) else None,
                       float(finite.min()) if finite.size else None)


def rebased(values: list[float], to: float = 100.0) -> list[float]:
    """The series scaled so its first finite value is `to` (NaN stays NaN)."""
    first = next((v for v in values if math.isfinite(v) and v > 0), None)
    if first is None:
        return [math.nan] * len(values)
    return [v / first * to if math.isfinite(v) else math.nan for v in values]


@dataclass
class TradeStats:
    """Round trips closed so far (engine.roundtrips: flat to flat, FIFO lots), with their hold
    time in days from the entering fill to the one that made the position flat."""

    trades: int = 0
    wins: int = 0
    hold_days_total: float = 0.0
    best: tuple[float, str, float] | None = None  # (pnl, symbol, return on cost)
    worst: tuple[float, str, float] | None = None

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None

    @property
    def avg_hold_days(self) -> float | None:
        return self.hold_days_total / self.trades if self.trades else None


@dataclass
class TradeBook:
    """Fills in journal order fed to a round-trip ledger; keeps running statistics so a
    refresh only has to read the fills it has not seen."""

    last_id: int = 0
    scope: tuple[str, ...] = ()  # the runs whose fills it has read (see data.Source)
    ledger: RoundTripLedger = field(default_factory=RoundTripLedger)
    stats: TradeStats = field(default_factory=TradeStats)

    def add(self, fill_id: int, symbol: str, side: str, qty: float, price: float, day: float) -> None:
        """`day` is the fill time in days (any epoch, e.g. a Julian day)."""
        self.last_id = max(self.last_id, fill_id)
        for trip in self.ledger.add(TradeFill(symbol, side, qty, price, day)):
            s = self.stats
            s.trades += 1
            s.wins += trip.pnl > 0
            s.hold_days_total += cast(float, trip.exit_at) - cast(float, trip.entry_at)  # the days it was fed
            trade = (trip.pnl, symbol, trip.ret)
            if s.best is None or trip.pnl > s.best[0]:
                s.best = trade
            if s.worst is None or trip.pnl < s.worst[0]:
                s.worst = trade
