"""Daily bars from parquet/CSV files: the bundled history, or a user's own files.

Input columns: symbol, date, open, high, low, close, volume and optionally adj_close
(a file without `symbol` takes it from its name, e.g. XLK.csv). Everything is checked here,
at the edge, so the pure core only ever sees clean, sorted bars. Each problem is one line
naming the file, and where it can, the symbol and date.

Dates: a column of dates, or of timestamps. A timestamp's session is decided by one rule
(`session_dates`): a timestamp at midnight (in its own zone, or with no zone) labels that
date; any other time with a zone is an instant, and its session is its New York date, which
it must be stamped after the close or before the open of (a daily bar stamped mid-session
says nothing certain about which session it is, so it is refused).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import polars as pl

from botctl.errors import DataError

REQUIRED = ("date", "open", "high", "low", "close")
PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
SUFFIXES = (".parquet", ".csv", ".csv.gz")
EXCHANGE_ZONE = "America/New_York"
DELIMITERS = (",", ";", "\t", "|")
DATE_FORMAT_HELP = "write dates as YYYY-MM-DD (ISO 8601), or ISO timestamps with a UTC offset"


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


def _first_line(message: object) -> str:  # an exception's message, or its class
    return str(message).splitlines()[0][:200] if str(message) else type(message).__name__


def _csv_delimiter(file: Path) -> str:
    """The separator of a CSV file's header line: the one of , ; tab | it holds most of."""
    import gzip

    opener = gzip.open if file.name.endswith(".gz") else open
    with opener(file, "rt", encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    return max(DELIMITERS, key=header.count) if any(d in header for d in DELIMITERS) else ","


def _read_csv(file: Path) -> pl.DataFrame:
    # Every column is read as text and converted here: polars would turn a timestamp's UTC
    # offset into UTC (losing the date the file wrote), and stop at a word in a price column
    # with a message about its parser instead of the value.
    return pl.read_csv(file, separator=_csv_delimiter(file), infer_schema=False)


def _read_one(file: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(file) if file.name.endswith(".parquet") else _read_csv(file)
    except Exception as exc:  # polars/arrow raise many types for a bad file; all mean "unreadable"
        raise DataError(f"cannot read {file.name}: {_first_line(exc)}") from None
    frame = frame.rename({c: c.lower() for c in frame.columns})
    if "symbol" not in frame.columns:
        stem = file.name.split(".")[0].upper()
        frame = frame.with_columns(pl.lit(stem).alias("symbol"))
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        found = ", ".join(c for c in frame.columns if c != "symbol")[:120]
        raise DataError(f"{file.name} lacks column(s) {', '.join(missing)} (needs symbol, date, open, high, low, close; "
                        f"found: {found})")
    return frame


def unusable_price() -> pl.Expr:
    """True for a bar with a missing, NaN, infinite, zero or negative price (any data source)."""
    return pl.any_horizontal([pl.col(c).is_null() | ~pl.col(c).is_finite() | (pl.col(c) <= 0) for c in PRICE_COLUMNS])


def _first_bad(frame: pl.DataFrame, bad: pl.Expr) -> dict | None:
    hits = frame.filter(bad)
    return None if hits.is_empty() else hits.row(0, named=True) | {"count": hits.height}


def session_dates(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """`frame` with its `date` column as session dates, by the rule in the module docstring.
    Raises DataError naming `name`, the symbol and the value when a date cannot be read or its
    session is uncertain."""
    column = frame.schema["date"]
    if column == pl.Date:
        return frame
    if column == pl.Utf8:
        text = pl.col("date").str.strip_chars()
        wall_date = text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        clock = text.str.slice(10).str.strip_chars_start("T ")
        aware = clock.str.contains(r"(Z|[+-]\d\d:?\d\d)$")
        midnight = (clock == "") | clock.str.contains(r"^00:00(:00(\.0*)?)?([Zz]|[+-]|$)")
        instant = pl.when(aware).then(text).otherwise(None).str.to_datetime(time_zone="UTC", strict=False)
        unreadable = (wall_date.is_null() | (aware & instant.is_null())) & pl.col("date").is_not_null()
        row = _first_bad(frame, unreadable)
        if row is not None:
            raise DataError(f"{name}: date {row['date']!r} ({row['symbol']}, {row['count']} row(s) like it) is not a date "
                            f"botctl reads: {DATE_FORMAT_HELP}")
    elif isinstance(column, pl.Datetime):
        wall_date = pl.col("date").dt.date()
        aware = pl.lit(column.time_zone is not None)
        midnight = pl.col("date").dt.time() == pl.time(0)
        instant = pl.col("date") if column.time_zone is not None else pl.col("date").dt.replace_time_zone("UTC")
    else:
        raise DataError(f"{name}: the date column holds {column}, not dates: {DATE_FORMAT_HELP}")
    local = instant.dt.convert_time_zone(EXCHANGE_ZONE)
    minutes = local.dt.hour().cast(pl.Int32) * 60 + local.dt.minute().cast(pl.Int32)
    mid_session = aware & ~midnight & (minutes > 9 * 60 + 30) & (minutes < 16 * 60)
    frame = frame.with_columns(
        pl.when(aware & ~midnight).then(local.dt.date()).otherwise(wall_date).alias("date"),
        mid_session.alias("_mid_session"),
        local.dt.strftime("%H:%M").alias("_new_york_time"),
    )
    row = _first_bad(frame, pl.col("_mid_session").fill_null(False))
    if row is not None:
        raise DataError(f"{name}: {row['symbol']} bar of {row['date']} is stamped {row['_new_york_time']} New York time, "
                        f"during the session ({row['count']} row(s) like it), so its session is uncertain: stamp daily "
                        "bars with their session's date, at midnight, or after the close")
    return frame.drop("_mid_session", "_new_york_time")


def _prices(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """Price and volume columns as floats; a column of text is refused naming a value."""
    for column in (*PRICE_COLUMNS, "volume"):
        if column in frame.columns and frame.schema[column] == pl.Utf8:
            numbers = pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)
            row = _first_bad(frame, numbers.is_null() & pl.col(column).is_not_null())
            if row is not None:
                raise DataError(f"{name}: {column} {row[column]!r} ({row['symbol']} {row['date']}, {row['count']} row(s) "
                                "like it) is not a number")
            frame = frame.with_columns(numbers.alias(column))
    try:
        return frame.select(
            pl.col("symbol").cast(pl.Utf8),
            pl.col("date"),
            *[pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close")],
            (pl.col("adj_close") if "adj_close" in frame.columns else pl.col("close")).cast(pl.Float64).alias("adj_close"),
            (pl.col("volume") if "volume" in frame.columns else pl.lit(0)).cast(pl.Float64).alias("volume"),
        )
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"{name} has a column of the wrong type: {_first_line(exc)}") from None


def _checked(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """One file's bars, normalised and refused on the first unusable value."""
    frame = _prices(session_dates(frame, name), name)
    row = _first_bad(frame, pl.col("date").is_null() | pl.col("symbol").is_null())
    if row is not None:
        raise DataError(f"{name} has {row['count']} row(s) without a date or symbol (first: {row['symbol']} {row['date']})")
    row = _first_bad(frame, unusable_price())
    if row is not None:
        column = next(c for c in PRICE_COLUMNS if not (row[c] is not None and row[c] == row[c] and 0 < row[c] < float("inf")))
        raise DataError(f"{name} has {row['count']} row(s) with a missing, NaN, infinite, zero or negative price "
                        f"(first: {row['symbol']} {row['date']}, {column} {row[column]})")
    return frame


def load_bars(path: Path | None = None) -> pl.DataFrame:
    """Long frame (symbol, date, open, high, low, close, adj_close, volume), sorted, validated."""
    frames = [_checked(_read_one(f), f.name) for f in _files(path or bundled_data_path())]
    frame = pl.concat(frames)
    if frame.is_empty():
        raise DataError("market data holds no rows")
    same_symbol = pl.col("symbol") == pl.col("symbol").shift(1)
    later = (pl.col("symbol") > pl.col("symbol").shift(1)) | (same_symbol & (pl.col("date") > pl.col("date").shift(1)))
    if frame.select(later.slice(1).all()).item():
        return frame  # already in (symbol, date) order, each row after the one before: no duplicates either
    frame = frame.sort("symbol", "date")
    # Sorted, a duplicate is a row equal to the one before it: no group-by over the frame.
    repeated = same_symbol & (pl.col("date") == pl.col("date").shift(1))
    row = _first_bad(frame, repeated)
    if row is not None:
        raise DataError(f"market data has duplicate rows (first: {row['symbol']} {row['date']}, {row['count']} in all)")
    return frame


def available_symbols(path: Path | None = None) -> frozenset[str]:
    """The symbols a data source holds, read cheaply: a parquet file's symbol and date columns
    (its dates checked by the rule `load_bars` uses, so `validate` refuses what a backtest
    would), a CSV file whole and checked like `load_bars` does."""
    symbols: set[str] = set()
    for file in _files(path or bundled_data_path()):
        if file.name.endswith(".parquet"):
            try:
                schema = pl.read_parquet_schema(file)
                columns = [c for c in schema if c.lower() in ("symbol", "date")]
                frame = pl.read_parquet(file, columns=columns) if columns else pl.DataFrame()
            except Exception as exc:  # noqa: BLE001 - every failure here means "unreadable"
                raise DataError(f"cannot read {file.name}: {_first_line(exc)}") from None
            frame = frame.rename({c: c.lower() for c in frame.columns})
            if "symbol" not in frame.columns:
                frame = frame.with_columns(pl.lit(file.name.split(".")[0].upper()).alias("symbol"))
            if "date" in frame.columns:
                session_dates(frame, file.name)
        else:  # a CSV file is read whole anyway: check all of it
            frame = _checked(_read_one(file), file.name)
        symbols.update(frame["symbol"].cast(pl.Utf8).unique().drop_nulls().to_list())
    return frozenset(s for s in symbols if s)
