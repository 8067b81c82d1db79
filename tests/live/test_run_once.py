"""`botctl run --once` against Alpaca accounts, end to end: a real botctl subprocess trading a
loopback FakeAlpaca (real alpaca-py clients on both the trading and the data endpoint)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from live_support import (
    KEY,
    OUTPUTS,
    REBALANCE_DAY,
    SECRET,
    WRONG_KEY,
    WRONG_SECRET,
    adj_close,
    alpaca_account,
    assert_weights_match,
    expected_weights,
    fake_weights,
    make_workspace,
    new_fake,
)

OPEN_STATUSES = ("pending", "accepted", "partially_filled", "unknown")


def _open_at_fake(fake) -> list[dict]:
    from fakes.fake_alpaca import OPEN_STATUSES as FAKE_OPEN

    return [o for o in fake.orders() if o["status"] in FAKE_OPEN]


@pytest.fixture(scope="module")
def traded(tmp_path_factory):
    """One account, one --once that trades, then a second --once the same day."""
    fake = new_fake()
    ws = make_workspace(tmp_path_factory.mktemp("traded"))
    ws.write_accounts(alpaca_account("alp", fake.url))
    first = ws.run_once()
    after_first = fake.orders()
    positions_first = fake.positions()
    second = ws.run_once()
    yield {"fake": fake, "ws": ws, "first": first, "second": second, "after_first": after_first,
           "positions_first": positions_first}
    fake.stop()


def test_run_once_trades_to_the_plan_targets(traded):
    first, fake = traded["first"], traded["fake"]
    assert first.returncode == 0, first.stderr
    orders = traded["after_first"]
    expected = expected_weights()
    assert sorted(o["symbol"] for o in orders) == sorted(expected)
    assert all(o["side"] == "buy" and o["status"] == "filled" for o in orders), orders
    # Weights as the fake values them after the first cycle (fills at the session's price).
    positions = traded["positions_first"]
    assert set(positions) == set(expected)
    cash = 100_000.0 - sum(float(o["filled_qty"]) * float(o["filled_avg_price"]) for o in orders)
    values = {s: q * adj_close(s, REBALANCE_DAY) for s, q in positions.items()}
    equity = cash + sum(values.values())
    for symbol, target in expected.items():
        assert abs(values[symbol] / equity - target) <= 0.02, (symbol, values[symbol] / equity, target)


def test_run_once_client_ids_are_deterministic_and_journaled(traded):
    ws, orders = traded["ws"], traded["after_first"]
    plan_ids = {r[0] for r in ws.query("SELECT plan_id FROM runs")}
    assert len(plan_ids) == 1
    plan_id = plan_ids.pop()
    for o in orders:
        cid = o["client_order_id"]
        # plan id, account, the session's scheduled cycle time (10:00 New York), symbol, side
        assert plan_id[:8] in cid and "alp" in cid and "20240301T1500" in cid and o["symbol"] in cid, cid
    journal = {o["client_order_id"]: o for o in ws.journal_orders("alp")}
    first_ids = {o["client_order_id"] for o in orders}
    assert first_ids <= set(journal)
    for o in orders:
        row = journal[o["client_order_id"]]
        assert (row["symbol"], row["side"], row["status"]) == (o["symbol"], o["side"], "filled")
        assert row["filled_qty"] == pytest.approx(float(o["filled_qty"]), rel=1e-9)
        fills = ws.query("SELECT qty, price FROM fills WHERE client_order_id = ?", o["client_order_id"])
        assert fills, f"no fill journaled for {o['client_order_id']}"
        assert sum(q for q, _ in fills) == pytest.approx(float(o["filled_qty"]), rel=1e-9)
        notional = sum(q * p for q, p in fills)
        assert notional == pytest.approx(float(o["filled_qty"]) * float(o["filled_avg_price"]), rel=1e-6)


def test_run_once_journals_alpaca_fills_at_the_brokers_own_price_as_traded(traded):
    rows = traded["ws"].query("SELECT price, as_traded_price FROM fills")
    assert rows and all(traded_price == price for price, traded_price in rows)


def test_run_once_marks_nav_and_positions_like_the_broker(traded):
    ws, fake = traded["ws"], traded["fake"]
    nav_rows = ws.query("SELECT nav, cash, gross_exposure FROM nav WHERE account = 'alp' ORDER BY id")
    assert nav_rows, "no NAV row journaled"
    _, fake_nav = fake_weights(fake)
    nav, cash, gross = nav_rows[-1]
    assert nav == pytest.approx(fake_nav, rel=1e-6)
    assert cash == pytest.approx(fake.cash, rel=1e-6, abs=1e-3)
    journal = ws.latest_positions("alp")
    assert journal.keys() == fake.positions().keys()
    for symbol, qty in fake.positions().items():
        assert journal[symbol] == pytest.approx(qty, rel=1e-9)
    run = ws.query("SELECT status FROM runs ORDER BY id")
    assert [r[0] for r in run] == ["finished", "finished"]


def test_second_once_the_same_day_duplicates_nothing(traded):
    second, fake = traded["second"], traded["fake"]
    assert second.returncode == 0, second.stderr
    orders = fake.orders()
    ids = [o["client_order_id"] for o in orders]
    assert len(ids) == len(set(ids))
    assert max(Counter((o["symbol"], o["side"]) for o in orders).values()) == 1
    assert_weights_match(fake, expected_weights())
    assert {o["client_order_id"] for o in orders} == {o["client_order_id"] for o in traded["ws"].journal_orders()}


def test_second_once_the_same_day_places_no_new_order(traded):
    assert len(traded["fake"].orders()) == len(traded["after_first"])


def test_market_closed_places_nothing_and_says_so(tmp_path):
    with new_fake() as fake:
        fake.market_open = False
        ws = make_workspace(tmp_path)
        ws.write_accounts(alpaca_account("alp", fake.url))
        proc = ws.run_once()
        assert proc.returncode == 0, proc.stderr
        assert fake.orders() == []
        assert not any(m == "POST" and p.startswith("/v2/orders") for m, p, _, _ in fake.requests)
        assert ws.journal_orders() == []
        events = ws.events("alp")
        assert any("market" in t and "closed" in (t + m).lower() for t, _, m in events), events


def test_account_with_bad_keys_does_not_trade_and_the_others_go_on(tmp_path):
    with new_fake() as fake:
        ws = make_workspace(tmp_path, OTHER_API_KEY=WRONG_KEY, OTHER_SECRET_KEY=WRONG_SECRET)
        ws.write_accounts(
            alpaca_account("missing", fake.url, key_env="NOT_SET_API_KEY", secret_env="NOT_SET_SECRET_KEY"),
            alpaca_account("wrong", fake.url, key_env="OTHER_API_KEY", secret_env="OTHER_SECRET_KEY"),
            alpaca_account("good", fake.url),
        )
        proc = ws.run_once()
        assert proc.returncode in (0, 1), proc.stderr
        assert_weights_match(fake, expected_weights())
        assert all("-good-" in o["client_order_id"] for o in fake.orders())
        accounts = {o["account"] for o in ws.journal_orders()}
        assert accounts == {"good"}
        status = ws.status()["accounts"]
        assert status["good"]["last_error"] is None
        assert status["good"]["nav"] == pytest.approx(fake_weights(fake)[1], rel=1e-6)
        missing, wrong = status["missing"]["last_error"], status["wrong"]["last_error"]
        assert missing and "NOT_SET_API_KEY" in missing, missing
        assert wrong and ("401" in wrong or "authori" in wrong.lower()), wrong
        assert status["missing"]["nav"] is None and status["wrong"]["nav"] is None


def test_live_mode_without_the_live_flag_is_a_usage_error(tmp_path):
    with new_fake() as fake:
        ws = make_workspace(tmp_path)
        ws.write_accounts(alpaca_account("real", fake.url, mode="live"))
        proc = ws.run_once()
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert "--live" in proc.stderr
        assert fake.requests == [] and fake.orders() == []

        ws.write_accounts(alpaca_account("paper", fake.url))
        proc = ws.run_once("--live")
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert "mode: live" in proc.stderr
        assert fake.requests == []


def test_kill_flatten_with_no_bot_running_empties_the_alpaca_account(tmp_path):
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    with new_fake() as fake:
        ws = make_workspace(tmp_path)
        ws.write_accounts(alpaca_account("alp", fake.url))
        assert ws.run_once().returncode == 0
        traded_symbols = set(fake.positions())
        assert traded_symbols
        # An order left working at the broker (placed while the market was shut).
        fake.market_open = False
        client = TradingClient(KEY, SECRET, paper=True, url_override=fake.url)
        client.submit_order(MarketOrderRequest(symbol="SPY", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
        assert len(_open_at_fake(fake)) == 1
        fake.market_open = None

        proc = ws.botctl("kill", "--flatten", "--json")
        assert proc.returncode == 0, proc.stderr
        body = json.loads(proc.stdout)
        assert body["running"] is False
        assert fake.positions() == {}
        assert _open_at_fake(fake) == []
        control = ws.query("SELECT halted, flatten, acked_at FROM control WHERE account = 'alp'")
        assert control and control[0][0] == 1 and control[0][1] == 1 and control[0][2] is not None
        assert [r for r in ws.journal_orders("alp") if r["status"] in OPEN_STATUSES] == []
        # The flatten is journaled: its sells, and a mark with nothing held, so status agrees.
        assert {r["symbol"] for r in ws.journal_orders("alp") if r["side"] == "sell"} >= set(traded_symbols)
        assert ws.latest_positions("alp") == {}
        status = ws.status()
        account = next(a for a in status["accounts"] if a["account"] == "alp") if isinstance(status["accounts"], list) \
            else status["accounts"]["alp"]
        assert not [p for p in account["positions"] if p["qty"]], account["positions"]


def _scan(blob: bytes, where: str) -> None:
    for secret in (KEY, SECRET, WRONG_KEY, WRONG_SECRET):
        for form in {secret.encode(), secret.encode("utf-16-le")}:
            assert form not in blob, f"{secret[:6]}... found in {where}"


def test_secrets_never_reach_the_journal_or_any_output(tmp_path):
    """Everything that writes: trading, a failed and an ambiguous send, bad keys, market shut,
    an offline kill; then every file and every output is searched for the keys."""
    outputs: list[str] = []
    with new_fake() as fake:
        ws = make_workspace(tmp_path, OTHER_API_KEY=WRONG_KEY, OTHER_SECRET_KEY=WRONG_SECRET)
        ws.write_accounts(
            alpaca_account("good", fake.url),
            alpaca_account("wrong", fake.url, key_env="OTHER_API_KEY", secret_env="OTHER_SECRET_KEY"),
            alpaca_account("missing", fake.url, key_env="NOT_SET_API_KEY", secret_env="NOT_SET_SECRET_KEY"),
        )

        def record(proc):
            outputs.extend([proc.stdout, proc.stderr])
            return proc

        fake.inject("504_after_accept")
        fake.inject("reject", message="insufficient buying power")
        record(ws.run_once())
        record(ws.run_once("--json"))
        fake.market_open = False
        record(ws.run_once())
        fake.market_open = None
        record(ws.botctl("kill", "--flatten"))
        record(ws.botctl("resume"))
        record(ws.botctl("status"))
        status = record(ws.botctl("status", "--json"))
        assert json.loads(status.stdout)["accounts"]["good"]
        for kind in ("events", "orders", "fills", "nav"):
            tailed = record(ws.botctl("tail", "--json", "-n", "1000", "--kind", kind))
            assert tailed.returncode == 0, tailed.stderr
            record(ws.botctl("tail", "-n", "1000", "--kind", kind))
        assert any(line for line in outputs), "no output captured"
        # status/tail are not vacuous: the bad-keys errors and the orders are in there
        assert "401" in status.stdout or "authori" in status.stdout.lower()

    for i, text in enumerate(outputs + OUTPUTS):
        _scan(text.encode(), f"command output #{i}")
    files = [p for p in Path(tmp_path).rglob("*") if p.is_file()]
    assert any(p.name == "journal.db" for p in files)
    for path in files:
        _scan(path.read_bytes(), str(path.relative_to(tmp_path)))


def test_reconciliation_records_foreign_orders_and_position_mismatches(tmp_path):
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    with new_fake() as fake:
        fake.market_open = False  # the foreign order stays working; the bot only reconciles
        fake.set_position("SPY", 10, 500.0)
        client = TradingClient(KEY, SECRET, paper=True, url_override=fake.url)
        client.submit_order(MarketOrderRequest(symbol="XLK", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                                               client_order_id="placed-by-hand-1"))
        ws = make_workspace(tmp_path)
        ws.write_accounts(alpaca_account("alp", fake.url))
        proc = ws.run_once()
        assert proc.returncode == 0, proc.stderr
        events = ws.events("alp")
        foreign = [e for e in events if "foreign" in e[0]]
        mismatch = [e for e in events if "mismatch" in e[0]]
        assert foreign and "placed-by-hand-1" in foreign[0][2], events
        assert mismatch and "SPY" in mismatch[0][2], events
        assert len(fake.orders()) == 1  # reconciling touches nothing at the broker


def test_first_cycle_over_the_turnover_limit_halts_until_confirmed(tmp_path):
    with new_fake() as fake:
        ws = make_workspace(tmp_path)
        ws.write_accounts(alpaca_account("alp", fake.url, extra="risk: {max_first_cycle_turnover: 0.5}"))
        proc = ws.run_once()
        assert proc.returncode in (0, 1), proc.stderr
        assert fake.orders() == []
        control = ws.query("SELECT halted, reason FROM control WHERE account = 'alp'")
        assert control and control[0][0] == 1, control
        assert ws.status()["accounts"]["alp"]["halted"] is True

        assert ws.botctl("resume").returncode == 0
        proc = ws.run_once("--yes")
        assert proc.returncode == 0, proc.stderr
        assert_weights_match(fake, expected_weights())


@pytest.fixture(scope="module")
def kill_with_a_broken_account(tmp_path_factory):
    with new_fake() as fake:
        ws = make_workspace(tmp_path_factory.mktemp("kill_broken"))
        ws.write_accounts(alpaca_account("good", fake.url))
        assert ws.run_once().returncode == 0
        assert fake.positions()
        # An account whose keys are not exported is listed first.
        ws.write_accounts(alpaca_account("broken", fake.url, key_env="NOT_SET_API_KEY", secret_env="NOT_SET_SECRET_KEY"),
                          alpaca_account("good", fake.url))
        proc = ws.botctl("kill", "--flatten")
        yield {"fake": fake, "ws": ws, "proc": proc, "positions": fake.positions()}


def test_offline_kill_persists_the_halt_for_every_account_even_if_one_broker_fails(kill_with_a_broken_account):
    ws, proc = kill_with_a_broken_account["ws"], kill_with_a_broken_account["proc"]
    halted = dict(ws.query("SELECT account, halted FROM control"))
    assert halted == {"broken": 1, "good": 1}
    assert "NOT_SET_API_KEY" in proc.stderr + proc.stdout  # the failure is reported, by variable name


def test_offline_kill_flattens_the_other_accounts_when_one_broker_fails(kill_with_a_broken_account):
    assert kill_with_a_broken_account["positions"] == {}


def test_run_once_account_option_trades_only_that_account(tmp_path):
    with new_fake() as first, new_fake() as second:
        ws = make_workspace(tmp_path)
        ws.write_accounts(alpaca_account("one", first.url), alpaca_account("two", second.url))
        proc = ws.run_once("--account", "two")
        assert proc.returncode == 0, proc.stderr
        assert first.orders() == [] and first.requests == []
        assert_weights_match(second, expected_weights())
        assert {o["account"] for o in ws.journal_orders()} == {"two"}
