"""P&L from the money put in. Pure, and free of numpy so `status` starts fast; re-exported
by engine.metrics, whose total return uses the same definition."""

from __future__ import annotations

import math


def pnl_since(nav: float | None, invested: float | None) -> tuple[float | None, float | None]:
    """(P&L, return) of a NAV against the money put in: the one definition of "total P&L" and
    "total return" that the backtest, the replay summary, ``status`` and the dashboard show.

    ``invested`` is the starting cash plus deposits (botctl's accounts have no deposits, so
    the starting cash; a journal's first NAV mark is that starting cash, marked before the
    first trade). None where either is unknown or the base is not positive."""
    if nav is None or invested is None or not math.isfinite(nav) or not math.isfinite(invested):
        return None, None
    pnl = float(nav) - float(invested)
    return pnl, (pnl / invested if invested > 0 else None)
