"""Signals computed with polars over closed bars only.

Every signal at row t is a function of closes at rows <= t (rolling windows and backward
shifts only), so a backtest that reads row t and a live process that reads its last row make
the same decision, and no future bar can leak into a past one (tests/unit/test_lookahead.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import numpy as np
import polars as pl

from botctl.spec import steps as st
from botctl.strategy import scores
from botctl.strategy.bars import Bars
from botctl.strategy.identity import IdentityCache


class Signals:
    """The signal matrices a set of steps needs, computed once for all sessions."""

    def __init__(self, bars: Bars, steps: tuple[st.Step, ...],
                 external_scores: Mapping[str, np.ndarray] | None = None) -> None:
        self.bars = bars
        # Point-in-time external score matrices (signal kind -> sessions x symbols, aligned with
        # `bars`, NaN = no usable signal) that `score_signal` steps read.
        self.external_scores = external_scores
        self._scores: dict[tuple[st.Step, ...], np.ndarray] = {}
        self._score_keys: IdentityCache[tuple[st.Step, ...]] = IdentityCache()
        self.columns = {symbol: i for i, symbol in enumerate(bars.symbols)}
        self._column_arrays: dict[tuple[str, ...], np.ndarray] = {}
        self._column_maps: dict[tuple[str, ...], dict[str, int]] = {}
        self._rows = {day: i for i, day in enumerate(bars.dates)}
        self.volatility: dict[int, np.ndarray] = {}
        self.regime_above: dict[tuple[str, int], np.ndarray] = {}
        self._frame: pl.DataFrame | None = None
        for step in steps:
            if isinstance(step, st.WeighInverseVolatility) and step.lookback_days not in self.volatility:
                self.volatility[step.lookback_days] = _volatility(self._closes, step.lookback_days)
            elif isinstance(step, (st.WhenRegime, st.ScaleByRegime)):
                key = (step.benchmark, step.sma_days)
                if key not in self.regime_above:
                    self.regime_above[key] = _above_sma(pl.Series(step.benchmark, bars.close[:, self.columns[step.benchmark]]),
                                                        step.sma_days)

    @property
    def _closes(self) -> pl.DataFrame:
        """The closes as a frame, one column per symbol, made when a rolling signal needs it."""
        if self._frame is None:
            close = np.asfortranarray(self.bars.close)  # each column contiguous: one copy per column
            self._frame = pl.DataFrame([pl.Series(s, close[:, i]) for i, s in enumerate(self.bars.symbols)],
                                       schema={s: pl.Float64 for s in self.bars.symbols})
        return self._frame


    def column_array(self, symbols: tuple[str, ...]) -> np.ndarray:
        """The matrix columns of `symbols`, in their order, as an index array (kept per tuple:
        a cycle reads the same universe's columns every session)."""
        cached = self._column_arrays.get(symbols)
        if cached is None:
            cached = self._column_arrays[symbols] = np.array([self.columns[s] for s in symbols], dtype=np.intp)
        return cached

    def account_columns(self, symbols: tuple[str, ...]) -> dict[str, int]:
        """{symbol: matrix column} of `symbols` only (kept per tuple, like column_array)."""
        cached = self._column_maps.get(symbols)
        if cached is None:
            cached = self._column_maps[symbols] = {s: self.columns[s] for s in symbols}
        return cached

    def momentum(self, lookback: int, row: int) -> np.ndarray:
        """Each symbol's total return over the `lookback` sessions to bar `row`, one value per
        matrix column; NaN until a symbol has that history. A ratio of two rows needs no
        rolling window, so it is computed for the rows a decision reads, not kept for every
        session: a sessions x symbols matrix is tens of megabytes at a few thousand symbols,
        and writing it cost more than every read of it."""
        close = self.bars.close
        if row < lookback:
            return np.full(close.shape[1], np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio: np.ndarray = close[row] / close[row - lookback] - 1.0
        return ratio

    def row_of(self, day: date) -> int:
        """Row of session `day`, or of the last session before it (bars.index_of), by a lookup:
        a signal book asks it for every open position every session."""
        found = self._rows.get(day)
        return found if found is not None else self.bars.index_of(day)

    def score(self, steps: tuple[st.Step, ...]) -> np.ndarray:
        """A signal book's combined score (sessions x symbols): the weighted sum of its score_*
        steps, computed once per set of steps."""
        key = self._score_keys.get(lambda: tuple(s for s in steps if isinstance(s, st.SCORE_STEPS)), steps)
        cached = self._scores.get(key)
        if cached is None:
            shape = self.bars.close.shape
            parts = []
            for step in key:
                built = scores.component(self._closes, step)
                if built is None and isinstance(step, st.ScoreSignal):
                    parts.append((step.weight, scores.external_part(self.external_scores, step, shape), step.optional))
                elif built is not None:
                    parts.append((getattr(step, "weight", 1.0), built, False))
            cached = self._scores[key] = scores.combine(shape, parts)
        return cached


def _volatility(closes: pl.DataFrame, lookback: int) -> np.ndarray:
    returns = closes.select(pl.all() / pl.all().shift(1) - 1.0)
    return returns.select(pl.all().rolling_std(window_size=lookback)).to_numpy()


def _above_sma(close: pl.Series, days: int) -> np.ndarray:
    """1.0 where close > its `days`-session simple average, 0.0 below, NaN before enough history."""
    # Missing bars (NaN, e.g. before a fund's listing) become nulls, so the average is unknown
    # until `days` real closes exist, instead of NaN comparisons reading as "below".
    c = pl.col("c").fill_nan(None)
    sma = c.rolling_mean(window_size=days)
    frame = pl.DataFrame({"c": close}).select(
        pl.when(sma.is_null() | c.is_null()).then(None).otherwise((c > sma).cast(pl.Float64)).alias("above")
    )
    return frame["above"].to_numpy().astype(np.float64)
