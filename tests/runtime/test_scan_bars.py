"""scan_bars checks bars as load_bars does without holding them: the same one-line refusal for
each kind of bad input (parquet, CSV, a folder of both), and for good input the same matrices
once aligned, whatever the files' order."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from botctl.adapters import file_data
from botctl.adapters.file_data import available_symbols, load_bars, scan_bars
from botctl.errors import DataError
from botctl.strategy.bars import bars_from_frame

SYMBOLS = ("AAA", "BBB", "CCC")


@pytest.fixture(autouse=True, params=["scanned", "read whole"])
def parquet_reading(request, monkeypatch):
    """Every test twice: with each parquet file only scanned by scan_bars (as a large one
    is), and read whole (as a small one is)."""
    monkeypatch.setattr(file_data, "SCAN_BYTES", 0 if request.param == "scanned" else 1 << 40)
    return request.param


def bars(days: int = 40) -> pl.DataFrame:
    rng = np.random.default_rng(3)
    dates = [date(2021, 1, 4) + timedelta(days=d) for d in range(days)]
    n = len(SYMBOLS) * days
    close = rng.uniform(10, 100, n)
    return pl.DataFrame({
        "symbol": np.repeat(SYMBOLS, days), "date": dates * len(SYMBOLS),
        "open": close * rng.uniform(0.98, 1.02, n), "high": close * 1.03, "low": close * 0.97, "close": close,
        "adj_close": close * rng.uniform(0.5, 1.0, n), "volume": rng.integers(1, 10**6, n),
    })


def _set(frame: pl.DataFrame, column: str, row: int, value) -> pl.DataFrame:
    hit = pl.int_range(pl.len()) == row
    return frame.with_columns(pl.when(hit).then(pl.lit(value)).otherwise(pl.col(column)).alias(column))


DAMAGES = {
    "clean": lambda f: f,
    "shuffled": lambda f: f.sample(fraction=1.0, shuffle=True, seed=1),
    "nan-open": lambda f: _set(f, "open", 50, float("nan")),
    "inf-high": lambda f: _set(f, "high", 7, float("inf")),
    "zero-low": lambda f: _set(f, "low", 90, 0.0),
    "negative-adj-close": lambda f: _set(f, "adj_close", 3, -1.0),
    "null-close": lambda f: _set(f, "close", 44, None),
    "two-bad-kinds": lambda f: _set(_set(f, "close", 80, 0.0), "date", 100, None),
    "null-date": lambda f: _set(f, "date", 11, None),
    "null-symbol": lambda f: _set(f, "symbol", 12, None),
    "duplicate-sorted": lambda f: pl.concat([f.head(30), f.slice(29)]),
    "duplicate-shuffled": lambda f: pl.concat([f, f.tail(2)]).sample(fraction=1.0, shuffle=True, seed=2),
    "no-adj-close-no-volume": lambda f: f.drop("adj_close", "volume"),
    "missing-close": lambda f: f.drop("close"),
    "text-close": lambda f: _set(f.with_columns(pl.col("close").cast(pl.Utf8)), "close", 61, "n/a"),
    "text-date": lambda f: _set(f.with_columns(pl.col("date").cast(pl.Utf8)), "date", 5, "01/08/2021"),
    "midday": lambda f: f.with_columns((pl.col("date").cast(pl.Datetime("us")) + pl.duration(hours=11))
                                       .dt.replace_time_zone("America/New_York")),
    "after-close": lambda f: f.with_columns((pl.col("date").cast(pl.Datetime("us")) + pl.duration(hours=17))
                                            .dt.replace_time_zone("America/New_York")),
    "list-volume": lambda f: f.with_columns(pl.concat_list("volume", "volume").alias("volume")),
    "bool-open": lambda f: f.with_columns((pl.col("open") > 50).alias("open")),
    "float32-prices": lambda f: f.with_columns(pl.col("open", "close").cast(pl.Float32)),
    "categorical-symbol": lambda f: f.with_columns(pl.col("symbol").cast(pl.Categorical)),
    "upper-case-names": lambda f: f.rename({c: c.upper() for c in f.columns}),
    "empty": lambda f: f.head(0),
}


def write(frame: pl.DataFrame, where: Path, layout: str) -> Path:
    """The bars as one parquet file, one CSV file, or a folder holding a parquet file and a
    CSV file (half the symbols each)."""
    if layout == "parquet":
        frame.write_parquet(where / "bars.parquet")
        return where / "bars.parquet"
    if layout == "csv":
        if any(isinstance(t, pl.List) for t in frame.dtypes):
            pytest.skip("CSV holds no lists")
        frame.write_csv(where / "bars.csv")
        return where / "bars.csv"
    folder = where / "bars"
    folder.mkdir()
    frame.head(frame.height // 2).write_parquet(folder / "a.parquet")
    frame.slice(frame.height // 2).write_parquet(folder / "b.parquet")
    return folder


def outcome(load, path: Path):
    try:
        return bars_from_frame(load(path), SYMBOLS + ("ABSENT",))
    except DataError as exc:
        return str(exc)


@pytest.mark.parametrize("layout", ["parquet", "csv", "folder"])
@pytest.mark.parametrize("damage", DAMAGES)
def test_scan_bars_refuses_and_aligns_as_load_bars_does(tmp_path, damage, layout):
    path = write(DAMAGES[damage](bars()), tmp_path, layout)
    loaded, scanned = outcome(load_bars, path), outcome(scan_bars, path)
    if isinstance(loaded, str):
        assert scanned == loaded
        return
    assert not isinstance(scanned, str), scanned
    assert scanned.dates == loaded.dates and scanned.symbols == loaded.symbols
    for field in ("open", "close", "as_traded"):
        np.testing.assert_array_equal(getattr(scanned, field), getattr(loaded, field))
    assert available_symbols(path) == set(SYMBOLS)


def test_the_refusals_compared_are_the_expected_ones(tmp_path):
    """The comparison above is of the messages users see, not of two tracebacks."""
    messages = {}
    for name, damage in DAMAGES.items():
        (tmp_path / name).mkdir()
        messages[name] = outcome(scan_bars, write(damage(bars()), tmp_path / name, "parquet"))
    day = [date(2021, 1, 4) + timedelta(days=d) for d in range(40)]
    assert messages["zero-low"] == ("bars.parquet has 1 row(s) with a missing, NaN, infinite, zero or negative price "
                                    f"(first: CCC {day[10]}, low 0.0)")
    assert messages["two-bad-kinds"] == "bars.parquet has 1 row(s) without a date or symbol (first: CCC None)"
    assert messages["duplicate-sorted"] == f"market data has duplicate rows (first: AAA {day[29]}, 1 in all)"
    assert messages["duplicate-shuffled"] == f"market data has duplicate rows (first: CCC {day[38]}, 2 in all)"
    assert messages["text-close"] == f"bars.parquet: close 'n/a' (BBB {day[21]}, 1 row(s) like it) is not a number"
    assert "stamped 11:00 New York time, during the session (120 row(s) like it)" in messages["midday"]
    assert messages["list-volume"].startswith("bars.parquet has a column of the wrong type: ")
    assert messages["missing-close"].startswith("bars.parquet lacks column(s) close")
    assert messages["empty"] == "market data holds no rows"
    assert messages["bool-open"].endswith(", open 0.0)")  # False is a zero price
    for name in ("clean", "shuffled", "no-adj-close-no-volume", "after-close", "float32-prices",
                 "categorical-symbol", "upper-case-names"):
        assert not isinstance(messages[name], str), (name, messages[name])


def test_a_file_replaced_after_the_checks_is_not_what_gets_aligned(tmp_path):
    """Every pass reads the file that was checked: replaced (written anew and renamed, as the
    data cache is) between the checks and the alignment, the checked bars are aligned."""
    good = bars()
    path = tmp_path / "bars.parquet"
    good.write_parquet(path)
    scanned = scan_bars(path)
    _set(good, "close", 0, float("nan")).write_parquet(tmp_path / "new.parquet")
    (tmp_path / "new.parquet").replace(path)
    aligned = bars_from_frame(scanned, SYMBOLS)
    expected = bars_from_frame(good, SYMBOLS)
    np.testing.assert_array_equal(aligned.close, expected.close)
    assert not np.isnan(aligned.close).any()


def test_a_truncated_parquet_file_cannot_be_read_either_way(tmp_path):
    path = tmp_path / "cut.parquet"
    bars().write_parquet(path)
    path.write_bytes(path.read_bytes()[:500])
    for read in (load_bars, scan_bars, available_symbols):
        with pytest.raises(DataError, match="^cannot read cut.parquet: "):
            read(path)


@pytest.mark.parametrize("split, expected", [
    # (rows of each file, in file-name order), what both readers say
    ([(0, 40), (39, 120)], f"market data has duplicate rows (first: AAA {date(2021, 1, 4) + timedelta(days=39)}, 1 in all)"),
    ([(40, 120), (0, 40)], None),  # each file in order, the second before the first: sorted, no duplicates
    ([(0, 40), (40, 40), (40, 120)], None),  # an empty file between two in order
    ([(0, 41), (41, 120)], None),
])
def test_the_order_of_rows_across_files(tmp_path, split, expected):
    frame = bars()
    for i, (start, stop) in enumerate(split):
        frame.slice(start, stop - start).write_parquet(tmp_path / f"{i}.parquet")
    loaded, scanned = outcome(load_bars, tmp_path), outcome(scan_bars, tmp_path)
    if expected is not None:
        assert loaded == scanned == expected
        return
    whole = bars_from_frame(frame, SYMBOLS + ("ABSENT",))
    for result in (loaded, scanned):
        assert result.dates == whole.dates
        np.testing.assert_array_equal(result.close, whole.close)


def test_load_bars_sorts_bars_out_of_order_by_symbol_then_date(tmp_path):
    frame = bars().with_columns(pl.col("symbol").replace({"BBB": "B", "CCC": "AB"}))  # ranks unlike lengths
    frame.sample(fraction=1.0, shuffle=True, seed=4).write_parquet(tmp_path / "bars.parquet")
    assert load_bars(tmp_path / "bars.parquet").equals(frame.sort("symbol", "date").with_columns(
        pl.col("volume").cast(pl.Float64)))


@pytest.mark.parametrize("start, length", [(0.2, 3000), (0.5, 500)])
def test_a_damaged_page_is_refused_the_same_way(tmp_path, start, length):
    """Damage inside the file (its footer whole): a page that no longer decompresses cannot
    be read; one that still does gives prices the checks refuse. Either way, both readers
    say the same."""
    path = tmp_path / "bars.parquet"
    bars(400).write_parquet(path, row_group_size=200)
    data = bytearray(path.read_bytes())
    at = int(len(data) * start)
    data[at:at + length] = bytes((b * 7 + 13) % 256 for b in data[at:at + length])
    path.write_bytes(bytes(data))
    loaded, scanned = outcome(load_bars, path), outcome(scan_bars, path)
    assert isinstance(loaded, str) and scanned == loaded
