"""The data path's speed: `load_bars` (read and check a parquet file) and `bars_from_frame`
(align it into session x symbol matrices) on synthetic daily bars. Prints figures; asserts
nothing.

    .venv/bin/python benchmarks/data_path.py [SYMBOLS] [YEARS]    (default 500 20)

Each figure is the median of three runs in this process, after one warm-up run.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from botctl.adapters.file_data import load_bars
from botctl.strategy.bars import bars_from_frame


def synthetic(n_symbols: int, years: int) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    days = pl.date_range(date(2000, 1, 3), date(2000 + years, 1, 3), "1d", eager=True)
    days = days.filter(days.dt.weekday() <= 5)
    n = len(days)
    close = 100 * np.cumprod(1 + rng.normal(0.0003, 0.015, size=(n_symbols, n)), axis=1)
    frame = pl.DataFrame({
        "symbol": np.repeat([f"S{i:04d}" for i in range(n_symbols)], n),
        "date": pl.concat([days] * n_symbols),
        "close": close.ravel(),
    })
    return frame.with_columns(
        (pl.col("close") * 0.999).alias("open"), (pl.col("close") * 1.01).alias("high"),
        (pl.col("close") * 0.99).alias("low"), pl.col("close").alias("adj_close"), pl.lit(1e6).alias("volume"),
    ).sample(fraction=1.0, shuffle=True, seed=1)  # files are not always sorted


def timed(call) -> tuple[float, object]:
    times, result = [], call()
    for _ in range(3):
        clock = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - clock)
    return statistics.median(times), result


def main() -> None:
    n_symbols = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    years = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    print(f"{n_symbols} symbols x {years} years; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    shuffled = synthetic(n_symbols, years)
    with tempfile.TemporaryDirectory() as folder:
        for order, frame in (("sorted", shuffled.sort("symbol", "date")), ("shuffled", shuffled)):
            path = Path(folder) / f"{order}.parquet"
            frame.write_parquet(path)
            load_seconds, loaded = timed(lambda: load_bars(path))
            print(f"load_bars, {order} file ({loaded.height:,} bars)  {load_seconds * 1000:8.1f} ms")
        symbols = tuple(sorted(loaded["symbol"].unique()))
        align_seconds, bars = timed(lambda: bars_from_frame(loaded, symbols))
        print(f"bars_from_frame ({len(bars.dates)} sessions)     {align_seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
