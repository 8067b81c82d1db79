"""Webhook throughput and latency on loopback. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/webhook_speed.py [--signals 5000] [--senders 8]

A `botctl feeds serve` process (the receiver `botctl run` starts, without the trading loop)
listens on 127.0.0.1 with a Standard Webhooks source, journaling into a fresh durable
journal. Sender threads post signed signals over keep-alive connections as fast as they are
answered. Figures:

- signals/s accepted and journaled: 200 answers (each sent only after its signal's batch is
  committed) divided by the wall time from the first send to the last answer;
- receipt -> journaled, p50 / p99 / max: measured by the sender from writing the request to
  reading its 200, so it is an upper bound of the receiver's own receipt-to-commit time;
- the journal's row count afterwards (equal to the accepted count: nothing lost or doubled).

Targets (issue 18): at least 1,000 signals/s with p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from botctl.feeds.webhook import sign  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FEEDS = "kinds: {flow: {}}\nsymbols: [SPY]\nsources:\n  hook: {type: webhook, port: 0, secret_env: HOOK_SECRET}\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--signals", type=int, default=5000)
    parser.add_argument("--senders", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "feeds.yaml").write_text(FEEDS)
        db = folder / "bench.db"
        proc = subprocess.Popen([sys.executable, "-m", "botctl", "--config-dir", str(folder), "--db", str(db),
                                 "feeds", "serve", "--json"], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "HOOK_SECRET": SECRET})
        try:
            assert proc.stdout is not None
            host, port = json.loads(proc.stdout.readline())["sources"][0]["address"].split(":")
            latencies, statuses, wall = run_senders(host, int(port), args.signals, args.senders)
        finally:
            proc.terminate()
            proc.wait(30)
        from botctl.store import Store

        with Store.open(db, readonly=True) as store:
            rows = len(store.signals())
    accepted = statuses.count(200)
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    print(f"webhook on loopback: {args.signals} signed signals from {args.senders} senders, "
          f"durable journal, {os.cpu_count()} cores")
    print(f"  accepted and journaled: {accepted} ({accepted / wall:,.0f} signals/s over {wall:.2f} s); "
          f"other answers: {sorted(set(statuses) - {200}) or 'none'}")
    print(f"  receipt -> journaled (sender-side, upper bound): p50 {pct(0.50):.1f} ms, p99 {pct(0.99):.1f} ms, "
          f"max {ordered[-1] * 1000:.1f} ms, mean {statistics.fmean(ordered) * 1000:.1f} ms")
    print(f"  journal rows afterwards: {rows} (accepted: {accepted})")
    print("  targets: >= 1,000 signals/s, p99 < 50 ms")


def run_senders(host: str, port: int, total: int, senders: int) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    per = total // senders

    def send(k: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        mine_l, mine_s = [], []
        for i in range(per):
            signal_id = f"b{k}-{i}"
            body = json.dumps({"id": signal_id, "ts_event": datetime.now(timezone.utc).isoformat(),
                               "symbol": "SPY", "kind": "flow", "score": 1.0}).encode()
            stamp = int(time.time())
            headers = {"webhook-id": signal_id, "webhook-timestamp": str(stamp),
                       "webhook-signature": sign(SECRET, signal_id, stamp, body),
                       "Content-Type": "application/json", "Content-Length": str(len(body))}
            start = time.perf_counter()
            conn.request("POST", "/signals", body, headers)
            response = conn.getresponse()
            response.read()
            mine_l.append(time.perf_counter() - start)
            mine_s.append(response.status)
        conn.close()
        with lock:
            latencies.extend(mine_l)
            statuses.extend(mine_s)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, statuses, time.perf_counter() - began


if __name__ == "__main__":
    main()
