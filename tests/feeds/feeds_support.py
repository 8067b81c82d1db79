"""What the feeds tests share: a feeds.yaml writer, signal builders, a Standard Webhooks client
and `botctl` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from botctl.feeds.webhook import sign
from botctl.records import Signal

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks documentation's example shape
PASSPHRASE = "correct-horse-battery-staple"
T0 = datetime(2024, 3, 1, 15, 0, tzinfo=timezone.utc)


def signal(signal_id: str, ts_event: datetime, *, symbol: str = "SPY", kind: str = "flow", score: float = 1.0,
           ts_received: datetime | None = None, source: str = "test", expires_at: datetime | None = None,
           direction=None) -> Signal:
    return Signal(source=source, signal_id=signal_id, ts_event=ts_event, ts_received=ts_received or ts_event,
                  symbol=symbol, kind=kind, score=score, direction=direction, expires_at=expires_at)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


class Sender:
    """A Standard Webhooks sender (what a signal vendor's system would run)."""

    def __init__(self, url: str, secret: str = SECRET) -> None:
        self.url, self.secret = url, secret
        self.client = httpx.Client(timeout=10)

    def post(self, body: dict | bytes, msg_id: str, *, ts: int | None = None, secret: str | None = None,
             signature: str | None = None) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        stamp = int(time.time()) if ts is None else ts
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "content-type": "application/json",
                   "webhook-signature": signature or sign(secret or self.secret, msg_id, stamp, raw)}
        return self.client.post(self.url, content=raw, headers=headers)

    def close(self) -> None:
        self.client.close()


def botctl(config_dir: Path, db: Path, *args: str, env: dict | None = None, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(config_dir), "--db", str(db), *args],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
