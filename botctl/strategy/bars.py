"""Bars aligned as matrices (sessions x symbols), the shape the signal code and the engine use.

Built from the long frame the data adapters return. Prices are total-return adjusted by
default: every OHLC field is scaled by adj_close/close, so splits and dividends never look
like price moves (a 2:1 split is not a 50% loss) and returns include distributions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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


def bars_from_frame(frame: pl.DataFrame | pl.LazyFrame, symbols: tuple[str, ...], *,
                    basis: PriceBasis = "adjusted") -> Bars:
    """Align a long (symbol, date, open, close, adj_close) frame into session x symbol
    matrices: one sort of the dates, then each bar scattered to its (session, symbol) cell.
    Sessions are the dates any of `symbols` has a bar on; a cell with no bar is NaN.

    `frame` may be lazy (`file_data.scan_bars`): then only the five columns used are read, in
    batches scattered as they come, so the long frame is never held whole."""
    symbols = tuple(symbols)
    if not symbols:
        return Bars((), (), *(np.full((0, 0), np.nan) for _ in range(3)))
    # A symbol's column is its code in an enum of `symbols` (null for any other symbol): one
    # hash lookup per bar, where a string-to-integer mapping (replace_strict) builds a join.
    column = pl.col("symbol").cast(pl.Utf8).cast(pl.Enum(symbols), strict=False).to_physical()
    frame = frame.lazy()
    chosen = frame.filter(pl.col("symbol").cast(pl.Utf8).is_in(symbols))
    dates = chosen.select(pl.col("date").unique()).collect()["date"].sort()
    selected = frame.with_columns(column.alias(_COLUMN)).filter(pl.col(_COLUMN).is_not_null())
    if basis == "adjusted":
        factor = pl.col("adj_close") / pl.col("close")
        fields = (pl.col("open") * factor, pl.col("adj_close"), pl.col("close") / pl.col("adj_close"))
    else:
        fields = (pl.col("open"), pl.col("close"), pl.lit(1.0))
    names = ("open", "close", "as_traded")
    batches = selected.select(pl.col("date"), pl.col(_COLUMN),
                              *[f.cast(pl.Float64).alias(n) for f, n in zip(fields, names)])
    row_of = _session_rows(dates)
    out = {name: np.full((len(dates), len(symbols)), np.nan) for name in names}
    # (A polars without collect_batches gives it all as one batch.)
    for batch in batches.collect_batches() if hasattr(batches, "collect_batches") else (batches.collect(),):
        cells = row_of(batch["date"]) * len(symbols) + batch[_COLUMN].to_numpy()
        for name in names:
            out[name].reshape(-1)[cells] = batch[name].to_numpy()
    return Bars(tuple(dates.to_list()), symbols, out["open"], out["close"], out["as_traded"])


_COLUMN = "__botctl_column"  # a bar's symbol column, while aligning


def _session_rows(sessions: pl.Series) -> Callable[[pl.Series], np.ndarray]:
    """A function giving the row (index in the sorted `sessions`) of each date of a Series. A
    date not among them means the frame changed between the passes over it: ValueError."""
    days = sessions.to_physical().to_numpy().astype(np.int64)

    def unseen() -> ValueError:
        return ValueError("the bars changed while they were aligned: a date the first pass did not see")

    if sessions.dtype != pl.Date or not len(days):
        def searched(dates: pl.Series) -> np.ndarray:
            values = dates.to_physical().to_numpy()
            rows = np.searchsorted(days, values)
            if len(rows) and (rows.max() >= len(days) or (days[rows] != values).any()):
                raise unseen()
            return rows
        return searched
    # Dates are whole days: a table from day number to row answers each in one lookup.
    table = np.full(days[-1] - days[0] + 1, -1, dtype=np.int64)
    table[days - days[0]] = np.arange(len(days))

    def looked_up(dates: pl.Series) -> np.ndarray:
        offsets = dates.to_physical().to_numpy().astype(np.int64) - days[0]
        if len(offsets) and (offsets.min() < 0 or offsets.max() >= len(table)):
            raise unseen()
        rows: np.ndarray = table[offsets]
        if len(rows) and rows.min() < 0:
            raise unseen()
        return rows
    return looked_up


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
    that overlap rows first..last."""
    out = []
    holes = np.isnan(bars.close)
    holed = holes.any(axis=0)  # a symbol without a missing bar has no gap: most of a big universe
    where: dict[str, int] = {}
    for i, symbol in enumerate(bars.symbols):
        where.setdefault(symbol, i)
    for symbol in symbols if symbols is not None else bars.symbols:
        column = where[symbol] if symbol in where else bars.column(symbol)
        if not holed[column]:
            continue
        missing = holes[:, column]
        present = np.flatnonzero(~missing)
        if present.size < 2:
            continue
        inner = missing[present[0]: present[-1] + 1]
        # starts and ends of the runs of missing rows, as offsets from the first bar
        edges = np.diff(np.concatenate([[0], inner.astype(np.int8), [0]]))
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            first, last = present[0] + start, present[0] + stop - 1
            if stop - start > min_sessions and (rows is None or (first <= rows[1] and last >= rows[0])):
                out.append(Gap(symbol, bars.dates[first], bars.dates[last], int(stop - start)))
    return out


def describe_gap(gap: Gap) -> str:
    return (f"{gap.symbol} has no bars for {gap.sessions} sessions ({gap.first}..{gap.last}) while other symbols "
            "do: its orders cannot fill and its price is carried from before")
