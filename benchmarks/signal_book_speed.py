"""Signal-book speed and memory. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/signal_book_speed.py [--symbols 500] [--years 20]

A signal book over a synthetic universe (default 500 symbols x 20 years of sessions): scores
from a 20-day breakout and 63-day momentum, 16 slots, exits checked every session (stop loss,
trailing stop, stale-position time exit, a take-profit ladder, score below a level) and
displacement. Each case runs in a fresh process and prints:

- every order reaches the simulated broker: `max_order_notional` is opened (the default $1M
  blocks most orders of this $10M book), and the fills are printed;
- engine time: the whole backtest loop (decisions, risk guard, simulated fills, marks), without
  interpreter start, imports and data generation; the target is under 2 s;
- the decisions alone (`decide_cycle` once per session, fills applied by hand);
- peak memory (RSS of the process); the target is under 1 GB;
- the machine's load average, since the machine may be shared;
- vectorbt's `Portfolio.from_signals` as the peer figure, only when vectorbt is importable (it is
  not one of botctl's dependencies): entries where the book's score (20-day breakout + 63-day
  momentum) reaches its min_score, exits below the exit level, the 2% trailing stop, 1/16 of the
  cash per entry, one cash-sharing group. It is a stand-in, not the same book: vectorbt's
  from_signals has no take-profit ladder (partial sells), time exit, displacement or slot count,
  so it places fewer orders (printed). Its first call in the process (numba compiles, or loads
  its on-disk cache) and the median of the next 3 calls are printed.

  To get the peer figure, make a virtualenv outside the repository with vectorbt and botctl
  (vectorbt 1.2.0 installed beside constraints.txt's numpy 2.4.6 and pandas 3.1.1 with no
  conflict, on Python 3.11):

      python3 -m venv ../peers-venv
      ../peers-venv/bin/pip install vectorbt
      ../peers-venv/bin/pip install -e . -c constraints.txt
      nice -n 19 ../peers-venv/bin/python benchmarks/signal_book_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CASE = r'''
import json, resource, sys, time
from datetime import date, timedelta
import numpy as np
from botctl.spec.load import load_config
from botctl.spec.plan import compile_plan
from botctl.strategy.bars import Bars
from botctl.runtime.backtest import run_backtest
from botctl.engine.engine import account_signals, decide_cycle

n_symbols, years = int(sys.argv[1]), int(sys.argv[2])
sessions = 252 * years
rng = np.random.default_rng(7)
symbols = tuple(f"S{i:03d}" for i in range(n_symbols))
days, day = [], date(2000, 1, 3)
while len(days) < sessions:
    if day.weekday() < 5:
        days.append(day)
    day += timedelta(days=1)
returns = rng.normal(0.0003, 0.015, size=(sessions, n_symbols))
close = 50 * np.exp(np.cumsum(returns, axis=0))
opens = close * np.exp(rng.normal(0, 0.004, size=close.shape))
bars = Bars(tuple(days), symbols, opens, close)
steps = [
    {"score_breakout": {"lookback_days": 20}}, {"score_momentum": {"lookback_days": 63}},
    {"select_top_scores": {"min_score": 0.05, "max_positions": 16}}, {"weigh_slots": {}},
    {"when_cooldown": {"sessions": 5, "after": "stop"}},
    {"exit_stop_loss": {"pct": 0.05}}, {"exit_trailing_stop": {"pct": 0.02}},
    {"exit_time": {"sessions": 14, "band": 0.01}},
    {"exit_take_profit": {"ladder": [{"at": 0.02, "sell": 0.33}, {"at": 0.05, "sell": 0.33}, {"at": 0.10, "sell": 0.34}]}},
    {"exit_score_below": {"level": -0.05}},
    {"displace_weakest": {"margin": 0.2, "min_sessions": 1, "pnl_band": 0.01, "cooldown_sessions": 1}},
]
strategies = {"benchmark": symbols[0], "universes": {"all": list(symbols)},
              "strategies": {"Book": {"universe": "all", "steps": steps}}}
accounts = {"accounts": {"big": {"models": ["Book"], "starting_cash": 10_000_000,
                                 "risk": {"max_orders_per_cycle": 100, "max_orders_per_day": 200,
                                          "max_order_notional": 1e12}}}}
plan = compile_plan(load_config(json.dumps(strategies), json.dumps(accounts), known_symbols=frozenset(symbols)))
start = days[100]
result = run_backtest(plan, bars, start=start)
curve = result.accounts["big"]
account = plan.accounts[0]
# The decisions alone: decide_cycle every session, every order filled in full at the next open.
t0 = time.perf_counter()
signals = account_signals(account, bars)
state, qty, cash, orders = None, {}, 10_000_000.0, 0
for row in range(100, sessions - 1):
    prices = {s: float(close[row, i]) for i, s in enumerate(symbols)}
    out = decide_cycle(account, signals, row, ["Book"], {}, qty, cash, prices, book_state=state)
    state = out.book_state
    for o in out.orders:
        sign = 1 if o.side == "buy" else -1
        qty[o.symbol] = qty.get(o.symbol, 0.0) + sign * o.qty
        if abs(qty[o.symbol]) < 1e-9:
            del qty[o.symbol]  # a broker lists no empty position
        cash -= sign * o.qty * float(opens[row + 1, symbols.index(o.symbol)])
    orders += len(out.orders)
decisions_s = time.perf_counter() - t0
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
stats = {"engine_s": result.engine_seconds, "decisions_s": decisions_s, "rss_mb": rss_mb, "sessions": sessions,
         "fills": curve.trades, "orders_decided": orders, "total_return": curve.nav[-1] / curve.nav[0] - 1}
try:
    import vectorbt as vbt  # the peer figure, only where it is installed
except ImportError:
    stats["vectorbt_s"] = None
else:
    import pandas as pd
    frame = pd.DataFrame(close, index=pd.DatetimeIndex(days), columns=list(symbols))
    # The book's score (20-day breakout + 63-day momentum, as botctl.strategy.scores computes them):
    # enter at or above min_score, exit below the exit level, a 2% trailing stop (the 5% stop loss
    # only fires first when the first close after entry is already over 3% below the entry).
    score = frame / frame.shift(1).rolling(20).max() - 1 + frame / frame.shift(63) - 1
    entries, exits = score >= 0.05, score < -0.05

    def run_vectorbt():
        clock = time.perf_counter()
        portfolio = vbt.Portfolio.from_signals(frame, entries, exits, sl_stop=0.02, sl_trail=True,
                                               init_cash=10_000_000, size=1 / 16, size_type="percent",
                                               cash_sharing=True, group_by=True, call_seq="auto")
        orders = int(portfolio.orders.count())
        return time.perf_counter() - clock, orders

    stats["vectorbt_first_s"], stats["vectorbt_orders"] = run_vectorbt()  # numba compiles, or loads its cache
    stats["vectorbt_s"] = sorted(run_vectorbt()[0] for _ in range(3))[1]
    stats["vectorbt_version"] = vbt.__version__
print(json.dumps(stats))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--years", type=int, default=20)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"machine load (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(f"signal book, {args.symbols} synthetic symbols x {args.years} years ({252 * args.years} sessions), "
          "daily exit checks, 16 slots ...", flush=True)
    out = subprocess.run([sys.executable, "-c", CASE, str(args.symbols), str(args.years)],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"the case failed:\n{out.stderr[-2000:]}")
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  engine time (backtest loop):   {stats['engine_s']:.2f} s   (target < 2 s)")
    print(f"  decisions alone (decide_cycle): {stats['decisions_s']:.2f} s   ({stats['orders_decided']} orders decided)")
    print(f"  peak memory (RSS):             {stats['rss_mb']:.0f} MB  (target < 1024 MB)")
    print(f"  fills: {stats['fills']}, total return of the synthetic book: {stats['total_return']:+.2%}")
    if stats["vectorbt_s"] is None:
        print("  vectorbt Portfolio.from_signals: not installed, no peer figure")
    else:
        print(f"  vectorbt {stats['vectorbt_version']} Portfolio.from_signals (score entries and exits, trailing stop): "
              f"{stats['vectorbt_s'] * 1000:.1f} ms median of 3 after a first call of {stats['vectorbt_first_s']:.2f} s "
              f"(numba's compile or cache load); {stats['vectorbt_orders']} orders")
    print(f"machine load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
