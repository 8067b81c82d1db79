"""Write botctl/data/example_signals.csv, the shipped example of a recorded signal file.

    .venv/bin/python scripts/make_example_signals.py

Deterministic: derived only from the bundled bars (botctl/data/etf_daily.parquet), so running it
again writes the same file. The signals are NOT market data from any vendor: they stand in for
one so that a strategy that reads external signals has something to backtest offline.

- kind `flow`: every Friday session (or the last session of the week), for each of the 11 sector
  ETFs, the 20-session return divided by its 20-session volatility, computed from closes up to
  and including that session; ts_event is that session's close; expires seven days later (when the next one is out).
- kind `insider`: on the last session of each month, for each sector ETF, +1 (long) or -1
  (short) by whether its 60-session return beat SPY's; ts_event the session's close, no expiry.

Every score uses only bars at or before its ts_event, so the file has no look-ahead of its own.
"""

from __future__ import annotations

import csv
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from botctl.adapters.calendar import sessions  # noqa: E402
from botctl.strategy.bars import bars_from_frame  # noqa: E402

SECTORS = ("XLB", "XLC", "XLE", "XLF", "XLI", "XLK", "XLP", "XLRE", "XLU", "XLV", "XLY")
START, END = date(2023, 1, 1), date(2024, 12, 31)
OUT = ROOT / "botctl" / "data" / "example_signals.csv"


def main() -> None:
    frame = pl.read_parquet(ROOT / "botctl" / "data" / "etf_daily.parquet")
    bars = bars_from_frame(frame, ("SPY", *SECTORS))
    closes_at = {s.day: s.close for s in sessions(START - timedelta(days=10), END + timedelta(days=10))}
    rows = []
    dates = bars.dates
    for r, day in enumerate(dates):
        if not START <= day <= END or r < 61 or day not in closes_at:
            continue
        nxt = dates[r + 1] if r + 1 < len(dates) else None
        at = closes_at[day].strftime("%Y-%m-%dT%H:%M:%SZ")
        week_end = nxt is None or nxt.isocalendar()[1] != day.isocalendar()[1]
        month_end = nxt is None or nxt.month != day.month
        for symbol in SECTORS:
            c = bars.close[: r + 1, bars.column(symbol)]
            if np.isnan(c[-61:]).any():
                continue
            if week_end:
                rets = np.diff(np.log(c[-21:]))
                score = float(rets.sum() / (rets.std(ddof=1) * np.sqrt(20)))
                expires = (closes_at[day] + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
                rows.append((f"flow-{symbol}-{day}", at, symbol, "flow", f"{score:.4f}", "", expires))
            if month_end:
                spy = bars.close[: r + 1, bars.column("SPY")]
                beat = c[-1] / c[-61] > spy[-1] / spy[-61]
                rows.append((f"insider-{symbol}-{day}", at, symbol, "insider", "1", "long" if beat else "short", ""))
    with open(OUT, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("id", "ts_event", "symbol", "kind", "score", "direction", "expires_at"))
        writer.writerows(rows)
    print(f"wrote {len(rows)} signals to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
