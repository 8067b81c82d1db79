"""Recorded signal files: CSV, JSONL and parquet read with FILE:LINE for every refused row;
a watched file's appended rows picked up (a half-written line waits); `feeds ingest`,
`feeds list` and `tail --kind signals` on the journal."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl

from botctl.feeds.files import FileTail
from botctl.feeds.runner import read_file_signals
from botctl.spec.feeds import load_feeds

from tests.feeds.feeds_support import T0, botctl

CONFIG = load_feeds("kinds: {flow: {latency_seconds: 60}, dark: {}}\n", environ=None)
HEADER = "id,ts_event,symbol,kind,score,direction\n"


def test_csv_jsonl_and_parquet_read_alike_and_bad_rows_name_their_line(tmp_path: Path):
    (tmp_path / "a.csv").write_text(HEADER + "1,2024-03-01T15:00:00Z,SPY,flow,1.5,long\n"
                                    "2,2024-03-01T15:00:00Z,SPY,flow,abc,\n\n"
                                    "3,2024-03-01T15:00:00Z,SPY,flow,1,long,extra\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": 4, "ts_event": "2024-03-01T16:00:00Z", "symbol": "QQQ",
                                                  "kind": "dark", "score": -2}) + "\n[1]\n{oops\n")
    pl.DataFrame({"id": ["5"], "ts_event": [T0], "symbol": ["IWM"], "kind": ["flow"], "score": [0.5]}).write_parquet(
        tmp_path / "c.parquet")
    signals, refused = read_file_signals(tmp_path, "rec", CONFIG)
    assert [(s.signal_id, s.symbol, s.score, s.ts_received == s.ts_event) for s in signals] == [
        ("1", "SPY", 1.5, True), ("4", "QQQ", -2.0, True), ("5", "IWM", 0.5, True)]
    assert [(where, r.reason) for where, r in refused] == [
        ("a.csv:3", "bad_field"), ("a.csv:5", "malformed"), ("b.jsonl:2", "malformed"), ("b.jsonl:3", "malformed")]
    assert len({s.payload_hash for s in signals}) == 3


def test_a_watched_file_yields_appended_rows_once_and_waits_for_a_whole_line(tmp_path: Path):
    path = tmp_path / "live.csv"
    path.write_text(HEADER + "1,2024-03-01T15:00:00Z,SPY,flow,1,\n")
    tail = FileTail(path)
    assert [r.values["id"] for r in tail.poll()] == ["1"]
    assert list(tail.poll()) == []
    with open(path, "a") as fh:
        fh.write("2,2024-03-01T15:01:00Z,SPY,flow,2,\n3,2024-03-01T15:0")
    assert [(r.values["id"], r.where) for r in tail.poll()] == [("2", "live.csv:3")]
    with open(path, "a") as fh:
        fh.write("2:00Z,SPY,flow,3,\n")
    assert [(r.values["id"], r.values["ts_event"]) for r in tail.poll()] == [("3", "2024-03-01T15:02:00Z")]
    path.write_text(HEADER + "9,2024-03-01T15:00:00Z,SPY,flow,1,\n")  # replaced by a shorter file
    assert [r.values["id"] for r in tail.poll()] == ["9"]


def test_ingest_list_and_tail_on_the_journal(config_dir: Path, tmp_path: Path):
    (config_dir / "feeds.yaml").write_text("kinds: {flow: {}}\n")
    future = "2099-01-01T00:00:00Z"  # refused: ahead of its receipt
    file = tmp_path / "s.csv"
    file.write_text(HEADER + f"1,2024-03-01T15:00:00Z,SPY,flow,1.5,long\n2,{future},SPY,flow,2,\n"
                    "3,2024-03-01T15:00:00Z,NOPE,flow,1,\n")
    db = tmp_path / "j.db"
    done = botctl(config_dir, db, "feeds", "ingest", str(file), "--source", "rec", "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert (body["recorded"], body["duplicates"]) == (1, 0)
    assert [(r["where"], r["reason"]) for r in body["refused"]] == [("s.csv:3", "future_timestamp"),
                                                                    ("s.csv:4", "unknown_symbol")]
    again = json.loads(botctl(config_dir, db, "feeds", "ingest", str(file), "--source", "rec", "--json").stdout)
    assert (again["recorded"], again["duplicates"]) == (0, 1)
    listed = botctl(config_dir, db, "feeds", "list")
    assert listed.returncode == 0 and "rec: 1 in all, 1 received today" in listed.stdout
    assert "2024-03-01 15:00:00Z rec flow SPY score 1.5 long (received" in listed.stdout
    tail = botctl(config_dir, db, "tail", "--kind", "signals", "--json")
    assert [json.loads(line)["signal_id"] for line in tail.stdout.splitlines()] == ["1"]
    assert botctl(config_dir, db, "tail", "--kind", "signals", "--account", "x").returncode == 2
    warned = botctl(config_dir, db, "tail", "--severity", "WARN")
    assert warned.stdout.count("feeds/signal.rejected") == 4
    bad = botctl(config_dir, db, "feeds", "list", "--since", "soon")
    assert bad.returncode == 2 and "--since expects a time" in bad.stderr


def test_status_shows_each_source_with_its_counts_and_staleness(config_dir: Path, tmp_path: Path):
    from datetime import datetime, timezone

    from botctl.records import Event
    from botctl.store import Store

    (config_dir / "feeds.yaml").write_text("kinds: {flow: {}}\nsources:\n"
                                           "  hook: {type: webhook, port: 0, secret_env: UNSET_HOOK_SECRET}\n")
    file = tmp_path / "s.csv"
    file.write_text(HEADER + "1,2024-03-01T15:00:00Z,SPY,flow,1.5,long\n")
    db = tmp_path / "j.db"
    assert botctl(config_dir, db, "feeds", "ingest", str(file), "--source", "rec").returncode == 0
    now = datetime.now(timezone.utc)
    with Store.open(db) as store:
        store.insert(Event(ts_event=now, subsystem="feeds", type="feed.stale", severity="WARN", message="x",
                           details={"source": "vendor"}))
    done = botctl(config_dir, db, "status", "--json")
    feeds = {f["source"]: f for f in json.loads(done.stdout)["feeds"]}
    assert feeds["rec"]["signals"] == 1 and feeds["rec"]["today"] == 1 and not feeds["rec"]["stale"]
    assert feeds["vendor"]["stale"] and feeds["vendor"]["signals"] == 0
    # declared in feeds.yaml and silent so far: listed with zeros (its secret is not status's business)
    assert (feeds["hook"]["signals"], feeds["hook"]["stale"], feeds["hook"]["last_received_at"]) == (0, False, None)
    text = botctl(config_dir, db, "status").stdout
    assert "feed rec: 1 signal(s) received today (UTC), 1 in all, last received 20" in text
    assert "feed vendor: 0 signal(s) received today (UTC), 0 in all, last received never, STALE since" in text
    assert "feed hook: 0 signal(s) received today (UTC), 0 in all, last received never\n" in text
    with Store.open(db) as store:
        store.insert(Event(ts_event=now, subsystem="feeds", type="feed.fresh", message="x", details={"source": "vendor"}))
    assert "STALE" not in botctl(config_dir, db, "status").stdout


def test_hostile_rows_are_refused_one_by_one(tmp_path: Path):
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "a.jsonl").write_text(deep[:60_000] + "\n" + '{"id": 1}\n')
    (tmp_path / "b.csv").write_text(HEADER + '1,"2024-03-01T15:00:00Z,SPY\n' + "x" * 200_000 + "\n"
                                    + "2,2024-03-01T15:00:00Z,SPY,flow,1,\n")
    signals, refused = read_file_signals(tmp_path, "rec", CONFIG)
    assert [s.signal_id for s in signals] == ["2"]
    assert [(w, r.reason) for w, r in refused] == [("a.jsonl:1", "malformed"), ("a.jsonl:2", "missing_field"),
                                                   ("b.csv:2", "missing_field"), ("b.csv:3", "malformed")]


def test_a_running_file_source_journals_appended_rows(tmp_path: Path):
    import time

    from botctl.feeds.runner import FeedRunner
    from botctl.store import Store

    (tmp_path / "live.csv").write_text(HEADER + "1,2099-01-01T00:00:00Z,SPY,flow,1,\n")
    config = load_feeds("kinds: {flow: {}}\nmax_future_seconds: 1e10\nsources:\n"
                        "  rec: {type: file, path: live.csv, watch_seconds: 0.1}\n", environ={})
    db = tmp_path / "j.db"
    runner = FeedRunner(config, tmp_path).start(str(db))
    try:
        with open(tmp_path / "live.csv", "a") as fh:
            fh.write("2,2099-01-01T00:00:00Z,SPY,flow,2,\n3,2099-01-01T00:00:00Z,SPY,flow,nan,\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and runner.counts().get(("rec", "recorded", ""), 0) < 2:
            time.sleep(0.05)
    finally:
        runner.stop()
    with Store.open(db, readonly=True) as store:
        assert [s.signal_id for s in store.signals()] == ["1", "2"]
        assert [e.details["where"] for e in store.events() if e.type == "signal.rejected"] == ["live.csv:4"]
    assert [s.type for s in runner.states(T0)] == ["file"]
