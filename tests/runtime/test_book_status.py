"""`botctl status` says when a signal book's exit waits for a price: a held symbol whose bars
stop (its exits cannot be checked), or a sale decided and then left undone for want of a bar
(it cannot be sent again), each with the first session without a close."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from botctl.adapters.file_data import load_bars
from botctl.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "signals-sim"


def replay_with_a_gap(tmp_path: Path, symbol: str, gap_from: date, span: str) -> tuple[dict, str]:
    """The shipped signal book replayed over the bundled bars with `symbol`'s bars missing from
    `gap_from` to the end of March 2020; status --json (the account) and the status text."""
    frame = load_bars()
    frame = frame.filter(~((pl.col("symbol") == symbol) & (pl.col("date") >= gap_from)
                           & (pl.col("date") <= date(2020, 3, 31))))
    data = tmp_path / "bars.parquet"
    frame.write_parquet(data)
    common = ["--config-dir", str(ROOT), "--db", str(tmp_path / "j.db"), "--data", str(data)]
    replay = CliRunner().invoke(app, [*common, "run", "--replay", span, "--account", ACCOUNT])
    assert replay.exit_code == 0, replay.output
    status = CliRunner().invoke(app, [*common, "status", "--json"])
    assert status.exit_code == 0, status.output
    text = CliRunner().invoke(app, [*common, "status"])
    return json.loads(status.stdout)["accounts"][ACCOUNT], text.stdout


def test_a_held_symbol_without_prices_shows_its_exits_waiting_since_its_first_missing_session(tmp_path):
    # XLK, bought at the first session, has no bars from 2020-01-10 on: ten sessions refused as
    # suspect data, then the book decides again and XLK's exits wait, not sold blind.
    account, text = replay_with_a_gap(tmp_path, "XLK", date(2020, 1, 10), "2020-01-02:2020-02-14")
    books = {b["symbol"]: b for b in account["book_positions"]}
    assert books["XLK"]["exit_waiting"] == {"rule": "no_price", "since": "2020-01-10", "decided_on": None}
    assert books["XLK"]["entered_on"] == "2019-12-31" and books["XLK"]["entry_price"] > 0
    assert [s for s, b in books.items() if b["exit_waiting"]] == ["XLK"]  # the others are checked as usual
    assert ("XLK entered 2019-12-31" in text and "EXIT WAITING since 2020-01-10: no price for XLK, "
            "its exits are not checked (nothing is sold blind)" in text), text
    assert "book.exit_waiting" in account["last_warning"] and "(since 2020-01-10)" in account["last_warning"]


def test_a_sale_left_undone_without_a_bar_shows_it_waits_with_its_rule_and_when_it_was_decided(tmp_path):
    # XLB's stop loss is decided on 2020-01-27's close; it has no bar from the 28th on, so the
    # sale is canceled at that open and waits for a price to be sent again.
    account, text = replay_with_a_gap(tmp_path, "XLB", date(2020, 1, 28), "2020-01-02:2020-02-21")
    books = {b["symbol"]: b for b in account["book_positions"]}
    assert books["XLB"]["exit_waiting"] == {"rule": "stop_loss", "since": "2020-01-28", "decided_on": "2020-01-27"}
    assert books["XLB"]["entered_on"] is None and books["XLB"]["qty"] == pytest.approx(
        next(p["qty"] for p in account["positions"] if p["symbol"] == "XLB"))  # still held, all of it to sell
    assert ("XLB 919.01 shares to sell; EXIT WAITING since 2020-01-28: no price for XLB, the stop_loss sale "
            "decided on 2020-01-27 is not sent (nothing is sold blind)") in text, text
