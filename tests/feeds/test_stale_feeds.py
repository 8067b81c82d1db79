"""The stale rule end to end, against the loopback signal API: an http_poll source that stops
answering for stale_after_minutes gives the signal book no new entry and no score-based exit
(its scores count as missing), journals `feed.stale`, `status` says so, and the first good
answer journals `feed.fresh` and its scores count again. The run's clock judges all of it."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from botctl.adapters.file_data import load_bars
from botctl.engine.engine import account_signals
from botctl.engine.positions import ModelBook, OpenPosition, decide_book
from botctl.feeds.plan_scores import LiveScores
from botctl.feeds.runner import FeedRunner, read_feeds
from botctl.spec.load import load_config
from botctl.spec.plan import compile_plan
from botctl.store import Store
from botctl.strategy.bars import bars_from_frame

from tests.feeds.fake_signal_api import FakeSignalApi
from tests.feeds.feeds_support import botctl

STRATEGIES = """\
benchmark: SPY
universes:
  u: [XLK, XLF]
strategies:
  Flow:
    universe: u
    steps:
      - score_signal: {kind: flow, weight: 1.0}
      - select_top_scores: {min_score: 0.5, max_positions: 1}
      - weigh_slots: {}
      - exit_score_below: {level: 0.5}
"""
ACCOUNTS = """\
accounts:
  a:
    broker: sim
    mode: paper
    starting_cash: 100000
    models: [Flow]
"""
FEEDS = """\
kinds: {flow: {weight: 1.0}}
sources:
  vendor:
    type: http_poll
    url: URL
    interval_seconds: 3600
    items: data
    fields: {id: trade_id, ts_event: executed_at, symbol: ticker, score: premium}
    kind: flow
    retries: 0
    timeout_seconds: 2
    stale_after_minutes: 10
"""
LAST_BAR = date(2024, 3, 4)  # the cycle of 2024-03-05 decides on it; the sim account's orders fill at 14:30 UTC
OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=timezone.utc)


class RunClock:
    """The run's clock (a rehearsal clock would do the same): set by the test."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t


def items(at: datetime) -> dict:
    stamp = (at - timedelta(minutes=5)).isoformat()
    return {"data": [{"trade_id": "k1", "executed_at": stamp, "ticker": "XLK", "premium": 0.2},
                     {"trade_id": "f1", "executed_at": stamp, "ticker": "XLF", "premium": 0.9}]}


