"""End to end through the real command: backtest and replay into a real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from botctl.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
METRIC_KEYS = {"total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar", "turnover", "trades"}


def botctl(tmp_path: Path, *args: str):
    return CliRunner().invoke(app, ["--config-dir", str(ROOT), "--db", str(tmp_path / "botctl.db"), *args])


def query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_backtest_json_has_the_documented_shape_and_is_journaled(tmp_path):
    result = botctl(tmp_path, "backtest", "--start", "2019-01-01", "--end", "2020-12-31", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert {"start", "end", "models", "accounts", "benchmark"} <= set(body)
    assert body["start"] == "2019-01-02" and body["end"] == "2020-12-31"
    assert set(body["accounts"]) == {"rotation-sim", "adaptive-sim", "signals-sim"}
    assert len(body["models"]) == 5
    for metrics in [*body["models"].values(), *body["accounts"].values()]:
        assert METRIC_KEYS <= set(metrics)
        assert metrics["max_drawdown"] <= 0
        assert {"alpha", "beta", "correlation"} <= set(metrics)
    assert body["benchmark"]["symbol"] == "SPY"
    # Journaled beside the trading journal, never in it.
    assert not (tmp_path / "botctl.db").exists()
    db = tmp_path / "botctl-backtests.db"
    (run_id, kind, status), = query(db, "select run_id, kind, status from runs")
    assert (kind, status) == ("backtest", "finished") and run_id == body["run_id"]
    # One NAV row per session (2019: 252, 2020: 253) plus the starting mark at the prior close.
    navs = dict(query(db, "select account, count(*) from nav group by account"))
    assert navs["rotation-sim"] == navs["adaptive-sim"] == navs["signals-sim"] == 252 + 253 + 1
    filled = query(db, "select count(*) from orders where status = 'filled'")[0][0]
    fills = query(db, "select count(*) from fills")[0][0]
    assert filled == fills > 0
    trades = sum(body["accounts"][a]["trades"] for a in ("rotation-sim", "adaptive-sim", "signals-sim"))
    assert trades == fills


def test_backtest_report_is_written(tmp_path):
    report = tmp_path / "report.html"
    result = botctl(tmp_path, "backtest", "--start", "2022-01-01", "--end", "2022-12-31", "--report", str(report), "--no-journal")
    assert result.exit_code == 0, result.output
    html = report.read_text()
    assert "<svg" in html and "SectorRotationModel_v1" in html and "SPY" in html
    assert not (tmp_path / "botctl.db").exists()
    # What the report must say: ids, data, the models' steps with parameters, the round trips.
    assert "run: <b>bt-" in html and "plan: <b>" in html and "data: <b>bundled sample data</b>" in html
    assert "select_momentum: {lookback_days: 126, top: 3, min_return: 0.0}" in html
    assert "fallback: {to: TLT, weight: 1.0}" in html
    assert "<h2>Round trips</h2>" in html and "rebalance</td>" in html
    assert 'id="scale-log"' in html  # the log-scale view of the equity chart
    metrics = html[html.index("<h2>Metrics</h2>"): html.index("<h2>Equity")]
    assert "{" not in metrics and "[" not in metrics  # no raw dicts or lists in the tables
    monthly = html[html.index("<h2>Monthly returns</h2>"): html.index("<h2>Models</h2>")]
    assert "<td class=\"name\">2022 SPY</td>" in monthly  # the benchmark under each year
    assert "<td class=\"name\">2021</td>" not in monthly  # no row for the lone starting mark


def test_backtest_report_dates_a_breaker_trip(tmp_path):
    report = tmp_path / "report.html"
    result = botctl(tmp_path, "backtest", "--start", "2025-01-01", "--report", str(report), "--no-journal")
    assert result.exit_code == 0, result.output
    html = report.read_text()
    assert "<b>max_daily_loss</b> 2025-04-04: halted to the end" in html
    assert "model SectorRotationModel_v1: max_daily_loss 2025-04-04" in html  # marked on the equity chart
    assert "model SectorRotationModel_v1: circuit breaker max_daily_loss tripped on 2025-04-04" in result.output


def test_backtest_rejects_bad_dates_with_usage_exit(tmp_path):
    assert botctl(tmp_path, "backtest", "--start", "2020-13-01").exit_code == 2
    assert botctl(tmp_path, "backtest", "--start", "2021-01-01", "--end", "2020-01-01").exit_code == 2


def test_replay_writes_the_journal_like_live_trading(tmp_path):
    result = botctl(tmp_path, "run", "--replay", "2020-02-01:2020-04-30", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished"
    db = tmp_path / "botctl.db"
    # XNYS sessions Feb 3 .. Apr 30 2020: 19 (Presidents' Day closed) + 22 + 21 (Good Friday closed).
    assert summary["sessions"] == 62
    assert query(db, "select kind, status from runs") == [("replay", "finished")]
    # One closing mark per session, after the money put in, marked before the first open.
    navs = dict(query(db, "select account, count(*) from nav group by account"))
    assert navs == {"rotation-sim": 63, "adaptive-sim": 63, "signals-sim": 63}
    assert query(db, "select ts_event, nav from nav where account = 'rotation-sim' order by id limit 1") == [
        ("2020-02-03T14:29:00.000000Z", 100_000.0)]
    # Three rebalances (the first session, March 2, April 1) for each rebalancing account; the
    # signal book decides every session and trades when an entry or an exit fires.
    cycles = query(db, "select count(distinct substr(ts_init, 1, 10)) from orders where account != 'signals-sim'")[0][0]
    assert cycles == 3
    book_days = query(db, "select count(distinct substr(ts_init, 1, 10)) from orders where account = 'signals-sim'")[0][0]
    assert 1 <= book_days <= 62
    # Every filled order has exactly its fill, filled no earlier than it was created.
    rows = query(db, "select o.client_order_id, o.qty, f.qty, o.ts_init <= f.ts_event from orders o join fills f using (client_order_id)")
    assert rows and all(abs(oq - fq) < 1e-9 and ordered for _, oq, fq, ordered in rows)
    assert query(db, "select count(*) from events where type = 'run.finished'")[0][0] == 1
    assert summary["navs"]["rotation-sim"] == pytest.approx(query(db, "select nav from nav where account='rotation-sim' order by id desc limit 1")[0][0])
    # One P&L definition, from the money put in: the replay's summary and status agree.
    status = json.loads(botctl(tmp_path, "status", "--json").stdout)
    for account, nav in summary["navs"].items():
        assert summary["invested"][account] == 100_000.0
        assert summary["total_pnl"][account] == pytest.approx(nav - 100_000.0)
        assert summary["total_return"][account] == pytest.approx(nav / 100_000.0 - 1)
        assert status["accounts"][account]["total_pnl"] == pytest.approx(nav - 100_000.0)


def test_replay_stops_cleanly_on_sigterm(tmp_path):
    db = tmp_path / "botctl.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # 86400 simulated seconds per second: about one session per real second.
    proc = subprocess.Popen(
        [sys.executable, "-m", "botctl", "--config-dir", str(ROOT), "--db", str(db), "run", "--replay", "2020-01-01:2020-12-31",
         "--speed", "86400"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if db.exists() and query(db, "select count(*) from nav")[0][0] >= 4:
                    break
            except sqlite3.OperationalError:  # the file exists before its tables do
                pass
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "replay stopped" in out
    (status,), = query(db, "select status from runs")
    assert status == "stopped"
    # No half-written session: both accounts have the same number of closing marks.
    counts = dict(query(db, "select account, count(*) from nav group by account"))
    assert counts["rotation-sim"] == counts["adaptive-sim"] == counts["signals-sim"]
