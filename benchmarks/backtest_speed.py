"""Backtest speed and scale. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/backtest_speed.py [--quick]

1. Engine time of the shipped plan (4 models, 12 ETFs + SPY, 2015-2024 daily), excluding
   interpreter start, imports and data loading: the first run in the process and the median
   of the next five.
2. Wall time of the whole `botctl backtest --json` command (a fresh process each time,
   journal included), median of three.
3. Scale: a synthetic universe, top-50 momentum monthly, for several symbol counts and
   lengths, with engine time and peak memory (RSS of a fresh process per case).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOTCTL = [sys.executable, "-m", "botctl"]

SCALE_CASE = r'''
import json, resource, sys, time
from datetime import date
import numpy as np, polars as pl
from botctl.spec.load import load_config
from botctl.spec.plan import compile_plan
from botctl.strategy.bars import bars_from_frame
from botctl.runtime.backtest import run_backtest

n_symbols, years = int(sys.argv[1]), int(sys.argv[2])
sessions = 252 * years
rng = np.random.default_rng(7)
symbols = [f"S{i:03d}" for i in range(n_symbols)]
dates = pl.date_range(date(2000, 1, 3), date(2000, 1, 3).replace(year=2000 + years + 2), "1d", eager=True)
dates = dates.filter(dates.dt.weekday() < 6)[:sessions]
returns = rng.normal(0.0003, 0.015, size=(sessions, n_symbols))
close = 50 * np.exp(np.cumsum(returns, axis=0))
frame = pl.DataFrame({
    "symbol": np.repeat(symbols, sessions), "date": pl.Series(list(dates) * n_symbols),
    "open": close.T.ravel() * 0.999, "high": close.T.ravel() * 1.01, "low": close.T.ravel() * 0.99,
    "close": close.T.ravel(), "adj_close": close.T.ravel(), "volume": np.full(sessions * n_symbols, 1e6),
})
strategies = {"benchmark": symbols[0], "universes": {"all": symbols}, "strategies": {"Top50": {
    "universe": "all", "rebalance": "monthly",
    "steps": [{"select_momentum": {"lookback_days": 126, "top": 50, "min_return": 0.0}}, {"weigh_equally": {}}]}}}
accounts = {"accounts": {"big": {"models": ["Top50"], "starting_cash": 10_000_000}}}
config = load_config(json.dumps(strategies), json.dumps(accounts), known_symbols=frozenset(symbols))
plan = compile_plan(config)
bars = bars_from_frame(frame, plan.symbols)
start = dates[min(200, sessions - 2)]
result = run_backtest(plan, bars, start=start)
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"engine_s": result.engine_seconds, "rss_mb": rss_mb, "sessions": sessions}))
'''


def shipped_engine_time() -> tuple[float, float]:
    from datetime import date

    from botctl.adapters.file_data import load_bars
    from botctl.cli.common import Globals, load_plan
    from botctl.runtime.backtest import run_backtest
    from botctl.strategy.bars import bars_from_frame

    plan = load_plan(Globals(ROOT, Path("unused.db"), None))
    bars = bars_from_frame(load_bars(), plan.symbols)
    runs = [run_backtest(plan, bars, start=date(2015, 1, 1), end=date(2024, 12, 31)).engine_seconds for _ in range(6)]
    return runs[0], statistics.median(runs[1:])


def command_wall_time() -> float:
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            clock = time.perf_counter()
            subprocess.run([*BOTCTL, "--config-dir", str(ROOT), "--db", f"{tmp}/b{i}.db", "backtest", "--json",
                            "--start", "2015-01-01", "--end", "2024-12-31"], check=True, capture_output=True)
            times.append(time.perf_counter() - clock)
    return statistics.median(times)


def scale_case(symbols: int, years: int) -> dict:
    out = subprocess.run([sys.executable, "-c", SCALE_CASE, str(symbols), str(years)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    quick = "--quick" in sys.argv
    first, median = shipped_engine_time()
    print(f"shipped plan, 2015-2024 daily: engine {first * 1000:.1f} ms first run, {median * 1000:.1f} ms median of next 5")
    print(f"botctl backtest --json (whole command, journal included): {command_wall_time():.2f} s wall, median of 3")
    cases = [(100, 5), (500, 5)] if quick else [(100, 20), (250, 20), (500, 5), (500, 10), (500, 20)]
    print("scale: top-50 momentum monthly over a synthetic universe")
    print(f"{'symbols':>8} {'years':>6} {'engine_ms':>10} {'peak_rss_MB':>12}")
    for symbols, years in cases:
        r = scale_case(symbols, years)
        print(f"{symbols:>8} {years:>6} {r['engine_s'] * 1000:>10.1f} {r['rss_mb']:>12.0f}")


if __name__ == "__main__":
    main()
