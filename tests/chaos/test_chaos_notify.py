"""A notification receiver that is down for a whole replayed session run loses no CRITICAL
message once it is back: CRITICAL is retried until delivered and never dropped from a full
queue, while INFO and WARN are given up (journaled as notify.failed) or dropped, oldest first.

The replay runs in this process (`run_replay`) with the Notifier on its Store exactly as
`botctl run --replay` wires it, so the receiver can come back while the bot still runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from botctl.adapters.file_data import load_bars
from botctl.cli.common import Globals, load_plan
from botctl.notify.setup import for_run
from botctl.runtime.health import Telemetry
from botctl.runtime.replay import run_replay
from botctl.store import Store
from botctl.strategy.bars import bars_from_frame

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notify"))
from notify_support import write_notify  # noqa: E402
from receiver import Receiver  # noqa: E402

QUEUE = 5  # a small bound, so a down receiver fills it many times over


def tight_breakers(config_dir: Path) -> None:
    """Both accounts halt on their first session that loses more than 0.1%: CRITICAL events."""
    text = (config_dir / "accounts.yaml").read_text()
    text = text.replace("max_daily_loss: 0.08", "max_daily_loss: 0.001")
    text = text.replace("  adaptive-sim:\n", "  adaptive-sim:\n    risk: {max_daily_loss: 0.001}\n")
    (config_dir / "accounts.yaml").write_text(text)


@pytest.mark.timeout(120)
def test_receiver_down_for_the_whole_run_loses_no_critical_once_back(tmp_path, config_dir):
    tight_breakers(config_dir)
    receiver = Receiver().start()
    port = receiver.port
    receiver.stop()  # down from before the first session
    write_notify(config_dir, f"json://127.0.0.1:{port}/hook", to="phone", queue_size=str(QUEUE), group_seconds="0.1",
                 flush_seconds="1", retry="{attempts: 2, first_seconds: 0.05, max_seconds: 0.2}")
    g = Globals(config_dir=config_dir, db=tmp_path / "botctl.db", data=None)
    plan = load_plan(g)
    bars = bars_from_frame(load_bars(None), plan.symbols)
    from datetime import date

    telemetry = Telemetry({a.id: {} for a in plan.accounts})
    with Store.open(g.db) as store:
        with for_run(g, plan, store, telemetry, bars=bars) as notifier:
            summary = run_replay(plan, bars, store, date(2024, 2, 26), date(2024, 4, 30), speed=None)
            critical = [e for _, e in store.rows_after("events", 0, None, severity="CRITICAL")]
            assert len(critical) >= 2, "the breakers should have tripped"
            time.sleep(0.5)  # still down: CRITICAL waits in its queue, retried
            assert receiver.messages == []
            back = Receiver(port).start()
            wanted = {f"[replay] CRITICAL {e.type} · {e.account}" for e in critical}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not wanted <= set(back.titles()):
                time.sleep(0.05)
            delivered = back.titles()
        outcomes = [e for _, e in store.rows_after("events", 0, None, subsystem="notify")]
    back.stop()
    assert summary.status == "finished"
    assert wanted <= set(delivered), sorted(wanted - set(delivered))
    assert notifier is not None  # notify.yaml was read: the run was notifying
    by_outcome: dict[str, int] = {}
    for e in outcomes:
        by_outcome[e.details["outcome"]] = by_outcome.get(e.details["outcome"], 0) + 1
        if e.details["severity"] == "CRITICAL":
            assert e.details["outcome"] != "dropped"
    critical_sent = [e for e in outcomes if e.type == "notify.sent" and e.details["severity"] == "CRITICAL"]
    assert len(critical_sent) == len(critical)
    # what was not CRITICAL was given up or dropped (the queue was full) while the receiver was down
    assert by_outcome.get("failed", 0) > 0 and by_outcome.get("dropped", 0) > 0, by_outcome
    assert telemetry.registry.get_sample_value("botctl_notifications_total",
                                               {"destination": "phone", "outcome": "sent"}) == len(critical_sent) + \
        sum(1 for e in outcomes if e.type == "notify.sent" and e.details["severity"] != "CRITICAL")
