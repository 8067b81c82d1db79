"""Shared pieces of the notification tests: notify.yaml text, a journal with a Notifier
attached through the Store's listener, and records of one paper run."""

from __future__ import annotations

import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from botctl.notify.delivery import apprise_schemes, check_url
from botctl.notify.setup import notifying
from botctl.records import Event, Fill, NavSnapshot, Order, Run
from botctl.runtime.health import Telemetry
from botctl.spec.notify import load_notify
from botctl.store import Store

UTC = timezone.utc
# 2024-03-01, a Friday session: 14:30-21:00 UTC.
OPEN = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
CLOSE = datetime(2024, 3, 1, 21, 0, tzinfo=UTC)
SECRET = "hook-s3cr3t-TOKEN-0123456789"
FAST = """
group_seconds: 0.2
timeout_seconds: 1
flush_seconds: 3
retry: {attempts: 3, first_seconds: 0.05, max_seconds: 0.2}
rate_limit: {messages: 1000, per_minutes: 1}
"""


# notify.yaml settings of the tests that write the file for a botctl command: fast retries,
# a short flush, replays heard too.
FILE_SETTINGS = {"kinds": "[replay]", "group_seconds": "0.3", "flush_seconds": "2", "timeout_seconds": "1",
                 "retry": "{attempts: 2, first_seconds: 0.05, max_seconds: 0.1}",
                 "rate_limit": "{messages: 1000, per_minutes: 1}"}


def write_notify(config_dir: Path, url: str, *, to: str = "ops", **settings: str) -> None:
    """notify.yaml in `config_dir`: one destination `to` at `url` hearing every event."""
    lines = [f'destinations:\n  {to}: {{url: "{url}"}}', f"routes:\n  - to: {to}"]
    lines += [f"{key}: {value}" for key, value in {**FILE_SETTINGS, **settings}.items()]
    (config_dir / "notify.yaml").write_text("\n".join(lines) + "\n")


def config(text: str, environ: dict | None = None, accounts=("main", "other"), fast: bool = True):
    """notify.yaml from `text`, with FAST's settings unless `fast` is False."""
    text = textwrap.dedent(text) + (FAST if fast else "")
    return load_notify(text, environ=environ or {}, check_url=check_url, schemes=apprise_schemes(),
                       known_accounts=accounts)


def run_record(kind: str = "paper", run_id: str = "paper-1") -> Run:
    return Run(run_id=run_id, kind=kind, plan_id="plan", started_at=OPEN, pid=1)


def event(type_: str, severity: str = "INFO", account: str | None = "main", ts: datetime = OPEN, **kw) -> Event:
    return Event(ts_event=ts, subsystem=kw.pop("subsystem", "runtime"), type=type_, severity=severity,
                 run_id=kw.pop("run_id", "paper-1"), account=account, message=kw.pop("message", f"{type_} happened"), **kw)


def order(symbol: str, side: str = "buy", *, account: str = "main", cycle: str = "20240301T1500", status: str = "filled",
          qty: float = 10.0, price: float = 100.0, run_id: str = "paper-1") -> Order:
    cid = f"bc-plan-{account}-{cycle}-{symbol}-{side[0]}0"
    filled = status == "filled"
    return Order(client_order_id=cid, run_id=run_id, account=account, symbol=symbol, side=side, qty=qty, status=status,
                 ts_init=OPEN + timedelta(minutes=30), ts_event=OPEN + timedelta(minutes=30), ref_price=price,
                 filled_qty=qty if filled else 0.0, avg_fill_price=price if filled else None)


def fill(o: Order) -> Fill:
    return Fill(fill_id=f"f-{o.client_order_id}", client_order_id=o.client_order_id, run_id=o.run_id, account=o.account,
                symbol=o.symbol, side=o.side, qty=o.qty, price=o.avg_fill_price or 0.0, commission=0.0, ts_event=o.ts_event)


def nav(value: float, ts: datetime, account: str = "main", run_id: str = "paper-1") -> NavSnapshot:
    return NavSnapshot(run_id=run_id, account=account, ts_event=ts, nav=value, cash=0.0, gross_exposure=value, leverage=1.0)


class Session:
    """A journal in `tmp_path` with a Notifier on its Store, as `botctl run` sets it up."""

    def __init__(self, tmp_path: Path, cfg, *, benchmark=None) -> None:
        self.path = tmp_path / "botctl.db"
        self.store = Store.open(self.path)
        self.telemetry = Telemetry({"main": {}, "other": {}})
        self._ctx = notifying(self.store, cfg, telemetry=self.telemetry, benchmark=benchmark)
        self.notifier = self._ctx.__enter__()

    def close(self) -> None:
        self._ctx.__exit__(None, None, None)
        self.store.close()

    def notify_events(self) -> list[Event]:
        return [e for _, e in self.store.rows_after("events", 0, None, subsystem="notify")]

    def wait_outcomes(self, count: int, timeout: float = 10.0) -> list[Event]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.notify_events()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        return self.notify_events()

    def metric(self, destination: str, outcome: str) -> float:
        value = self.telemetry.registry.get_sample_value(
            "botctl_notifications_total", {"destination": destination, "outcome": outcome})
        return value or 0.0
