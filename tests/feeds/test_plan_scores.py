"""External signals reach the signal books in backtests and replays (feeds.plan_scores), and
only from the moment an order could have been filled knowing them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "signal-feed"

STRATEGIES = """\
benchmark: SPY
universes:
  u: [XLK, XLF]
strategies:
  OneSignal:
    universe: u
    steps:
      - score_signal: {kind: flow, weight: 1.0}
      - select_top_scores: {min_score: 0.5, max_positions: 1}
      - weigh_slots: {}
      - exit_time: {sessions: 3}
"""
ACCOUNTS = """\
accounts:
  a:
    broker: sim
    mode: paper
    starting_cash: 100000
    models: [OneSignal]
"""
FEEDS = """\
kinds:
  flow: {weight: 1.0, latency_seconds: 60}
sources:
  rec:
    type: file
    path: signals.csv
"""


def botctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "botctl", *args], capture_output=True, text=True, timeout=120)


def one_signal_folder(tmp_path: Path, ts_event: str, *, feeds: bool = True) -> Path:
    (tmp_path / "strategies.yaml").write_text(STRATEGIES)
    (tmp_path / "accounts.yaml").write_text(ACCOUNTS)
    if feeds:
        (tmp_path / "feeds.yaml").write_text(FEEDS)
    (tmp_path / "signals.csv").write_text(f"id,ts_event,symbol,kind,score\ns1,{ts_event},XLK,flow,0.9\n")
    return tmp_path


def entries(folder: Path) -> list[str]:
    done = botctl("--config-dir", str(folder), "--db", str(folder / "j.db"), "backtest", "--json",
                  "--start", "2024-02-01", "--end", "2024-04-30")
    assert done.returncode == 0, done.stderr
    return [t["entry_at"] for t in json.loads(done.stdout)["models"]["OneSignal"]["round_trips"]]


def test_a_signal_known_before_the_open_it_fills_at_is_traded_that_session(tmp_path):
    # 2024-03-05 opens at 14:30 UTC; with 60 s of declared latency a 14:28 signal is known at 14:29.
    assert entries(one_signal_folder(tmp_path, "2024-03-05T14:28:00Z"))[0] == "2024-03-05"


def test_a_signal_after_the_open_waits_for_the_next_session_though_the_cycle_runs_later(tmp_path):
    # Known at 14:30:30: after the simulated fill at the open, though before the 15:00 cycle.
    assert entries(one_signal_folder(tmp_path, "2024-03-05T14:29:30Z"))[0] == "2024-03-06"


def test_a_replay_trades_the_same_signals_as_the_backtest(tmp_path):
    folder = one_signal_folder(tmp_path, "2024-03-05T14:28:00Z")
    done = botctl("--config-dir", str(folder), "--db", str(folder / "r.db"), "run", "--replay", "2024-02-01:2024-04-30")
    assert done.returncode == 0, done.stderr
    tail = botctl("--config-dir", str(folder), "--db", str(folder / "r.db"), "tail", "--kind", "orders", "-n", "100",
                  "--json")
    assert tail.returncode == 0, tail.stderr
    buys = sorted({json.loads(line)["ts_event"][:10] for line in tail.stdout.splitlines()
                   if line.strip() and json.loads(line)["side"] == "buy"})
    # The replay's orders are placed at the cycle of the session the backtest entered on.
    assert buys[:2] == entries(folder)[:2]


def test_score_signal_without_a_feeds_file_is_a_config_error(tmp_path):
    folder = one_signal_folder(tmp_path, "2024-03-05T14:28:00Z", feeds=False)
    done = botctl("--config-dir", str(folder), "--db", str(folder / "j.db"), "backtest")
    assert done.returncode == 4
    problem, summary = done.stderr.strip().splitlines()  # as every config error: the problem, then the count
    assert problem.startswith("strategies.yaml:") and "no feeds.yaml" in problem and "flow" in problem
    assert summary == "1 problem(s) in the config; nothing was run"


def test_the_shipped_signal_feed_example_trades_on_its_signals(tmp_path):
    def run(folder: Path) -> dict:
        done = botctl("--config-dir", str(folder), "--db", str(tmp_path / f"{folder.name}.db"), "backtest", "--json",
                      "--start", "2023-02-01", "--end", "2024-12-31")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["models"]["FlowBook_v1"]

    shipped = run(EXAMPLE)
    assert shipped["trade_stats"]["round_trips"] > 10
    # The same example with every flow score turned around must trade differently.
    flipped = tmp_path / "flipped"
    shutil.copytree(EXAMPLE, flipped)
    rows = (REPO / "botctl" / "data" / "example_signals.csv").read_text().splitlines()
    header = rows[0].split(",")
    col = header.index("score")
    out = [rows[0]]
    for row in rows[1:]:
        cells = row.split(",")
        cells[col] = str(-float(cells[col]))
        out.append(",".join(cells))
    (flipped / "signals.csv").write_text("\n".join(out) + "\n")
    feeds = (flipped / "feeds.yaml").read_text().replace("bundled:example_signals.csv", "signals.csv")
    (flipped / "feeds.yaml").write_text(feeds)
    assert [t["entry_at"] for t in run(flipped)["round_trips"]] != [t["entry_at"] for t in shipped["round_trips"]]
