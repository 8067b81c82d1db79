"""bars_from_frame scatters a long frame into (session x symbol) matrices: the same matrices
as a pivot per field, on random data with missing bars, unsorted rows and absent symbols."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from botctl.strategy.bars import bars_from_frame


def pivoted(frame: pl.DataFrame, symbols: tuple[str, ...], basis: str) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """The alignment written plainly: each raw field pivoted onto the sorted dates, adjusted
    afterwards cell by cell."""
    dates = sorted(set(frame.filter(pl.col("symbol").is_in(list(symbols)))["date"].to_list()))
    raw = {}
    for field in ("open", "close", "adj_close"):
        wide = pl.DataFrame({"date": dates}).join(frame.pivot(on="symbol", index="date", values=field), on="date", how="left")
        raw[field] = np.column_stack([wide[s].to_numpy().astype(np.float64) if s in wide.columns
                                      else np.full(len(dates), np.nan) for s in symbols])
    o, c, a = raw["open"], raw["close"], raw["adj_close"]
    if basis == "adjusted":
        return dates, o * (a / c), a, c / a
    return dates, o, c, np.where(np.isnan(c), np.nan, 1.0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("basis", ["adjusted", "raw"])
def test_the_scatter_gives_the_matrices_of_a_pivot(seed, basis):
    rng = np.random.default_rng(seed)
    names = [f"S{i}" for i in range(rng.integers(1, 30))]
    days = [date(2020, 1, 1) + timedelta(days=int(d)) for d in np.sort(rng.choice(3000, size=300, replace=False))]
    rows = [(s, d) for s in names for d in days if rng.random() > 0.2]  # missing bars
    rows = [rows[i] for i in rng.permutation(len(rows))]  # any order
    close = rng.uniform(1, 200, len(rows))
    frame = pl.DataFrame({
        "symbol": [s for s, _ in rows], "date": [d for _, d in rows], "open": rng.uniform(1, 200, len(rows)),
        "close": close, "adj_close": close * rng.uniform(0.5, 1.0, len(rows)),
    })
    symbols = tuple(rng.permutation(names + ["ABSENT"]).tolist())[: max(1, len(names) // 2 + 1)]
    bars = bars_from_frame(frame, symbols, basis=basis)
    dates, opens, closes, as_traded = pivoted(frame, symbols, basis)
    assert list(bars.dates) == dates and bars.symbols == symbols
    np.testing.assert_array_equal(bars.open, opens)
    np.testing.assert_array_equal(bars.close, closes)
    np.testing.assert_array_equal(bars.as_traded, as_traded)


def test_no_symbols_give_empty_matrices():
    frame = pl.DataFrame({"symbol": ["A"], "date": [date(2024, 1, 2)], "open": [1.0], "close": [1.0], "adj_close": [1.0]})
    bars = bars_from_frame(frame, ())
    assert bars.open.shape == (0, 0) and bars.dates == ()


@pytest.mark.parametrize("extra_day", [date(2024, 1, 3), date(2023, 12, 29), date(2024, 2, 1)])
def test_a_frame_that_changes_between_its_passes_is_an_error_not_a_misplaced_bar(extra_day):
    """A lazy frame is read twice (the sessions, then the bars): a date that appears only in
    the second reading (the file replaced in between) has no row, and must not land in one."""
    first = pl.DataFrame({"symbol": ["A", "A"], "date": [date(2024, 1, 2), date(2024, 1, 4)], "open": [1.0, 2.0],
                          "close": [1.0, 2.0], "adj_close": [1.0, 2.0]})
    second = pl.concat([first, first.head(1).with_columns(pl.lit(extra_day).alias("date"))])
    readings = iter([first, second])
    changing = pl.LazyFrame(schema=first.schema).map_batches(lambda _: next(readings), schema=first.schema)
    with pytest.raises(ValueError, match="changed while they were aligned"):
        bars_from_frame(changing, ("A",))