def wait_for(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def api():
    fake = FakeSignalApi()
    yield fake
    fake.close()


def test_a_stale_source_makes_no_entry_and_no_score_exit_until_it_answers_again(tmp_path: Path, api):
    (tmp_path / "strategies.yaml").write_text(STRATEGIES)
    (tmp_path / "accounts.yaml").write_text(ACCOUNTS)
    (tmp_path / "feeds.yaml").write_text(FEEDS.replace("URL", api.url))
    plan = compile_plan(load_config(STRATEGIES, ACCOUNTS))
    account = plan.accounts[0]
    model = account.models[0]
    bars = bars_from_frame(load_bars().filter(pl.col("date") <= LAST_BAR), plan.symbols)  # the bundled bars
    assert bars.dates[-1] == LAST_BAR
    row = len(bars.dates) - 1
    # XLK has been held since February, its entry settled: exit_score_below sells it on a score under 0.5.
    held = {"XLK": OpenPosition(symbol="XLK", qty=10.0, entered_qty=10.0, decided_on=bars.dates[row - 10],
                                entry_price=float(bars.open[row - 9, bars.symbols.index("XLK")]), entry_score=0.8)}
    book = ModelBook(positions=held, as_of=bars.dates[row - 1])
    prices = {s: float(bars.close[row, bars.symbols.index(s)]) for s in account.symbols}

    def decide(scores):
        out = decide_book(model, account_signals(account, bars, scores), row, book, {"XLK": 10.0}, prices,
                          100_000.0, account="a")
        return [(o.symbol, o.side, o.reason) for o in out.orders]

    clock = RunClock(OPEN - timedelta(minutes=5))
    api.default = (200, json.dumps(items(clock.t)).encode(), {})
    db = tmp_path / "j.db"
    config = read_feeds(tmp_path, environ={})
    with Store.open(db) as store:
        runner = FeedRunner(config, tmp_path, known_symbols=plan.symbols).start(store, clock)
        try:
            poller = runner.watched["vendor"]
            wait_for(lambda: runner.counts().get(("vendor", "recorded", ""), 0) == 2 and poller.last_ok is not None,
                     "the first poll's signals")
            live = LiveScores(plan, tmp_path, store, stale=runner.stale_since, now=clock.now)
            flow = "flow"
            clock.t = OPEN + timedelta(minutes=1)  # the cycle, 6 minutes after the last good answer
            fresh = live(account, bars)
            assert fresh is not None
            assert fresh[flow][row, bars.symbols.index("XLF")] == 0.9
            assert decide(fresh) == [("XLK", "sell", "score_below"), ("XLF", "buy", "entry")]

            api.default = (503, b"down", {})
            assert runner.watched["vendor"].once() is None  # a failed poll, not stale yet
            assert runner.stale_since() == {}
            clock.t = OPEN + timedelta(minutes=10)  # a retried cycle: no good answer for 15 minutes
            quiet = live(account, bars)
            assert quiet is not None and np.isnan(quiet[flow][row]).all()
            assert decide(quiet) == []  # no entry on XLF, and XLK is not sold because the feed went quiet
            assert runner.stale_since() == {"vendor": OPEN - timedelta(minutes=5) + timedelta(minutes=10)}

            wait_for(lambda: any(f["source"] == "vendor" and f["stale"]
                                 for f in json.loads(botctl(tmp_path, db, "status", "--json").stdout)["feeds"]),
                     "status to say the source is stale")
            text = botctl(tmp_path, db, "status").stdout
            assert "2 in all" in text and "STALE since 2024-03-05" in text and "no new entries" in text

            clock.t = OPEN + timedelta(minutes=20)
            api.default = (200, json.dumps(items(clock.t)).encode(), {})
            runner.watched["vendor"].once()  # it answers again
            assert runner.stale_since() == {}
            again = live(account, bars)
            assert again is not None and again[flow][row, bars.symbols.index("XLF")] == 0.9
        finally:
            runner.stop()
        events = [(e.type, e.severity, e.ts_event) for e in store.events() if e.subsystem == "feeds"]
    assert events == [("feed.failed", "WARN", OPEN + timedelta(minutes=1)), ("feed.stale", "WARN", OPEN + timedelta(minutes=10)),
                      ("feed.fresh", "INFO", OPEN + timedelta(minutes=20))]  # stamped on the run's clock
    text = botctl(tmp_path, db, "status").stdout
    assert "feed vendor:" in text and "STALE" not in text


def test_a_source_stale_when_the_bot_stopped_stays_stale_until_it_answers(tmp_path: Path, api):
    (tmp_path / "feeds.yaml").write_text(FEEDS.replace("URL", api.url))
    config = read_feeds(tmp_path, environ={})
    db = tmp_path / "j.db"
    clock = RunClock(OPEN)
    api.default = (503, b"down", {})
    with Store.open(db) as store:
        runner = FeedRunner(config, tmp_path, known_symbols={"XLK", "XLF"}).start(store, clock)
        wait_for(lambda: runner.watched["vendor"].last_error, "the first poll to fail")
        clock.t += timedelta(minutes=11)
        assert set(runner.stale_since()) == {"vendor"}
        runner.stop()
        # A restart: the journal's last word is feed.stale, so the source is stale from its first
        # moment (not only 10 minutes later), and its first good answer records feed.fresh.
        api.default = (500, b"still down", {})
        api.requests.clear()
        restarted = FeedRunner(config, tmp_path, known_symbols={"XLK", "XLF"}).start(store, clock)
        try:
            assert restarted.stale_since() == {"vendor": OPEN + timedelta(minutes=11)}  # when feed.stale was journaled
            wait_for(lambda: restarted.watched["vendor"].last_error, "the restarted poll to fail")
            api.default = (200, json.dumps(items(clock.t)).encode(), {})
            restarted.watched["vendor"].once()
            assert restarted.stale_since() == {}
        finally:
            restarted.stop()
        types = [e.type for e in store.events() if e.subsystem == "feeds"]
    assert types == ["feed.failed", "feed.stale", "feed.failed", "feed.fresh"]
