"""A signal book trades the same in a backtest and in a replay of the same sessions: the same
orders with the same exit reasons, the same fills, the same closing NAV."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from botctl.cli.app import app

ROOT = Path(__file__).resolve().parents[2]


def botctl(db: Path, *args: str):
    return CliRunner().invoke(app, ["--config-dir", str(ROOT), "--db", str(db), *args])


def trades(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "select substr(f.ts_event, 1, 10), f.symbol, f.side, round(f.qty, 6), round(f.price, 6), o.reason "
            "from fills f join orders o using (client_order_id) where f.account = 'signals-sim' order by f.ts_event, f.symbol"
        ).fetchall()


def test_backtest_and_replay_of_a_signal_book_agree(tmp_path):
    backtest = botctl(tmp_path / "b.db", "backtest", "--account", "signals-sim", "--start", "2019-06-01",
                      "--end", "2020-06-30", "--json")
    assert backtest.exit_code == 0, backtest.output
    replay = botctl(tmp_path / "r.db", "run", "--replay", "2019-06-01:2020-06-30", "--account", "signals-sim", "--json")
    assert replay.exit_code == 0, replay.output
    in_backtest, in_replay = trades(tmp_path / "b-backtests.db"), trades(tmp_path / "r.db")
    assert in_backtest == in_replay
    reasons = {t[5] for t in in_backtest}
    assert "entry" in reasons and len(reasons) >= 3, reasons  # entries and at least two kinds of exit
    body = json.loads(backtest.stdout)
    trips = body["accounts"]["signals-sim"]["round_trips"]
    assert {t["exit_reason"] for t in trips} - {"end"} == reasons - {"entry"}
    summary = json.loads(replay.stdout.strip().splitlines()[-1])
    nav = body["accounts"]["signals-sim"]
    assert abs(summary["navs"]["signals-sim"] - 100_000 * (1 + nav["total_return"])) < 1e-6
