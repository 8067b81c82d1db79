"""The http_poll source against a loopback signal API: 429 storms, 5xx, malformed answers and
an API that is down; the stale rule; the API key sent as a header and nowhere else."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from botctl.feeds.intake import Intake
from botctl.feeds.poll import Poller
from botctl.spec.feeds import load_feeds
from botctl.store import Store

from tests.feeds.fake_signal_api import FakeSignalApi

KEY = "sk-live-1234567890abcdef"
FEEDS = """\
kinds: {flow: {}}
sources:
  vendor:
    type: http_poll
    url: URL
    auth: {header: Authorization, env: VENDOR_KEY, prefix: "Bearer "}
    items: data.items
    fields: {id: trade_id, ts_event: executed_at, symbol: ticker, score: premium.usd}
    kind: flow
    retries: 3
    backoff_seconds: 0.01
    timeout_seconds: 2
    stale_after_minutes: 10
"""


class Clock:
    def __init__(self) -> None:
        self.t = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.t


def item(i: int, **extra) -> dict:
    return {"trade_id": f"t{i}", "executed_at": datetime.now(timezone.utc).isoformat(), "ticker": "SPY",
            "premium": {"usd": 1000.0 + i}, **extra}


@pytest.fixture
def api():
    fake = FakeSignalApi()
    yield fake
    fake.close()


@pytest.fixture
def setup(tmp_path: Path, api):
    db = tmp_path / "j.db"
    Store.open(db).close()
    intake = Intake(str(db)).start()
    clock = Clock()

    def make(url: str = api.url) -> Poller:
        spec = load_feeds(FEEDS.replace("URL", url), environ={"VENDOR_KEY": KEY}).sources["vendor"]
        return Poller("vendor", spec, KEY, intake, clock, sleep=lambda s: False, kinds={"flow": None},
                      known_symbols={"SPY"}, max_future=timedelta(minutes=5))

    yield make, intake, clock, db
    intake.stop()


def read(db: Path):
    with Store.open(db, readonly=True) as store:
        return store.signals(), store.events()


def test_a_429_storm_is_retried_and_the_answer_journaled(setup, api):
    make, intake, _, db = setup
    api.answer(429, {"error": "slow down"}, {"Retry-After": "0"}, times=3)
    api.answer(200, {"data": {"items": [item(1), item(2)]}})
    poller = make()
    poller.once()
    intake.stop()
    signals, events = read(db)
    assert [(s.signal_id, s.score) for s in signals] == [("t1", 1001.0), ("t2", 1002.0)]
    assert len(api.requests) == 4 and all(r["authorization"] == f"Bearer {KEY}" for r in api.requests)
    assert not events and poller.last_ok is not None
    assert KEY.encode() not in db.read_bytes()


def test_5xx_past_the_retries_malformed_answers_and_bad_items_never_crash(setup, api):
    make, intake, _, db = setup
    poller = make()
    api.answer(503, b"down", times=4)
    poller.once()
    api.answer(200, b"<html>not json</html>")
    poller.once()
    api.answer(200, {"data": {"items": "nope"}})
    poller.once()
    api.answer(200, {"data": {"items": [item(3), item(4, ticker="ZZZ"), "text", item(5, premium={"usd": "inf"}),
                                        item(3)]}})
    poller.once()
    api.answer(401, {"error": "bad key"})
    poller.once()
    assert len(api.requests) == 4 + 1 + 1 + 1 + 1  # 401 is not retried
    intake.stop()
    signals, events = read(db)
    assert [s.signal_id for s in signals] == ["t3"]  # and t3's repeat is a duplicate, recorded once
    failed = [e for e in events if e.type == "feed.failed"]
    assert len(failed) == 2 and "HTTP 503 after 4 tries" in failed[0].message  # told once per outage
    rejected = sorted(e.details["reason"] for e in events if e.type == "signal.rejected")
    assert rejected == ["malformed", "not_finite", "unknown_symbol"]
    assert all(KEY not in e.message for e in events)


def test_an_api_that_is_down_goes_stale_then_fresh(setup, api):
    make, intake, clock, db = setup
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/v1/flow"
    poller = make(closed)
    poller.once()
    assert not poller.is_stale(clock())
    clock.t += timedelta(minutes=11)
    poller.once()
    assert poller.is_stale(clock()) and poller.stale
    poller.once()  # still down: said once
    good = make()
    good.started, good.last_ok, good.stale, good.last_error = poller.started, poller.last_ok, True, "down"
    api.answer(200, {"data": {"items": [item(9)]}})
    good.once()
    assert not good.is_stale(clock())
    intake.stop()
    _, events = read(db)
    assert [e.type for e in events] == ["feed.failed", "feed.stale", "feed.fresh"]
    assert "no new entries from it" in events[1].message and events[1].severity == "WARN"
