"""Signal-book scores: built-in bar signals computed with polars over closed bars, combined with
weights into one score matrix (sessions x symbols) per model. Pure.

Like botctl.strategy.signals, each value at row t reads closes at rows <= t only (backward
shifts and trailing windows), so a backtest reading row t and a live process reading its last
row agree, and no later bar can change an earlier score.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from botctl.spec import steps as st


def breakout(closes: pl.DataFrame, lookback: int) -> np.ndarray:
    """Close over the highest close of the previous `lookback` sessions, less 1."""
    prior_high = pl.all().fill_nan(None).shift(1).rolling_max(window_size=lookback)
    return _nan(closes.select(pl.all().fill_nan(None) / prior_high - 1.0))


def momentum(closes: pl.DataFrame, lookback: int) -> np.ndarray:
    return _nan(closes.select(pl.all().fill_nan(None) / pl.all().fill_nan(None).shift(lookback) - 1.0))


def sma_distance(closes: pl.DataFrame, days: int) -> np.ndarray:
    c = pl.all().fill_nan(None)
    return _nan(closes.select(c / c.rolling_mean(window_size=days) - 1.0))


def rsi(closes: pl.DataFrame, days: int) -> np.ndarray:
    """(RSI - 50) / 50 with simple `days`-session averages of gains and losses (Cutler's RSI:
    no seed value, so it depends on the window alone); 0 when the window had no move at all."""
    change = pl.all().fill_nan(None).diff()
    gains = closes.select(change.clip(lower_bound=0.0).rolling_mean(window_size=days))
    losses = closes.select((-change).clip(lower_bound=0.0).rolling_mean(window_size=days))
    g, loss = _nan(gains), _nan(losses)
    total = g + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(total > 0, (g - loss) / total, 0.0)  # = (RSI - 50) / 50
    return np.where(np.isnan(total), np.nan, scaled)


def _nan(frame: pl.DataFrame) -> np.ndarray:
    """Nulls (too little history, missing bars) become NaN: no usable signal. (polars gives a
    float column's nulls as NaN already; filling them first would copy the frame again.)"""
    out = frame.to_numpy()
    return out if out.dtype == np.float64 else frame.fill_null(float("nan")).to_numpy().astype(np.float64)


def component(closes: pl.DataFrame, step: st.Step) -> np.ndarray | None:
    """The matrix of one built-in score step (None for an external `score_signal`)."""
    if isinstance(step, st.ScoreBreakout):
        return breakout(closes, step.lookback_days)
    if isinstance(step, st.ScoreMomentum):
        return momentum(closes, step.lookback_days)
    if isinstance(step, st.ScoreSmaDistance):
        return sma_distance(closes, step.sma_days)
    if isinstance(step, st.ScoreRsi):
        return rsi(closes, step.days)
    return None


def combine(shape: tuple[int, int], parts: list[tuple[float, np.ndarray, bool]]) -> np.ndarray:
    """Weighted sum of (weight, matrix, optional) parts. A NaN in a required part leaves the
    cell without a score (NaN); an optional part's NaN counts as 0."""
    # Summed in the parts' own memory order (polars gives column-major matrices), then made
    # row-major once: a decision reads one row per session.
    total = None
    for weight, matrix, optional in parts:
        part = np.nan_to_num(matrix, nan=0.0) if optional else matrix
        if total is None:
            total = np.multiply(part, weight)
        elif weight == 1.0:
            total += part
        else:
            total += weight * part
    return np.zeros(shape) if total is None else np.ascontiguousarray(total)


def external_part(external: Mapping[str, np.ndarray] | None, step: st.ScoreSignal,
                  shape: tuple[int, int]) -> np.ndarray:
    """The external score matrix of `step.kind`, or all-NaN when no feed supplied it (so a
    required external signal means no candidates, never a made-up score)."""
    matrix = None if external is None else external.get(step.kind)
    if matrix is None:
        return np.full(shape, np.nan)
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != shape:
        raise ValueError(f"external signal {step.kind!r} has shape {matrix.shape}, the bars {shape}")
    return matrix
