"""The scheduled loop (`botctl run`, no --once) on an accelerated clock: from the last session
of February through the 2024-03-01 monthly rebalance in about half a minute. The bot marks NAV
after each close, rebalances on 2024-03-01 only, acknowledges a kill while it runs, and stops
cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime, timedelta, timezone

from live_support import (
    alpaca_account,
    assert_weights_match,
    expected_weights,
    make_workspace,
    new_fake,
    wait_for,
)

UTC = timezone.utc
START = datetime(2024, 2, 29, 20, 0, tzinfo=UTC)  # Thursday 15:00 New York
SPEED = 3600.0  # a simulated hour per real second: the 10:00 cycle has 6 s before the close
CLOCK = f"{START:%Y-%m-%dT%H:%M:%SZ}*{SPEED:g}"


def test_scheduled_loop_rebalances_on_the_first_session_of_march(tmp_path):
    ws = make_workspace(tmp_path, BOTCTL_CLOCK=CLOCK)
    origin = {"t0": time.monotonic(), "exact": False}

    def fake_now() -> datetime:
        """BOTCTL_CLOCK's formula with the bot's own origin: the bot starts its clock just before
        it records its run (runs.started_at, wall time), and it records the run before its
        first request to the broker; until then, count from the spawn (slightly ahead)."""
        if not origin["exact"] and ws.db.exists():
            try:
                started = ws.query("SELECT started_at FROM runs ORDER BY id DESC LIMIT 1")
            except Exception:  # the journal is being created
                started = []
            if started:
                at = datetime.fromisoformat(started[0][0].replace("Z", "+00:00"))
                origin["t0"] = time.monotonic() - (datetime.now(UTC) - at).total_seconds()
                origin["exact"] = True
        return START + timedelta(seconds=(time.monotonic() - origin["t0"]) * SPEED)

    with new_fake(now=fake_now) as fake:
        ws.write_accounts(alpaca_account("alp", fake.url))
        origin["t0"] = time.monotonic()
        proc = ws.spawn(ws.argv("run", "--cache-dir", str(ws.cache)))
        try:
            def marks():
                if not ws.db.exists():
                    return []
                try:
                    return [r[0] for r in ws.query("SELECT ts_event FROM nav WHERE account = 'alp' ORDER BY id")]
                except Exception:  # the journal may be mid-creation
                    return []

            # Thursday's close is marked before any order: nothing is due before March.
            wait_for(lambda: any(m.startswith("2024-02-29T21") for m in marks()), proc, "the 2024-02-29 mark", 30)
            assert origin["exact"], "the fake never saw the bot's run row"
            assert fake.orders() == [], "orders before the rebalance day"
            wait_for(lambda: any(m.startswith("2024-03-01T21") for m in marks()), proc, "the 2024-03-01 mark", 60)

            orders = fake.orders()
            expected = expected_weights()
            assert sorted(o["symbol"] for o in orders) == sorted(expected), orders
            assert all(o["side"] == "buy" and o["status"] == "filled" for o in orders)
            assert all("-alp-20240301T1500-" in o["client_order_id"] for o in orders)
            # The fake's clock followed the bot's: the orders arrived at the 10:00 cycle.
            assert all("2024-03-01T15:00" <= o["created_at"] < "2024-03-01T16:30" for o in orders), orders
            assert_weights_match(fake, expected)
            days = {m[:10] for m in marks() if m[11:13] >= "21"}
            assert {"2024-02-29", "2024-03-01"} <= days, marks()
            assert ws.latest_positions("alp").keys() == fake.positions().keys()

            kill = ws.botctl("kill", "--account", "alp", "--json", "--timeout", "10")
            assert kill.returncode == 0, kill.stderr
            body = json.loads(kill.stdout)
            assert body["running"] is True and body["acknowledged"] == {"alp": True}, body
            acked = ws.query("SELECT halted, acked_at FROM control WHERE account = 'alp'")
            assert acked[0][0] == 1 and acked[0][1] is not None

            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, (out, err)
        runs = ws.query("SELECT status, ended_at FROM runs ORDER BY id")
        assert runs[-1][0] == "stopped" and runs[-1][1] is not None, runs
        assert len(fake.orders()) == len(expected), "orders after the kill"
