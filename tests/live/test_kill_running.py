"""`botctl kill --flatten` beside a running `botctl run` on an Alpaca account (the loopback
fake): the bot cancels, closes every position through the Broker port, journals the closing
orders and marks the account, so `status` shows nothing held."""

from __future__ import annotations

import json
import signal

from live_support import alpaca_account, expected_weights, make_workspace, new_fake, wait_for


def test_kill_flatten_empties_the_alpaca_account_of_a_running_bot(tmp_path):
    with new_fake() as fake:
        ws = make_workspace(tmp_path)  # the clock: 2024-03-01 10:30 New York, the rebalance day
        ws.write_accounts(alpaca_account("alp", fake.url))
        proc = ws.spawn(ws.argv("run", "--yes", "--cache-dir", str(ws.cache)))
        try:
            expected = set(expected_weights())
            wait_for(lambda: set(fake.positions()) == expected, proc, "the rebalance's positions", 60)
            held = fake.positions()
            kill = ws.botctl("kill", "--flatten", "--account", "alp", "--json", "--timeout", "20")
            assert kill.returncode == 0, kill.stderr
            body = json.loads(kill.stdout)
            assert body["running"] is True and body["acknowledged"] == {"alp": True}, body
            assert fake.positions() == {}
            sells = {r["symbol"] for r in ws.journal_orders("alp") if r["side"] == "sell"}
            assert sells == set(held)  # every closing order journaled
            assert ws.latest_positions("alp") == {}
            events = [t for t, _, _ in ws.events("alp")]
            assert "kill.flatten" in events
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0
