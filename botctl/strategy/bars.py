"""Bars aligned as matrices (sessions x symbols), the shape the signal code and the engine use.

Built from the long frame the data adapters return. Prices are total-return adjusted by
default: every OHLC field is scaled by adj_close/close, so splits and dividends never look
like price moves (a 2:1 split is not a 50% loss) and returns include distributions.
"""

from __future__ import annotations

from datetime import date

import msgspec
import numpy as np
import polars as pl

PriceBasis = str  # "adjusted" | "raw"


class Bars(msgspec.Struct, frozen=True):
    dates: tuple[date, ...]
    symbols: tuple[str, ...]
    open: np.ndarray  # float64 [session, symbol]; NaN where a symbol has no bar
    close: np.ndarray
    # close/adj_close per [session, symbol]: times an adjusted price of that session gives the
    # price that traded (None when unknown, e.g. bars built by hand).
    as_traded: np.ndarray | None = None

    def index_of(self, day: date) -> int:
        """Row of `day`, or of the last session before it (-1 when `day` precedes the data)."""
        import bisect

        return bisect.bisect_right(self.dates, day) - 1

    def column(self, symbol: str) -> int:
        return self.symbols.index(symbol)

    def until(self, row: int) -> Bars:
        """Only the bars up to and including `row`: what live trading would have known."""
        return Bars(self.dates[: row + 1], self.symbols, self.open[: row + 1], self.close[: row + 1],
                    None if self.as_traded is None else self.as_traded[: row + 1])


def bars_from_frame(frame: pl.DataFrame, symbols: tuple[str, ...], *, basis: PriceBasis = "adjusted") -> Bars:
    """Pivot a long (symbol, date, open, close, adj_close) frame into aligned matrices."""
    frame = frame.filter(pl.col("symbol").is_in(list(symbols)))
    frame = frame.with_columns((pl.col("close") / pl.col("adj_close") if basis == "adjusted" else pl.lit(1.0))
                               .alias("as_traded"))
    if basis == "adjusted":
        factor = pl.col("adj_close") / pl.col("close")
        frame = frame.with_columns((pl.col("open") * factor).alias("open"), pl.col("adj_close").alias("close"))
    dates = frame.select(pl.col("date").unique().sort())["date"]
    out = {}
    for field in ("open", "close", "as_traded"):
        wide = frame.pivot(on="symbol", index="date", values=field).sort("date")
        wide = pl.DataFrame({"date": dates}).join(wide, on="date", how="left")
        out[field] = np.column_stack(
            [wide[s].to_numpy().astype(np.float64) if s in wide.columns else np.full(len(dates), np.nan) for s in symbols]
        ) if symbols else np.empty((len(dates), 0))
    return Bars(tuple(dates.to_list()), tuple(symbols), out["open"], out["close"], out["as_traded"])


def forward_fill(values: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Fill NaNs down each column with the last value above, starting from `seed`."""
    stacked = np.vstack([seed, values])
    rows = np.where(np.isnan(stacked), 0, np.arange(len(stacked))[:, None])
    np.maximum.accumulate(rows, axis=0, out=rows)
    return stacked[rows, np.arange(stacked.shape[1])][1:]
