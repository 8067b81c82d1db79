"""Bars aligned as matrices (sessions x symbols), the shape the signal code and the engine use.

Built from the long frame the data adapters return. Prices are total-return adjusted by
default: every OHLC field is scaled by adj_close/close, so splits and dividends never look
like price moves (a 2:1 split is not a 50% loss) and returns include distributions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from itertools import compress

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
    """Align a long (symbol, date, open, close, adj_close) frame into session x symbol
    matrices: one sort of the dates, then each bar scattered to its (session, symbol) cell.
    Sessions are the dates any of `symbols` has a bar on; a cell with no bar is NaN."""
    symbols = tuple(symbols)
    frame = frame.filter(pl.col("symbol").is_in(list(symbols)))
    frame = frame.with_columns((pl.col("close") / pl.col("adj_close") if basis == "adjusted" else pl.lit(1.0))
                               .alias("as_traded"))
    if basis == "adjusted":
        factor = pl.col("adj_close") / pl.col("close")
        frame = frame.with_columns((pl.col("open") * factor).alias("open"), pl.col("adj_close").alias("close"))
    dates = frame["date"].unique().sort()
    rows = dates.search_sorted(frame["date"]).to_numpy().astype(np.int64)
    columns = frame["symbol"].replace_strict(list(symbols), list(range(len(symbols))), return_dtype=pl.Int64,
                                             default=-1).to_numpy().astype(np.int64)
    out = {}
    for field in ("open", "close", "as_traded"):
        matrix = np.full((len(dates), len(symbols)), np.nan)
        matrix[rows, columns] = frame[field].cast(pl.Float64).to_numpy()
        out[field] = matrix
    return Bars(tuple(dates.to_list()), symbols, out["open"], out["close"], out["as_traded"])


def row_values(row: np.ndarray, symbols: Sequence[str], columns: Sequence[int] | np.ndarray) -> dict[str, float]:
    """{symbol: value} of one matrix row at `columns` (one per symbol), NaN cells left out.
    Done in numpy: a cycle builds such dicts over every symbol of the account each session."""
    values = row[np.asarray(columns, dtype=np.intp)]
    keep = ~np.isnan(values)
    if keep.all():  # the common case: every symbol has a bar
        return dict(zip(symbols, values.tolist()))
    return dict(zip(compress(symbols, keep.tolist()), values[keep].tolist()))


class RowValues(Mapping[str, float]):
    """{symbol: value} of one matrix row, read on demand (NaN cells are absent): for a
    mapping a cycle builds every session and reads a few symbols of, like the as-traded
    factors of the orders that fill."""

    __slots__ = ("_row", "_columns")

    def __init__(self, row: np.ndarray, columns: Mapping[str, int]) -> None:
        self._row, self._columns = row, columns

    def __getitem__(self, symbol: str) -> float:
        value = float(self._row[self._columns[symbol]])
        if math.isnan(value):
            raise KeyError(symbol)
        return value

    def __iter__(self) -> Iterator[str]:
        return (s for s, c in self._columns.items() if not math.isnan(self._row[c]))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def forward_fill(values: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Fill NaNs down each column with the last value above, starting from `seed`."""
    stacked = np.vstack([seed, values])
    rows = np.where(np.isnan(stacked), 0, np.arange(len(stacked))[:, None])
    np.maximum.accumulate(rows, axis=0, out=rows)
    return stacked[rows, np.arange(stacked.shape[1])][1:]


# A symbol silent for more sessions than this while others trade is worth a warning: its
# orders cannot fill and its price is carried stale.
GAP_SESSIONS = 5


class Gap(msgspec.Struct, frozen=True):
    symbol: str
    first: date  # first session without a bar
    last: date  # last session without a bar
    sessions: int


def gaps(bars: Bars, symbols: Iterable[str] | None = None, *, min_sessions: int = GAP_SESSIONS, rows: tuple[int, int] | None = None) -> list[Gap]:
    """Runs of more than `min_sessions` sessions with no bar for a symbol between its first
    and last bar (before it is listed or after it stops is not a gap). With `rows`, only gaps
    that overlap rows first..last. Found for every symbol at once: a universe may hold thousands."""
    names = list(symbols) if symbols is not None else list(bars.symbols)
    if not names or not len(bars.dates):
        return []
    close = bars.close if names == list(bars.symbols) else bars.close[:, [bars.column(s) for s in names]]
    missing = np.isnan(close)
    some = np.flatnonzero(missing.any(axis=0))  # only a symbol with a missing bar can have a gap
    if not len(some):
        return []
    names, missing = [names[i] for i in some.tolist()], missing[:, some]
    present = ~missing
    index = np.arange(len(bars.dates))[:, None]
    first = np.where(present.any(axis=0), present.argmax(axis=0), len(bars.dates))
    last = len(bars.dates) - 1 - present[::-1].argmax(axis=0)
    inner = (missing & (index >= first) & (index <= last)).astype(np.int8)
    # per symbol (column-major), the rows where a run of missing bars starts and where it ends
    edges = np.diff(np.concatenate([np.zeros((1, len(names)), np.int8), inner, np.zeros((1, len(names)), np.int8)]),
                    axis=0).T
    columns, starts = np.nonzero(edges == 1)
    _, stops = np.nonzero(edges == -1)
    out = []
    for column, start, stop in zip(columns.tolist(), starts.tolist(), stops.tolist()):
        if stop - start > min_sessions and (rows is None or (start <= rows[1] and stop - 1 >= rows[0])):
            out.append(Gap(names[column], bars.dates[start], bars.dates[stop - 1], stop - start))
    return out


def describe_gap(gap: Gap) -> str:
    return (f"{gap.symbol} has no bars for {gap.sessions} sessions ({gap.first}..{gap.last}) while other symbols "
            "do: its orders cannot fill and its price is carried from before")
