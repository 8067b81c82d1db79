"""Run a model's steps at one session row and return its target weights.

Pure and cheap: all the heavy lifting (rolling windows) happened once in Signals; here we
read one row. A backtest calls this for every rebalance row, live trading for the last row.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from botctl.spec import steps as st
from botctl.strategy.signals import Signals

SELECTORS = (st.SelectMomentum, st.SelectThreshold, st.SelectAll, st.WeighFixed)


class Decision(msgspec.Struct, frozen=True):
    """A model's targets at one row. `state` says why: active, gated (a when_* gate is
    closed), or empty (nothing passed the selection); the last two hold the fallback."""

    weights: dict[str, float]
    state: str
    reason: str = ""


def _fallback(steps: tuple[st.Step, ...], signals: Signals, row: int, state: str, reason: str) -> Decision:
    for step in steps:
        if isinstance(step, st.Fallback) and step.to != "cash":
            col = signals.columns[step.to]
            if not math.isnan(signals.bars.close[row, col]):
                return Decision({step.to: step.weight}, state, reason)
            return Decision({}, state, f"{reason}; fallback {step.to} has no price, holding cash")
    return Decision({}, state, reason)


def _passing(candidates: list[int], values: np.ndarray, minimum: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The candidate columns (in their order) whose value is known and above `minimum`
    (None: any known value), and those values."""
    cols = np.asarray(candidates, dtype=np.intp)
    picked = values[cols]
    keep = ~np.isnan(picked)
    if minimum is not None:
        keep &= picked > minimum
    return cols[keep], picked[keep]


def decide(steps: tuple[st.Step, ...], universe: tuple[str, ...], signals: Signals, row: int) -> Decision:
    symbols = signals.bars.symbols
    columns = signals.columns
    close = signals.bars.close[row]
    universe_columns = signals.column_array(universe)
    # The selection is done in numpy: a universe may hold thousands of symbols.
    candidates: list[int] = universe_columns[~np.isnan(close[universe_columns])].tolist()
    weights: dict[int, float] | None = None
    selected = False

    def ensure_weights() -> dict[int, float]:
        return weights if weights is not None else {c: 1.0 / len(candidates) for c in candidates} if candidates else {}

    for step in steps:
        if isinstance(step, st.WhenRegime):
            above = signals.regime_above[(step.benchmark, step.sma_days)][row]
            if math.isnan(above):
                return _fallback(steps, signals, row, "gated", f"{step.benchmark} has under {step.sma_days} sessions of history")
            if bool(above) != (step.is_ == "above"):
                return _fallback(steps, signals, row, "gated",
                                 f"{step.benchmark} is {'above' if above else 'below'} its {step.sma_days}-day average")
        elif isinstance(step, st.SelectMomentum):
            cols, values = _passing(candidates, signals.momentum(step.lookback_days, row), step.min_return)
            ranked = cols[np.lexsort((cols, -values))]  # by momentum, ties by universe column, deterministically
            candidates, selected = ranked[: step.top].tolist(), True
        elif isinstance(step, st.SelectThreshold):
            cols, _ = _passing(candidates, signals.momentum(step.lookback_days, row), step.min_return)
            candidates, selected = cols.tolist(), True
        elif isinstance(step, st.SelectAll):
            selected = True
        elif isinstance(step, st.WeighEqually):
            slots = step.slots or len(candidates)
            weights = {c: 1.0 / slots for c in candidates[:slots]}
        elif isinstance(step, st.WeighInverseVolatility):
            vol = signals.volatility[step.lookback_days][row]
            usable = [c for c in candidates if not math.isnan(vol[c]) and vol[c] > 0]
            total = sum(1.0 / vol[c] for c in usable)
            weights = {c: (1.0 / vol[c]) / total for c in usable} if usable else {}
        elif isinstance(step, st.WeighFixed):
            named = {columns[s]: w for s, w in step.weights.items() if not math.isnan(close[columns[s]])}
            weights = {c: w for c, w in named.items() if not selected or c in candidates}
            candidates, selected = list(weights), True
        elif isinstance(step, st.LimitWeight):
            weights = {c: min(w, step.max) for c, w in ensure_weights().items()}
        elif isinstance(step, st.ScaleLeverage):
            # Lever the book: weights of a fully invested book (sum 1) end up summing to
            # `gross`; a partly filled book (empty slots) keeps its cash share.
            weights = {c: w * step.gross for c, w in ensure_weights().items()}
        elif isinstance(step, st.LimitLeverage):
            weights = ensure_weights()
            gross = sum(abs(w) for w in weights.values())
            if gross > step.gross:
                weights = {c: w * step.gross / gross for c, w in weights.items()}
        elif isinstance(step, st.ScaleByRegime):
            above = signals.regime_above[(step.benchmark, step.sma_days)][row]
            # Without enough history we cannot tell the regime: take the more cautious size.
            factor = min(step.above, step.below) if math.isnan(above) else (step.above if above else step.below)
            weights = {c: w * factor for c, w in ensure_weights().items()}
        if selected and not candidates:
            return _fallback(steps, signals, row, "empty", "nothing passed the selection")
    final = ensure_weights()
    final = {c: w for c, w in final.items() if w > 0}
    if not final:
        return _fallback(steps, signals, row, "empty", "nothing passed the selection")
    return Decision({symbols[c]: float(w) for c, w in sorted(final.items())}, "active")


def account_targets(decisions: dict[str, Decision], budgets: dict[str, float]) -> dict[str, float]:
    """Combine model weights into account weights, each model scaled by its budget."""
    out: dict[str, float] = {}
    for name, decision in decisions.items():
        for symbol, weight in decision.weights.items():
            out[symbol] = out.get(symbol, 0.0) + budgets[name] * weight
    return out


__all__ = ["Decision", "decide", "account_targets"]
