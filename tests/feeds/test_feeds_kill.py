"""A SIGKILL while signals arrive: every signal the receiver acknowledged is in the journal
(0 lost), and resending everything after a restart records none twice (0 used twice)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from botctl.store import Store

from tests.feeds.feeds_support import SECRET, Sender, now_iso

FEEDS = """\
kinds: {flow: {}}
symbols: [SPY]
sources:
  hook: {type: webhook, port: 0, secret_env: HOOK_SECRET}
"""


def serve(config_dir: Path, db: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "botctl", "--config-dir", str(config_dir), "--db", str(db),
                             "feeds", "serve", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HOOK_SECRET": SECRET})
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    address = json.loads(line)["sources"][0]["address"]
    return proc, f"http://{address}/signals"


def body(i: int) -> dict:
    return {"id": f"s{i}", "ts_event": now_iso(), "symbol": "SPY", "kind": "flow", "score": float(i)}


@pytest.mark.slow
def test_sigkill_while_signals_arrive_loses_none_and_records_none_twice(tmp_path: Path):
    (tmp_path / "feeds.yaml").write_text(FEEDS)
    db = tmp_path / "j.db"
    proc, url = serve(tmp_path, db)
    acked: list[int] = []
    stop = threading.Event()

    def send() -> None:
        sender = Sender(url)
        i = 0
        while not stop.is_set() and i < 100_000:
            try:
                if sender.post(body(i), f"m{i}").status_code == 200:
                    acked.append(i)
            except Exception:  # noqa: BLE001 - the receiver died mid-request: not acknowledged
                pass
            i += 1
        sender.close()

    senders = [threading.Thread(target=send)]
    senders[0].start()
    deadline = time.monotonic() + 30
    while len(acked) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    stop.set()
    senders[0].join(30)
    assert len(acked) >= 150
    with Store.open(db, readonly=True) as store:
        recorded = [s.signal_id for s in store.signals()]
    assert set(f"s{i}" for i in acked) <= set(recorded)  # acknowledged means journaled
    proc, url = serve(tmp_path, db)
    try:
        sender = Sender(url)
        sent_before = max(acked) + 2
        codes = {i: sender.post(body(i), f"again-{i}").status_code for i in range(sent_before)}
        sender.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0, proc.stderr.read()
    assert all(codes[i] == 409 for i in acked)
    assert set(codes.values()) <= {200, 409}
    with Store.open(db, readonly=True) as store:
        ids = [s.signal_id for s in store.signals()]
    assert len(ids) == len(set(ids)) == sent_before
