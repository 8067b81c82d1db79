"""The data path's speed and memory: `load_bars` (read a parquet file whole and check it),
`scan_bars` (check it without holding it) and `bars_from_frame` (align into session x symbol
matrices) on synthetic daily bars. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/data_path.py [SYMBOLS] [YEARS]    (default 500 20)

Times are medians of three runs in this process, after one warm-up run. Memory is the peak
RSS (VmHWM) of a fresh process doing only one way in, read after each step: `load_bars` then
`bars_from_frame` of the frame (what `botctl backtest` did before it scanned), and `scan_bars`
then `bars_from_frame` of the scan (what it does now). The load average is printed first
and last: figures taken on a busy machine are slower.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from botctl.adapters.file_data import load_bars, scan_bars
from botctl.strategy.bars import bars_from_frame

STEPS = r'''
import sys, time
from pathlib import Path
def peak():
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(status["VmHWM"].split()[0]) // 1024, int(status["VmRSS"].split()[0]) // 1024
from botctl.adapters.file_data import load_bars, scan_bars
from botctl.strategy.bars import bars_from_frame
path, way = Path(sys.argv[1]), sys.argv[2]
print("imported", *peak())
clock = time.perf_counter()
frame = load_bars(path) if way == "load_bars" else scan_bars(path)
print(way, *peak(), time.perf_counter() - clock)
symbols = tuple(f"S{i:04d}" for i in range(int(sys.argv[3])))  # the synthetic symbols, all of them
clock = time.perf_counter()
bars = bars_from_frame(frame, symbols)
print("bars_from_frame", *peak(), time.perf_counter() - clock)
'''


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


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def peaks(path: Path, way: str, n_symbols: int) -> str:
    """Peak RSS after each step of one way in, in a fresh process."""
    done = subprocess.run([sys.executable, "-c", STEPS, str(path), way, str(n_symbols)], capture_output=True, text=True)
    if done.returncode:
        return f"failed: {done.stderr.strip().splitlines()[-1]}"
    steps = [line.split() for line in done.stdout.splitlines()]
    return ", ".join(f"{s[0]} {s[1]} MB" for s in steps) + f" (RSS at the end {steps[-1][2]} MB)"


def main() -> None:
    n_symbols = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    years = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    print(f"{n_symbols} symbols x {years} years; {load()}")
    shuffled = synthetic(n_symbols, years)
    with tempfile.TemporaryDirectory() as folder:
        for order, frame in (("sorted", shuffled.sort("symbol", "date")), ("shuffled", shuffled)):
            path = Path(folder) / f"{order}.parquet"
            frame.write_parquet(path)
            load_seconds, loaded = timed(lambda: load_bars(path))
            print(f"load_bars, {order} file ({loaded.height:,} bars)  {load_seconds * 1000:8.1f} ms")
            scan_seconds, scanned = timed(lambda: scan_bars(path))
            print(f"scan_bars, {order} file                {scan_seconds * 1000:8.1f} ms")
        symbols = tuple(sorted(loaded["symbol"].unique()))
        align_seconds, bars = timed(lambda: bars_from_frame(loaded, symbols))
        print(f"bars_from_frame of the frame ({len(bars.dates)} sessions) {align_seconds * 1000:8.1f} ms")
        align_seconds, bars = timed(lambda: bars_from_frame(scanned, symbols))
        print(f"bars_from_frame of the scan               {align_seconds * 1000:8.1f} ms")
        del loaded, scanned, bars
        sorted_file = Path(folder) / "sorted.parquet"
        for way in ("load_bars", "scan_bars"):
            print(f"peak RSS, {way} + bars_from_frame, sorted file: {peaks(sorted_file, way, n_symbols)}")
    print(load())


if __name__ == "__main__":
    main()
