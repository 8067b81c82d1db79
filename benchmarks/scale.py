"""How backtest time and memory grow with symbols and years. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/scale.py [--quick] [--cases 500x20,2000x20] [--no-command]

For each case (symbols x years of synthetic daily bars; the same generator as
benchmarks/backtest_speed.py), in a fresh process:

- **engine**: `runtime.backtest.run_backtest` of one account holding the top 50 by 126-day
  momentum (above 0), equal weight, rebalanced monthly, with every risk limit opened so every
  order reaches the simulated broker (the orders are counted and shown);
- **numpy loop**: the same rule written as a plain numpy loop over the same matrices (decide on
  the last closed bar, shares = weight x NAV / close, fill at the next open, hold shares between
  rebalances), timed the same way. Its final NAV is printed beside the engine's: if the two
  differ the comparison is void, and the script says so;
- **bars_from_frame**: the pivot of the long frame into session x symbol matrices;
- **command**: the whole `botctl backtest --json` on the same data written to parquet (fresh
  process: imports, data loading and checks, the backtest and its model books, the journal),
  wall time and the child's peak RSS.

The machine's load average is printed first and last: figures taken on a busy machine are slower.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = 50
LOOKBACK = 126

CASE = r'''
import json, resource, sys, time
from datetime import date
import numpy as np, polars as pl
from botctl.spec.load import load_config
from botctl.spec.plan import compile_plan
from botctl.strategy.bars import bars_from_frame
from botctl.runtime.backtest import run_backtest

n_symbols, years, top, lookback, parquet = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sessions = 252 * years
rng = np.random.default_rng(7)
symbols = [f"S{i:04d}" for i in range(n_symbols)]
dates = pl.date_range(date(2000, 1, 3), date(2000 + years + 2, 1, 3), "1d", eager=True)
dates = dates.filter(dates.dt.weekday() < 6)[:sessions]
returns = rng.normal(0.0003, 0.015, size=(sessions, n_symbols))
close = 50 * np.exp(np.cumsum(returns, axis=0))
opens = close * np.exp(rng.normal(0.0, 0.004, size=close.shape))
frame = pl.DataFrame({
    "symbol": np.repeat(symbols, sessions), "date": pl.Series(list(dates) * n_symbols),
    "open": opens.T.ravel(), "high": np.maximum(opens, close).T.ravel() * 1.005,
    "low": np.minimum(opens, close).T.ravel() * 0.995, "close": close.T.ravel(), "adj_close": close.T.ravel(),
    "volume": np.full(sessions * n_symbols, 1e6),
})
if parquet != "-":
    frame.write_parquet(parquet)
opened = {"max_weight": 1.0, "max_gross_leverage": 4.0, "max_order_notional": 1e15, "max_order_pct_nav": 4.0,
          "price_collar_pct": 1.0, "max_orders_per_cycle": 100000, "max_orders_per_day": 100000,
          "max_drawdown": 1.0, "max_daily_loss": 1.0, "max_rejects": 100000, "max_first_cycle_turnover": 8.0}
strategies = {"benchmark": symbols[0], "universes": {"all": symbols}, "strategies": {"TopN": {
    "universe": "all", "rebalance": "monthly",
    "steps": [{"select_momentum": {"lookback_days": lookback, "top": top, "min_return": 0.0}}, {"weigh_equally": {}}]}}}
accounts = {"accounts": {"big": {"models": ["TopN"], "starting_cash": 10_000_000, "risk": opened}}}
if parquet != "-":
    import pathlib, yaml
    folder = pathlib.Path(parquet).parent
    (folder / "strategies.yaml").write_text(yaml.safe_dump(strategies))
    (folder / "accounts.yaml").write_text(yaml.safe_dump(accounts))
config = load_config(json.dumps(strategies), json.dumps(accounts), known_symbols=frozenset(symbols))
plan = compile_plan(config)
clock = time.perf_counter()
bars = bars_from_frame(frame, plan.symbols)
pivot_s = time.perf_counter() - clock
first = min(200, sessions - 2)
result = run_backtest(plan, bars, start=bars.dates[first])
curve = result.accounts["big"]

# The same rule as a plain numpy loop over the same matrices.
C, O = bars.close, bars.open
clock = time.perf_counter()
cash, qty = 10_000_000.0, np.zeros(C.shape[1])
month = None
nav = np.empty(sessions - first)
for t in range(first, sessions):
    d = bars.dates[t]
    if month is None or (d.year, d.month) != month:
        month = (d.year, d.month)
        ref = C[t - 1]
        mom = ref / C[t - 1 - lookback] - 1.0 if t - 1 - lookback >= 0 else np.full(C.shape[1], np.nan)
        ok = np.flatnonzero(mom > 0.0)
        chosen = ok[np.lexsort((ok, -mom[ok]))][:top]
        weights = np.zeros(C.shape[1])
        if len(chosen):
            weights[chosen] = 1.0 / len(chosen)
        value = cash + qty @ ref
        delta = weights * value / ref - qty
        delta[np.abs(delta) * ref < 1.0] = 0.0  # min_trade_value dust, as the engine skips it
        delta[(weights == 0) & (qty != 0)] = -qty[(weights == 0) & (qty != 0)]  # closing sells always go
        cash -= delta @ O[t]
        qty += delta
    nav[t - first] = cash + qty @ C[t]
loop_s = time.perf_counter() - clock
print(json.dumps({"start": str(bars.dates[first]), "engine_s": result.engine_seconds, "loop_s": loop_s, "pivot_s": pivot_s,
                  "orders": curve.trades, "blocked": sum(curve.blocked.values()),
                  "engine_nav": float(curve.nav[-1]), "loop_nav": float(nav[-1]),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def run_case(symbols: int, years: int, with_command: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        parquet = f"{tmp}/bars.parquet" if with_command else "-"
        out = subprocess.run([sys.executable, "-c", CASE, str(symbols), str(years), str(TOP), str(LOOKBACK), parquet],
                             capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"case {symbols}x{years} failed: {out.stderr.strip().splitlines()[-1]}")
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        if with_command:
            clock = time.perf_counter()
            with open(f"{tmp}/out.txt", "w") as out_file, open(f"{tmp}/err.txt", "w") as err_file:
                command = subprocess.Popen([sys.executable, "-m", "botctl", "--config-dir", tmp, "--db", f"{tmp}/j.db",
                                            "--data", parquet, "backtest", "--json", "--start", figures["start"]],
                                           stdout=out_file, stderr=err_file)
                # wait4: this child's own peak RSS (RUSAGE_CHILDREN is the largest child so far).
                _, status, usage = os.wait4(command.pid, 0)
            figures["command_s"] = time.perf_counter() - clock
            if os.waitstatus_to_exitcode(status):
                sys.exit(f"backtest of {symbols}x{years} failed: {Path(tmp, 'err.txt').read_text().strip()}")
            figures["command_rss_mb"] = usage.ru_maxrss / 1024
    return figures


def main() -> None:
    args = sys.argv[1:]
    if "--cases" in args:
        spec = args[args.index("--cases") + 1]
        cases = [tuple(int(x) for x in case.split("x")) for case in spec.split(",")]
    elif "--quick" in args:
        cases = [(100, 5), (500, 5), (500, 20)]
    else:
        cases = [(100, 5), (100, 10), (100, 20), (500, 5), (500, 10), (500, 20), (2000, 5), (2000, 10), (2000, 20)]
    with_command = "--no-command" not in args
    print(f"scale: top-{TOP} by {LOOKBACK}-day momentum, monthly, all limits opened; {load()}")
    print(f"{'symbols':>7} {'years':>5} {'orders':>7} {'engine_ms':>9} {'numpy_ms':>8} {'ratio':>6} "
          f"{'pivot_ms':>8} {'engine_MB':>9} {'command_s':>9} {'command_MB':>10}  NAV check")
    for symbols, years in cases:
        r = run_case(symbols, years, with_command)
        same = abs(r["engine_nav"] / r["loop_nav"] - 1.0) < 1e-9
        check = "same final NAV" if same else f"NAV differs: {r['engine_nav']:.2f} vs {r['loop_nav']:.2f} (ratio void)"
        command = f"{r['command_s']:>9.2f}" if "command_s" in r else f"{'-':>9}"
        command_mb = f"{r['command_rss_mb']:>10.0f}" if r.get("command_rss_mb") else f"{'-':>10}"
        blocked = f" ({r['blocked']} blocked)" if r["blocked"] else ""
        print(f"{symbols:>7} {years:>5} {r['orders']:>7} {r['engine_s'] * 1000:>9.1f} {r['loop_s'] * 1000:>8.1f} "
              f"{r['engine_s'] / r['loop_s']:>5.1f}x {r['pivot_s'] * 1000:>8.1f} {r['rss_mb']:>9.0f} {command} "
              f"{command_mb}  {check}{blocked}")
    print(load())


if __name__ == "__main__":
    main()
