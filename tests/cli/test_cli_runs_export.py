"""`botctl runs`, `tail --run` and `botctl export` on a real journal written by a backtest."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import polars as pl
import pytest
from cli_support import backtest_journal, invoke

from botctl.records import Event, Run
from botctl.store import Store

@pytest.fixture(scope="module")
def journal(tmp_path_factory):
    """A journal holding one 2020 backtest and, after it, a manual run with one event."""
    db = backtest_journal(tmp_path_factory.mktemp("runs"), "2020-01-01", "2020-06-30")
    at = datetime(2026, 1, 5, 14, 0, tzinfo=timezone.utc)
    with Store.open(db) as store:
        backtest = store.latest_run()
        store.insert(Run(run_id="manual-1", kind="manual", plan_id=backtest.plan_id, started_at=at,
                         status="finished", ended_at=at, note="kill from the shell"))
        store.insert(Event(ts_event=at, subsystem="control", type="kill", run_id="manual-1", account="rotation-sim",
                           message="halted by the operator"))
    return db, backtest


def test_runs_lists_newest_first_with_what_each_recorded(journal):
    db, backtest = journal
    lines = invoke("--db", str(db), "runs", "--json").stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["run_id"] for r in rows] == ["manual-1", backtest.run_id]
    with Store.open(db, readonly=True, create=False) as store:
        fills = len(store.fills(run_id=backtest.run_id))
        orders = len(store.orders(run_id=backtest.run_id))
    assert fills > 0
    assert rows[1]["counts"]["fills"] == fills and rows[1]["counts"]["orders"] == orders
    assert rows[0]["counts"] == {"orders": 0, "fills": 0, "nav": 0, "events": 1}
    assert rows[1]["mode"] == "backtest" and rows[1]["status"] == "finished"
    assert rows[1]["period_start"] == "2020-01-02" and rows[0]["note"] == "kill from the shell"


def test_runs_filters_by_mode_and_count(journal):
    db, backtest = journal
    assert [json.loads(x)["run_id"] for x in invoke("--db", str(db), "runs", "--json", "--mode", "backtest")
            .stdout.splitlines()] == [backtest.run_id]
    assert [json.loads(x)["run_id"] for x in invoke("--db", str(db), "runs", "--json", "-n", "1")
            .stdout.splitlines()] == ["manual-1"]
    text = invoke("--db", str(db), "runs").stdout.splitlines()
    assert text[0].startswith("run id") and "started (UTC)" in text[0]
    assert text[2].startswith(backtest.run_id) and "2020-01-02..2020-06-30" in text[2]
    assert invoke("--db", str(db), "runs", "--mode", "live").stdout.strip() == f"no runs of mode live in {db}"


def test_runs_rejects_an_unknown_mode(journal):
    result = invoke("--db", str(journal[0]), "runs", "--mode", "sim")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --mode must be one of backtest, replay, paper, live, manual, got 'sim'"


def test_tail_run_shows_only_that_runs_rows(journal):
    db, backtest = journal
    events = invoke("--db", str(db), "tail", "--run", "manual-1", "--json").stdout.splitlines()
    assert [json.loads(e)["run_id"] for e in events] == ["manual-1"]
    fills = [json.loads(x) for x in invoke("--db", str(db), "tail", "--kind", "fills", "-n", "500", "--json",
                                             "--run", backtest.run_id).stdout.splitlines()]
    assert fills and {f["run_id"] for f in fills} == {backtest.run_id}
    assert invoke("--db", str(db), "tail", "--kind", "fills", "--run", "manual-1").stdout == ""


def test_tail_run_names_the_known_runs_for_an_unknown_one(journal):
    db, backtest = journal
    result = invoke("--db", str(db), "tail", "--run", "bt-nope")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: no run 'bt-nope' in {db} (newest: manual-1, {backtest.run_id}; "
                                     "see `botctl runs`)")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_writes_the_runs_trades_and_nav(journal, tmp_path, fmt):
    db, backtest = journal
    with Store.open(db, readonly=True, create=False) as store:
        fills = store.fills(run_id=backtest.run_id)
        navs = [n for _, n in store.rows_after("nav", 0, None, run_id=backtest.run_id)]
    read = pl.read_parquet if fmt == "parquet" else (lambda p: pl.read_csv(p, try_parse_dates=True))
    trades_out, nav_out = tmp_path / f"trades.{fmt}", tmp_path / f"nav.{fmt}"
    result = invoke("--db", str(db), "export", "--run", backtest.run_id, "--out", str(trades_out))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {len(fills)} trades row(s) of run {backtest.run_id} to {trades_out} ({fmt})"
    trades = read(trades_out)
    assert trades["fill_id"].to_list() == [f.fill_id for f in fills]
    assert trades["price"].to_list() == pytest.approx([f.price for f in fills])
    assert trades["as_traded_price"].to_list() == pytest.approx([f.as_traded_price for f in fills])
    assert trades["notional"].to_list() == pytest.approx([f.qty * f.price for f in fills])
    # Rotation models trade to rebalance; the shipped signal book names its entry or exit rule.
    rotation = trades.filter(pl.col("account") != "signals-sim")
    assert set(rotation["reason"].to_list()) <= {"rebalance", "flatten"}
    book = set(trades.filter(pl.col("account") == "signals-sim")["reason"].to_list())
    assert book and book <= {"entry", "displaced", "stop_loss", "trailing_stop", "time", "take_profit", "score_below",
                             "signal_reversed", "regime", "flatten"}
    assert invoke("--db", str(db), "export", "--run", backtest.run_id, "--what", "nav",
                  "--format", fmt, "--out", str(nav_out)).exit_code == 0
    nav = read(nav_out)
    assert nav["nav"].to_list() == pytest.approx([n.nav for n in navs])
    assert nav["ts_event"].dt.replace_time_zone(None).to_list()[0] == navs[0].ts_event.replace(tzinfo=None)


def test_export_never_replaces_a_file_without_force(journal, tmp_path):
    db, backtest = journal
    out = tmp_path / "fills.csv"
    out.write_text("mine\n")
    result = invoke("--db", str(db), "export", "--run", backtest.run_id, "--what", "fills", "--out", str(out))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {out} exists; pass --force to replace it"
    assert out.read_text() == "mine\n"
    assert invoke("--db", str(db), "export", "--run", backtest.run_id, "--what", "fills", "--out", str(out),
                  "--force").exit_code == 0
    assert out.read_text().startswith('"fill_id"')


@pytest.mark.parametrize("args, message", [
    (["--what", "trips"], "--what must be one of trades, fills, orders, nav, got 'trips'"),
    (["--out", "x.txt"], "--format is needed (parquet or csv): 'x.txt' ends in neither .parquet nor .csv"),
    (["--format", "xlsx"], "--format must be parquet or csv, got 'xlsx'"),
    (["--run", "nope"], None),
])
def test_export_bad_arguments_are_one_line_usage_errors(journal, tmp_path, monkeypatch, args, message):
    db, backtest = journal
    monkeypatch.chdir(tmp_path)
    base = {"--run": backtest.run_id, "--out": "out.csv"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    result = invoke("--db", str(db), "export", *[x for kv in base.items() for x in kv])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    if message:
        assert result.stderr.strip() == f"error: {message}"
    assert list(tmp_path.iterdir()) == []
