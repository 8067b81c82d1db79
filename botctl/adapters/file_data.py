"""Daily bars from parquet/CSV files: the bundled history, or a user's own files.

Input columns: symbol, date, open, high, low, close, volume and optionally adj_close
(a file without `symbol` takes it from its name, e.g. XLK.csv). Everything is checked here,
at the edge, so the pure core only ever sees clean, sorted bars.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import polars as pl

from botctl.errors import DataError

REQUIRED = ("date", "open", "high", "low", "close")
PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
SUFFIXES = (".parquet", ".csv", ".csv.gz")


def bundled_data_path() -> Path:
    return Path(str(resources.files("botctl") / "data" / "etf_daily.parquet"))


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise DataError(f"no market data at {path}")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(SUFFIXES))
    if not files:
        raise DataError(f"no .parquet or .csv files in {path}")
    return files


def _read_one(file: Path) -> pl.DataFrame:
    try:
        if file.name.endswith(".parquet"):
            frame = pl.read_parquet(file)
        else:
            frame = pl.read_csv(file, try_parse_dates=True)
    except Exception as exc:  # polars/arrow raise many types for a bad file; all mean "unreadable"
        raise DataError(f"cannot read {file.name}: {str(exc).splitlines()[0][:200]}") from None
    frame = frame.rename({c: c.lower() for c in frame.columns})
    if "symbol" not in frame.columns:
        stem = file.name.split(".")[0].upper()
        frame = frame.with_columns(pl.lit(stem).alias("symbol"))
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"{file.name} lacks column(s) {', '.join(missing)} (needs symbol, date, open, high, low, close)")
    return frame


def unusable_price() -> pl.Expr:
    """True for a bar with a missing, NaN, zero or negative price (any data source)."""
    return pl.any_horizontal([pl.col(c).is_null() | pl.col(c).is_nan() | (pl.col(c) <= 0) for c in PRICE_COLUMNS])


def load_bars(path: Path | None = None) -> pl.DataFrame:
    """Long frame (symbol, date, open, high, low, close, adj_close, volume), sorted, validated."""
    frames = [_read_one(f) for f in _files(path or bundled_data_path())]
    try:
        frame = pl.concat(
            [
                f.select(
                    pl.col("symbol").cast(pl.Utf8),
                    pl.col("date").cast(pl.Date),
                    *[pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close")],
                    (pl.col("adj_close") if "adj_close" in f.columns else pl.col("close")).cast(pl.Float64).alias("adj_close"),
                    (pl.col("volume") if "volume" in f.columns else pl.lit(0)).cast(pl.Float64).alias("volume"),
                )
                for f in frames
            ]
        )
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"market data has a column of the wrong type: {str(exc).splitlines()[0][:200]}") from None
    if frame.is_empty():
        raise DataError("market data holds no rows")
    bad = frame.filter(
        unusable_price()
        | pl.col("date").is_null()
        | pl.col("symbol").is_null()
    )
    if bad.height:
        row = bad.row(0, named=True)
        raise DataError(
            f"market data has {bad.height} row(s) with a missing, NaN, zero or negative price "
            f"(first: {row['symbol']} {row['date']})"
        )
    dupes = frame.group_by("symbol", "date").len().filter(pl.col("len") > 1)
    if dupes.height:
        row = dupes.row(0, named=True)
        raise DataError(f"market data has duplicate rows (first: {row['symbol']} {row['date']})")
    return frame.sort("symbol", "date")


def available_symbols(path: Path | None = None) -> frozenset[str]:
    """The symbols a data source holds, read cheaply (only the symbol column, or file names)."""
    symbols: set[str] = set()
    for file in _files(path or bundled_data_path()):
        try:
            if file.name.endswith(".parquet"):
                schema = pl.read_parquet_schema(file)
                if "symbol" in schema:
                    symbols.update(pl.read_parquet(file, columns=["symbol"])["symbol"].unique().to_list())
                    continue
            else:
                header = pl.read_csv(file, n_rows=0).columns
                if "symbol" in [c.lower() for c in header]:
                    symbols.update(load_bars(file)["symbol"].unique().to_list())
                    continue
        except Exception as exc:
            raise DataError(f"cannot read {file.name}: {str(exc).splitlines()[0][:200]}") from None
        symbols.add(file.name.split(".")[0].upper())
    return frozenset(s for s in symbols if s)
