"""Everything research takes from the backtest runtime, in one place: the public
`run_backtest` and `summary`, and the period rule (`session_rows`). When the runtime's
internals change, this module is the one to adapt."""

from __future__ import annotations

from datetime import date
from typing import Any

from botctl.runtime.backtest import DEFAULT_START, BacktestResult, rows_for, run_backtest, summary
from botctl.strategy.bars import Bars

__all__ = ["DEFAULT_START", "BacktestResult", "model_metrics", "run_backtest", "session_rows"]


def session_rows(bars: Bars, start: date | None, end: date | None) -> tuple[int, int]:
    """The first and last bar rows a backtest over start..end trades (UsageError/DataError when
    the data cannot serve the period)."""
    return rows_for(bars, start, end)


def model_metrics(result: BacktestResult, model: str, risk_free: float) -> dict[str, Any]:
    """A model's figures exactly as `backtest --json` gives them under "models"."""
    metrics: dict[str, Any] = summary(result, risk_free=risk_free)["models"][model]
    return metrics
