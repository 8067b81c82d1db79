"""The webhook receiver on loopback, with a real Standard Webhooks client: what is accepted is
journaled before the answer, everything else is refused with its status and one JSON line."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from botctl.feeds.runner import FeedRunner
from botctl.spec.feeds import load_feeds
from botctl.store import Store

from tests.feeds.feeds_support import PASSPHRASE, SECRET, Sender, now_iso

FEEDS = """\
kinds: {flow: {}, dark: {}}
symbols: [SPY, QQQ]
sources:
  hook: {type: webhook, port: 0, secret_env: HOOK_SECRET, max_body_bytes: 4096, queue_size: QUEUE}
  tv: {type: webhook, port: 0, path: /tv, mode: passphrase, secret_env: TV_PASS}
"""
ENV = {"HOOK_SECRET": SECRET, "TV_PASS": PASSPHRASE}


@pytest.fixture
def running(tmp_path: Path, request):
    queue = getattr(request, "param", 1000)
    db = tmp_path / "j.db"
    Store.open(db).close()
    config = load_feeds(FEEDS.replace("QUEUE", str(queue)), environ=ENV)
    runner = FeedRunner(config, tmp_path, environ=ENV).start(str(db))
    host, port = runner.webhooks["hook"].address
    tv_host, tv_port = runner.webhooks["tv"].address
    sender = Sender(f"http://{host}:{port}/signals")
    yield runner, sender, f"http://{tv_host}:{tv_port}/tv", db
    sender.close()
    runner.stop()


def body(signal_id: str, **extra) -> dict:
    return {"id": signal_id, "ts_event": now_iso(), "symbol": "SPY", "kind": "flow", "score": 1.25, **extra}


def journal(db: Path):
    with Store.open(db, readonly=True) as store:
        return store.signals(), store.events()


def test_signed_signals_are_journaled_before_the_answer_and_bad_ones_refused(running):
    runner, sender, _, db = running
    good = sender.post(body("s1"), "m1")
    assert good.status_code == 200 and good.json()["status"] == "accepted"
    assert [s.signal_id for s in journal(db)[0]] == ["s1"]  # recorded by the time the answer came
    cases = [
        (sender.post(body("s2"), "m2", secret="whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUE="), 401, "bad_signature"),
        (sender.post(body("s3"), "m3", ts=int(time.time()) - 3600), 401, "stale_timestamp"),
        (sender.post(body("s4"), "m4", ts=int(time.time()) + 3600), 401, "stale_timestamp"),
        (sender.post(body("s5"), "m5", signature="v1,AAAA v2,BBBB"), 401, "bad_signature"),
        (sender.client.post(sender.url, content=json.dumps(body("s6"))), 401, "bad_signature"),
        (sender.post(b"{not json", "m7"), 400, "malformed"),
        (sender.post(b"[" * 4000, "m7b"), 400, "malformed"),
        (sender.post(b"\xff\xfe{}", "m7c"), 400, "malformed"),
        (sender.post(body("s8", score="NaN"), "m8"), 400, "not_finite"),
        (sender.post(body("s9", symbol="TSLA"), "m9"), 400, "unknown_symbol"),
        (sender.post(body("s10", kind="insider"), "m10"), 400, "unknown_kind"),
        (sender.post(body("s11", ts_event="2999-01-01T00:00:00Z"), "m11"), 400, "future_timestamp"),
        (sender.post({"ts_event": now_iso(), "symbol": "SPY", "kind": "flow"}, "m12"), 400, "missing_field"),
        (sender.post(body("s13", pad="x" * 5000), "m13"), 413, "oversize"),
        (sender.post(body("s1"), "m1"), 409, "replayed"),
        (sender.post(body("s1"), "m14"), 409, "duplicate"),
    ]
    for response, status, reason in cases:
        assert (response.status_code, response.json()["error"]) == (status, reason), response.text
        assert response.text.count("\n") == 1
    signals, events = journal(db)
    assert [s.signal_id for s in signals] == ["s1"]
    rejected = [e for e in events if e.type == "signal.rejected"]
    assert len(rejected) == len(cases) - 1  # a duplicate is answered, not an error
    assert all(e.severity == "WARN" for e in rejected)
    assert SECRET.encode() not in db.read_bytes() and SECRET[6:].encode() not in db.read_bytes()
    counts = runner.counts()
    assert counts[("hook", "recorded", "")] == 1 and counts[("hook", "rejected", "stale_timestamp")] == 2


def test_a_signal_without_an_id_takes_the_webhook_id(running):
    _, sender, _, db = running
    payload = body("x")
    del payload["id"]
    assert sender.post(payload, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W").status_code == 200
    assert journal(db)[0][0].signal_id == "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


def test_passphrase_mode_and_what_it_does_not_keep(running):
    _, _, tv, db = running
    ok = httpx.post(tv, json={**body("t1"), "passphrase": PASSPHRASE})
    assert ok.status_code == 200, ok.text
    assert httpx.post(tv, json={**body("t2"), "passphrase": "guess"}).json()["error"] == "bad_passphrase"
    assert httpx.post(tv, json=body("t3")).status_code == 401
    assert httpx.post(tv, content=b"garbage").status_code == 401  # nothing about the body before it authenticates
    assert httpx.post(tv, json={**body("t1"), "passphrase": PASSPHRASE}).status_code == 409
    assert httpx.post(tv.replace("/tv", "/other"), json={}).status_code == 404
    assert [s.signal_id for s in journal(db)[0]] == ["t1"]
    assert PASSPHRASE.encode() not in db.read_bytes()


def test_a_flood_of_duplicates_is_recorded_once(running):
    _, sender, _, db = running
    payload = body("dup")
    local = threading.local()

    def send(i: int) -> int:
        if not hasattr(local, "client"):
            local.client = Sender(sender.url)
        return local.client.post(payload, f"m{i}").status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, range(200)))
    assert codes.count(200) == 1 and codes.count(409) == 199, sorted(set(codes))
    assert [s.signal_id for s in journal(db)[0]] == ["dup"]


@pytest.mark.parametrize("running", [4], indirect=True)
def test_a_full_journal_queue_answers_429_and_loses_nothing_it_accepted(running):
    runner, sender, _, db = running
    blocker = sqlite3.connect(db, timeout=1)
    blocker.execute("BEGIN IMMEDIATE")  # the journal is busy: the writer waits, the queue fills
    codes: dict[str, int] = {}

    def send(i: int) -> None:
        client = Sender(sender.url)
        try:
            codes[f"q{i}"] = client.post(body(f"q{i}"), f"m{i}").status_code
        finally:
            client.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    blocker.rollback()
    blocker.close()
    for t in threads:
        t.join(30)
    assert 429 in codes.values() and 200 in codes.values(), codes
    recorded = {s.signal_id for s in journal(db)[0]}
    assert {i for i, c in codes.items() if c == 200} <= recorded
    assert not {i for i, c in codes.items() if c == 429} & recorded
    # The sender retries what was refused: every signal is then recorded exactly once.
    for i, code in codes.items():
        if code != 200:
            assert Sender(sender.url).post(body(i), f"retry-{i}").status_code in (200, 409)
    assert sorted(s.signal_id for s in journal(db)[0]) == sorted(codes)
