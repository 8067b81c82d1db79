"""Crash-only recovery: `run --once` is SIGKILLed at random moments (the broker made slow or
flaky so kills land mid-cycle), restarted, and finally run to completion. Nothing is placed
twice, every order at the broker is in the journal under the same client id, nothing is left
open, and the account ends on its targets with the journal agreeing with the broker."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter

import pytest
from live_support import (
    alpaca_account,
    assert_weights_match,
    expected_weights,
    make_workspace,
    new_fake,
)

from botctl.records import OPEN_ORDER_STATUSES

ROUNDS = int(os.environ.get("BOTCTL_CRASH_ROUNDS", "6"))
SEED = int(os.environ.get("BOTCTL_CRASH_SEED", "20240301"))


def _faults(rng: random.Random, fake) -> str:
    """Make this round's sends slow or ambiguous, so a kill is likely to land inside them."""
    choice = rng.choice(["timeout_after_accept", "timeout", "504_after_accept", "drop", "slow_reads"])
    seconds = round(rng.uniform(0.5, 2.0), 2)
    if choice == "timeout_after_accept":
        fake.inject("timeout_after_accept", count=rng.randint(1, 3), seconds=seconds)
    elif choice == "timeout":
        fake.inject("timeout", seconds=seconds)
    elif choice == "slow_reads":  # slow lookups: kills land in reconciliation
        fake.inject("timeout_after_accept", method="GET", path="/v2/orders", count=2, seconds=seconds)
    else:
        fake.inject(choice)
    return f"{choice}({seconds}s)"


def test_sigkill_at_random_moments_then_recover(tmp_path):
    rng = random.Random(SEED)
    with new_fake() as fake:
        ws = make_workspace(tmp_path)
        ws.write_accounts(alpaca_account("alp", fake.url))
        log = []
        for round_no in range(ROUNDS):
            fault = _faults(rng, fake)
            delay = rng.uniform(0.3, 3.0)
            proc = ws.spawn(ws.run_argv())
            try:
                proc.wait(timeout=delay)
                outcome = f"exited {proc.returncode}"
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                outcome = "killed"
            proc.communicate()
            fake.clear_faults()
            log.append(f"round {round_no}: {fault}, {delay:.2f}s -> {outcome}, {len(fake.orders())} order(s) at the broker")
            time.sleep(0.05)
        final = ws.run_once(timeout=120)
        log.append(f"final: exit {final.returncode}")
        context = "\n".join(log) + "\n" + final.stdout + final.stderr
        assert final.returncode == 0, context

        at_broker = fake.orders()
        assert at_broker, context
        ids = [o["client_order_id"] for o in at_broker]
        assert len(ids) == len(set(ids)), context
        cycles = Counter((o["client_order_id"].rsplit("-", 3)[0], o["symbol"], o["side"]) for o in at_broker)
        duplicated = {k: n for k, n in cycles.items() if n > 1}
        assert not duplicated, f"placed twice: {duplicated}\n{context}"

        journal = {o["client_order_id"]: o for o in ws.journal_orders("alp")}
        missing = [i for i in ids if i not in journal]
        assert not missing, f"at the broker but not in the journal: {missing}\n{context}"
        for order in at_broker:
            row = journal[order["client_order_id"]]
            assert (row["symbol"], row["side"]) == (order["symbol"], order["side"])
            assert row["filled_qty"] == pytest.approx(float(order["filled_qty"]), rel=1e-9, abs=1e-9), (row, order)
            fills = ws.query("SELECT SUM(qty) FROM fills WHERE client_order_id = ?", order["client_order_id"])[0][0] or 0.0
            assert fills == pytest.approx(float(order["filled_qty"]), rel=1e-9, abs=1e-9), (row, order, context)

        still_open = [o for o in journal.values() if o["status"] in OPEN_ORDER_STATUSES]
        assert not still_open, f"unresolved in the journal: {still_open}\n{context}"

        positions = fake.positions()
        snapshot = ws.latest_positions("alp")
        assert snapshot.keys() == positions.keys(), context
        for symbol, qty in positions.items():
            assert snapshot[symbol] == pytest.approx(qty, rel=1e-9), context
        assert_weights_match(fake, expected_weights())
        print(context)


@pytest.fixture(scope="module")
def never_reached(tmp_path_factory):
    """A send that fails ambiguously on every attempt (HTTP 500: nothing reached the broker),
    then a clean --once the same day."""
    with new_fake() as fake:
        ws = make_workspace(tmp_path_factory.mktemp("never_reached"))
        ws.write_accounts(alpaca_account("alp", fake.url))
        fake.inject("500", count=5)  # the first order's send and all of its retries
        first = ws.run_once(timeout=120)
        journal_after_first = ws.journal_orders("alp")
        orders_after_first = fake.orders()
        requests_after_first = list(fake.requests)
        second = ws.run_once(timeout=120)
        yield {"fake": fake, "ws": ws, "first": first, "second": second,
               "journal_after_first": journal_after_first, "orders_after_first": orders_after_first,
               "requests_after_first": requests_after_first}


def test_an_ambiguous_send_is_journaled_and_looked_up_not_resent_blindly(never_reached):
    first, ws = never_reached["first"], never_reached["ws"]
    assert first.returncode == 0, first.stderr
    journal = never_reached["journal_after_first"]
    unknown = [o for o in journal if o["status"] == "unknown"]
    assert len(unknown) == 1, journal
    at_broker = {o["client_order_id"] for o in never_reached["orders_after_first"]}
    assert unknown[0]["client_order_id"] not in at_broker
    assert len(at_broker) == len(journal) - 1
    first_requests = never_reached["requests_after_first"]
    posts = [b["client_order_id"] for m, p, _, b in first_requests
             if m == "POST" and p == "/v2/orders" and isinstance(b, dict)]
    lookups = [q.get("client_order_id") for m, p, q, _ in first_requests
               if m == "GET" and p.startswith("/v2/orders:by_client_order_id")]
    assert unknown[0]["client_order_id"] in lookups  # resolved by looking it up ...
    assert max(Counter(posts).values()) <= 5  # ... and the retries are bounded
    errors = [e for e in ws.events("alp") if e[1] in ("ERROR", "CRITICAL")]
    assert any(unknown[0]["client_order_id"] in e[2] for e in errors), errors
    # Whatever happens next, nothing is ever at the broker twice.
    second_orders = never_reached["fake"].orders()
    assert max(Counter((o["symbol"], o["side"]) for o in second_orders).values()) == 1
    assert never_reached["second"].returncode == 0, never_reached["second"].stderr


def test_the_next_run_resolves_an_order_that_never_reached_the_broker(never_reached):
    ws, fake = never_reached["ws"], never_reached["fake"]
    still_open = [o for o in ws.journal_orders("alp") if o["status"] in OPEN_ORDER_STATUSES]
    assert not still_open, still_open
    assert_weights_match(fake, expected_weights())
