"""`botctl run` on the fake Alpaca server starts feeds.yaml's webhook beside the trading loop:
signals pushed while it trades are journaled (received on the run's clock, here BOTCTL_CLOCK's
rehearsal one), bad ones refused, both counted on /metrics, and SIGTERM stops both."""

from __future__ import annotations

import re
import select
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "live"))

from live_support import alpaca_account, make_workspace, new_fake  # noqa: E402

from botctl.store import Store  # noqa: E402

from tests.feeds.feeds_support import SECRET, Sender  # noqa: E402

FEEDS = """\
kinds: {flow: {}}
sources:
  hook: {type: webhook, port: 0, secret_env: HOOK_SECRET}
"""


def _line(proc, pattern: str, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        if proc.poll() is not None:
            break
    raise AssertionError(f"no line matching {pattern!r}: {seen} {proc.stderr.read() if proc.poll() is not None else ''}")


@pytest.mark.slow
def test_a_paper_run_journals_webhook_signals_beside_trading(tmp_path: Path):
    ws = make_workspace(tmp_path, HOOK_SECRET=SECRET)
    (ws.config / "feeds.yaml").write_text(FEEDS)
    with new_fake() as fake:
        ws.write_accounts(alpaca_account("alp", fake.url))
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        proc = ws.spawn(ws.argv("run", "--cache-dir", str(ws.cache), "--health-port", str(port)))
        try:
            address = _line(proc, r"feeds: hook \(webhook\) listening on (\S+)", 60).group(1)
            _line(proc, r"next wake-up", 60)  # the trading run has begun (its events carry its id)
            sender = Sender(f"http://{address}/signals")
            event = "2024-03-01T15:29:00Z"  # the run's clock starts at 15:30 (BOTCTL_CLOCK)
            good = sender.post({"id": "p1", "ts_event": event, "symbol": "XLK", "kind": "flow", "score": 2}, "m1")
            bad = sender.post({"id": "p2", "ts_event": event, "symbol": "NOPE", "kind": "flow", "score": 2}, "m2")
            sender.close()
            assert good.status_code == 200, good.text
            assert good.json()["received_at"].startswith("2024-03-01T15:3")
            assert (bad.status_code, bad.json()["error"]) == (400, "unknown_symbol")  # not one the plan trades
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            assert 'botctl_signals_received_total{source="hook"} 2.0' in metrics
            assert 'botctl_signals_accepted_total{source="hook"} 1.0' in metrics
            assert 'botctl_signals_rejected_total{reason="unknown_symbol",source="hook"} 1.0' in metrics
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0
    with Store.open(ws.db, readonly=True) as store:
        assert [(s.signal_id, s.ts_received.date().isoformat()) for s in store.signals()] == [("p1", "2024-03-01")]
        run = store.latest_run()
        assert [(e.details["reason"], e.run_id) for e in store.events() if e.type == "signal.rejected"] == [
            ("unknown_symbol", run.run_id)]  # the trading run's event
        assert run.status == "stopped"
