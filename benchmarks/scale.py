"""How backtest time and memory grow with symbols and years. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/scale.py [--quick] [--cases 500x20,2000x20] [--runs 3] [--no-command] [--no-peers]

For each case (symbols x years of synthetic daily bars; the same generator as
benchmarks/backtest_speed.py), in fresh processes (--runs of them, 3 by default; every figure
is the median over the runs):

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
- **peers**, only where they are importable (neither is a dependency of botctl): the same rule,
  on the same matrices, in a process of their own (their imports stay out of the engine's
  figures), timed like the engine (without interpreter start, imports and data generation):
  - vectorbt: `Portfolio.from_orders` with the loop's target weights on the rebalance sessions
    (`size_type="targetpercent"`), valued at the deciding close (`val_price`), filled at the
    open (`price`), one cash-sharing group, sells first (`call_seq="auto"`). Its first call in
    the process (numba compiles, or loads its cache) and the median of 3 more. vectorbt cannot
    spend cash it does not have: where a rebalance's opens are above the deciding closes, its
    last buys are cut to the cash left, where the engine and the loop borrow those few dollars,
    so its final NAV is a little off theirs (shown; the ratio still compares the same work).
    Checked at 100 x 5: vectorbt's holdings are the loop's to the cent until the first rebalance
    that leaves the loop's cash below zero ($-2,264.37; 32 of the 49 rebalances do), where
    vectorbt holds $2,264.37 less and has $0 of cash. Sells-first (`call_seq="auto"`) is most
    of its time at 2000 symbols: from_orders 8.7 s with it, 2.1 s in the default order, which
    buys before it sells and so ends elsewhere;
  - bt: a `bt.Backtest` whose one algo is the loop's rule (bt has no next-open fill of its own:
    the algo reads bt's capital and positions and transacts at the open, `transact(q, price=)`,
    with bid/offer accounting on so the custom price is allowed; fractional shares, no
    commissions); bt marks at the close. Its final NAV is checked against the loop's.

  To get the peer figures, make a virtualenv outside the repository with both and botctl:

      python3 -m venv ../peers-venv
      ../peers-venv/bin/pip install vectorbt bt
      ../peers-venv/bin/pip install -e . -c constraints.txt
      nice -n 19 ../peers-venv/bin/python benchmarks/scale.py --cases 500x20 --no-command

  (vectorbt 1.2.0 and bt 1.4.1 installed beside constraints.txt's numpy 2.4.6 and pandas 3.1.1
  with no conflict, on Python 3.11.) Without them the script says they are not installed.

The machine's load average is printed first and last: figures taken on a busy machine are slower.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = 50
LOOKBACK = 126
PEERS = ("vectorbt", "bt")

# The synthetic data, the plan and the rule's pieces, shared by the engine's and the peers' process.
DATA = r'''
import json, resource, sys, time
from datetime import date
import numpy as np, polars as pl
from botctl.spec.load import load_config
from botctl.spec.plan import compile_plan
from botctl.strategy.bars import bars_from_frame

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
opened = {"max_weight": 1.0, "max_gross_leverage": 4.0, "max_order_notional": 1e15, "max_order_pct_nav": 4.0,
          "price_collar_pct": 1.0, "max_orders_per_cycle": 100000, "max_orders_per_day": 100000,
          "max_drawdown": 1.0, "max_daily_loss": 1.0, "max_rejects": 100000, "max_first_cycle_turnover": 8.0}
strategies = {"benchmark": symbols[0], "universes": {"all": symbols}, "strategies": {"TopN": {
    "universe": "all", "rebalance": "monthly",
    "steps": [{"select_momentum": {"lookback_days": lookback, "top": top, "min_return": 0.0}}, {"weigh_equally": {}}]}}}
accounts = {"accounts": {"big": {"models": ["TopN"], "starting_cash": 10_000_000, "risk": opened}}}
config = load_config(json.dumps(strategies), json.dumps(accounts), known_symbols=frozenset(symbols))
plan = compile_plan(config)
first = min(200, sessions - 2)


def rebalance_rows(days):
    """The first session of each month from `first` on (the engine's monthly rebalance)."""
    rows, month = [], None
    for t in range(first, len(days)):
        if (days[t].year, days[t].month) != month:
            month = (days[t].year, days[t].month)
            rows.append(t)
    return rows


def targets(C, t):
    """Weights decided on the close before session t: top `top` by `lookback`-session momentum above 0, equal."""
    ref = C[t - 1]
    mom = ref / C[t - 1 - lookback] - 1.0 if t - 1 - lookback >= 0 else np.full(C.shape[1], np.nan)
    ok = np.flatnonzero(mom > 0.0)
    chosen = ok[np.lexsort((ok, -mom[ok]))][:top]
    weights = np.zeros(C.shape[1])
    if len(chosen):
        weights[chosen] = 1.0 / len(chosen)
    return weights


def trades(weights, qty, cash, ref):
    """Shares to trade: weight x NAV / close minus what is held, the engine's $1 dust skipped."""
    delta = weights * (cash + qty @ ref) / ref - qty
    delta[np.abs(delta) * ref < 1.0] = 0.0  # min_trade_value dust, as the engine skips it
    closing = (weights == 0) & (qty != 0)
    delta[closing] = -qty[closing]  # closing sells always go
    return delta
'''

CASE = DATA + r'''
from botctl.runtime.backtest import run_backtest
if parquet != "-":
    import pathlib, yaml
    frame.write_parquet(parquet)
    folder = pathlib.Path(parquet).parent
    (folder / "strategies.yaml").write_text(yaml.safe_dump(strategies))
    (folder / "accounts.yaml").write_text(yaml.safe_dump(accounts))
clock = time.perf_counter()
bars = bars_from_frame(frame, plan.symbols)
pivot_s = time.perf_counter() - clock
result = run_backtest(plan, bars, start=bars.dates[first])
curve = result.accounts["big"]

# The same rule as a plain numpy loop over the same matrices.
C, O = bars.close, bars.open
clock = time.perf_counter()
cash, qty = 10_000_000.0, np.zeros(C.shape[1])
rows = set(rebalance_rows(bars.dates))
nav = np.empty(sessions - first)
for t in range(first, sessions):
    if t in rows:
        delta = trades(targets(C, t), qty, cash, C[t - 1])
        cash -= delta @ O[t]
        qty += delta
    nav[t - first] = cash + qty @ C[t]
loop_s = time.perf_counter() - clock
print(json.dumps({"start": str(bars.dates[first]), "engine_s": result.engine_seconds, "loop_s": loop_s, "pivot_s": pivot_s,
                  "orders": curve.trades, "blocked": sum(curve.blocked.values()),
                  "engine_nav": float(curve.nav[-1]), "loop_nav": float(nav[-1]),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''

PEER_CASE = DATA + r'''
import statistics
bars = bars_from_frame(frame, plan.symbols)
C, O, names = bars.close, bars.open, list(bars.symbols)
out = {}
try:
    import pandas as pd
    import vectorbt as vbt
except ImportError:
    out["vectorbt"] = None
else:
    def run_vectorbt():
        size = np.full((sessions - first, C.shape[1]), np.nan)  # NaN: no order that session
        for t in rebalance_rows(bars.dates):
            size[t - first] = targets(C, t)
        index = pd.DatetimeIndex(bars.dates[first:])
        portfolio = vbt.Portfolio.from_orders(
            pd.DataFrame(C[first:], index=index, columns=names), size, size_type="targetpercent",
            price=O[first:], val_price=C[first - 1:-1], init_cash=10_000_000.0, cash_sharing=True,
            group_by=True, call_seq="auto", freq="1D")
        return float(portfolio.value().iloc[-1])

    def timed(run):
        clock = time.perf_counter()
        nav = run()
        return time.perf_counter() - clock, nav

    first_s, nav = timed(run_vectorbt)
    out["vectorbt"] = {"first_s": first_s, "s": statistics.median(timed(run_vectorbt)[0] for _ in range(3)),
                       "nav": nav, "version": vbt.__version__}
try:
    import pandas as pd
    import bt
except ImportError:
    out["bt"] = None
else:
    row_of = {pd.Timestamp(d): t for t, d in enumerate(bars.dates)}

    class LoopRule(bt.Algo):
        """The loop's rule inside bt: decide on the last close, transact at the open."""

        def __init__(self):
            super().__init__()
            self.rows = set(rebalance_rows(bars.dates))

        def __call__(self, target):
            t = row_of[target.now]
            if t in self.rows:
                children = target.children
                qty = np.array([children[n].position if n in children else 0.0 for n in names])
                delta = trades(targets(C, t), qty, target.capital, C[t - 1])
                for i in np.flatnonzero(delta):
                    if names[i] not in children:
                        target._create_child_if_needed(names[i])
                    children[names[i]].transact(delta[i], price=O[t, i])
            return True

    def run_bt():
        index = pd.DatetimeIndex(bars.dates[first:])
        prices = pd.DataFrame(C[first:], index=index, columns=names)
        test = bt.Backtest(bt.Strategy("rule", [LoopRule()]), prices, initial_capital=10_000_000.0,
                           integer_positions=False, progress_bar=False,
                           additional_data={"bidoffer": pd.DataFrame(0.0, index=index, columns=names)})
        test.run()
        return float(test.strategy.values.iloc[-1])

    clock = time.perf_counter()
    nav = run_bt()
    out["bt"] = {"s": time.perf_counter() - clock, "nav": nav, "version": bt.__version__}
print(json.dumps(out))
'''


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def child(script: str, symbols: int, years: int, parquet: str) -> dict:
    out = subprocess.run([sys.executable, "-c", script, str(symbols), str(years), str(TOP), str(LOOKBACK), parquet],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"case {symbols}x{years} failed: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_case(symbols: int, years: int, with_command: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        parquet = f"{tmp}/bars.parquet" if with_command else "-"
        figures = child(CASE, symbols, years, parquet)
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


def medians(runs: list[dict]) -> dict:
    """Each number's median over the runs; the rest (and the NAVs, which must not vary) from the first run."""
    merged = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float) and not key.endswith("nav"):
            merged[key] = statistics.median(run[key] for run in runs)
        elif isinstance(value, dict):
            merged[key] = medians([run[key] for run in runs])
    return merged


def nav_check(nav: float, loop_nav: float) -> str:
    if abs(nav / loop_nav - 1.0) < 1e-9:
        return "same final NAV"
    return f"NAV {nav:,.2f} vs the loop's {loop_nav:,.2f} ({nav / loop_nav - 1:+.4%})"


def main() -> None:
    args = sys.argv[1:]
    if "--cases" in args:
        spec = args[args.index("--cases") + 1]
        cases = [tuple(int(x) for x in case.split("x")) for case in spec.split(",")]
    elif "--quick" in args:
        cases = [(100, 5), (500, 5), (500, 20)]
    else:
        cases = [(100, 5), (100, 10), (100, 20), (500, 5), (500, 10), (500, 20), (2000, 5), (2000, 10), (2000, 20)]
    runs = int(args[args.index("--runs") + 1]) if "--runs" in args else 3
    with_command = "--no-command" not in args
    peers = [] if "--no-peers" in args else [name for name in PEERS if importlib.util.find_spec(name)]
    missing = [name for name in PEERS if name not in peers and "--no-peers" not in args]
    print(f"scale: top-{TOP} by {LOOKBACK}-day momentum, monthly, all limits opened; medians of {runs} fresh "
          f"process(es) per case; {load()}")
    if missing:
        print(f"peers not installed (no peer figures): {', '.join(missing)}")
    print(f"{'symbols':>7} {'years':>5} {'orders':>7} {'engine_ms':>9} {'numpy_ms':>8} {'ratio':>6} "
          f"{'pivot_ms':>8} {'engine_MB':>9} {'command_s':>9} {'command_MB':>10}  NAV check")
    peer_rows = []
    for symbols, years in cases:
        r = medians([run_case(symbols, years, with_command) for _ in range(runs)])
        same = abs(r["engine_nav"] / r["loop_nav"] - 1.0) < 1e-9
        check = "same final NAV" if same else f"NAV differs: {r['engine_nav']:.2f} vs {r['loop_nav']:.2f} (ratio void)"
        command = f"{r['command_s']:>9.2f}" if "command_s" in r else f"{'-':>9}"
        command_mb = f"{r['command_rss_mb']:>10.0f}" if r.get("command_rss_mb") else f"{'-':>10}"
        blocked = f" ({r['blocked']} blocked)" if r["blocked"] else ""
        print(f"{symbols:>7} {years:>5} {r['orders']:>7} {r['engine_s'] * 1000:>9.1f} {r['loop_s'] * 1000:>8.1f} "
              f"{r['engine_s'] / r['loop_s']:>5.1f}x {r['pivot_s'] * 1000:>8.1f} {r['rss_mb']:>9.0f} {command} "
              f"{command_mb}  {check}{blocked}", flush=True)
        if peers:
            peer_rows.append((symbols, years, r, medians([child(PEER_CASE, symbols, years, "-") for _ in range(runs)])))
    if peer_rows:
        print(f"peers (the same rule and matrices, a process of their own, medians of {runs}; "
              "ratio = peer time / engine time):")
        for symbols, years, r, p in peer_rows:
            line = f"{symbols:>7} {years:>5}"
            if p.get("vectorbt"):
                v = p["vectorbt"]
                line += (f"  vectorbt {v['version']}: {v['s'] * 1000:.1f} ms (first call {v['first_s'] * 1000:.0f} ms, "
                         f"with numba's compile or cache load), {v['s'] / r['engine_s']:.1f}x the engine, "
                         f"{nav_check(v['nav'], r['loop_nav'])}")
            if p.get("bt"):
                b = p["bt"]
                line += (f"\n{'':>13}  bt {b['version']}: {b['s'] * 1000:.1f} ms, {b['s'] / r['engine_s']:.1f}x the engine, "
                         f"{nav_check(b['nav'], r['loop_nav'])}")
            print(line, flush=True)
    print(load())


if __name__ == "__main__":
    main()
