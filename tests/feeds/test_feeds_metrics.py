"""A run's feeds on its health endpoint and on its clock: /metrics, served for real, counts the
signals each source received, journaled and refused (by reason); a rehearsal clock
(BOTCTL_CLOCK) stamps the receipts, while the webhook's signature window stays on real time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from botctl.feeds.runner import FeedRunner
from botctl.runtime.health import HealthServer, Telemetry
from botctl.runtime.trading import LiveClock
from botctl.spec.feeds import load_feeds
from botctl.store import Store

from tests.feeds.feeds_support import SECRET, Sender

FEEDS = """\
kinds: {flow: {}}
symbols: [SPY, QQQ]
sources:
  hook: {type: webhook, port: 0, secret_env: HOOK_SECRET}
  other: {type: webhook, port: 0, path: /other, secret_env: HOOK_SECRET}
"""
ENV = {"HOOK_SECRET": SECRET}
REHEARSAL = datetime(2024, 3, 5, 14, 0, tzinfo=timezone.utc)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_signals_by_source_and_reason_on_a_rehearsal_clock(tmp_path: Path):
    db = tmp_path / "j.db"
    clock = LiveClock("2024-03-05T14:00:00Z*1")
    with Store.open(db) as store:
        runner = FeedRunner(load_feeds(FEEDS, environ=ENV), tmp_path, environ=ENV).start(store, clock)
        telemetry = Telemetry({"a": {}})
        telemetry.signals_from(runner)
        host, port = runner.webhooks["hook"].address
        sender = Sender(f"http://{host}:{port}/signals")
        try:
            with HealthServer(telemetry, "127.0.0.1", 0) as server:
                event = (REHEARSAL - timedelta(minutes=1)).isoformat()
                good = {"id": "g1", "ts_event": event, "symbol": "SPY", "kind": "flow", "score": 1.0}
                answers = [sender.post(good, "m1"),  # signed with the real time: accepted
                           sender.post({**good, "id": "g2"}, "m2"),
                           sender.post(good, "m3"),  # the same signal id again: a duplicate
                           sender.post({**good, "id": "b1", "symbol": "NOPE"}, "m4"),
                           sender.post({**good, "id": "b2"}, "m5", signature="v1,AAAA"),
                           sender.post({**good, "id": "b3"}, "m6", secret="whsec_" + "A" * 32)]
                assert [a.status_code for a in answers] == [200, 200, 409, 400, 401, 401]
                received_at = datetime.fromisoformat(answers[0].json()["received_at"])
                assert REHEARSAL <= received_at < REHEARSAL + timedelta(minutes=5)  # the run's clock, not 2026's
                future = sender.post({**good, "id": "f1", "ts_event": datetime.now(timezone.utc).isoformat()}, "m7")
                assert (future.status_code, future.json()["error"]) == (400, "future_timestamp")  # judged on it too
                text = httpx.get(f"{server.address}/metrics", timeout=5).text
        finally:
            sender.close()
            runner.stop()
        journaled = store.signals()
    found = samples(text)
    assert found[("botctl_signals_received_total", (("source", "hook"),))] == 7
    assert found[("botctl_signals_accepted_total", (("source", "hook"),))] == 2
    rejected = {dict(labels)["reason"]: value for (name, labels), value in found.items()
                if name == "botctl_signals_rejected_total" and dict(labels)["source"] == "hook"}
    assert rejected == {"duplicate": 1, "unknown_symbol": 1, "bad_signature": 2, "future_timestamp": 1}
    # a source that received nothing is still listed, with zeros
    assert found[("botctl_signals_received_total", (("source", "other"),))] == 0
    assert found[("botctl_signal_source_stale", (("source", "hook"),))] == 0
    assert [(s.signal_id, REHEARSAL <= s.ts_received < REHEARSAL + timedelta(minutes=5)) for s in journaled] == [
        ("g1", True), ("g2", True)]
