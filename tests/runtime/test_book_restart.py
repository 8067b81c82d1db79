"""A paper account on the simulated broker restarted after a crash: the broker is rebuilt from
the journal with the fills its last mark does not hold yet, reconciliation takes them for what
the journal holds (no false mismatch), and a signal book's cycle keeps its orders, its state
and its book events together or not at all."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from botctl.adapters.sim_broker import SimBroker
from botctl.cli.app import app
from botctl.cli.common import Globals, load_plan
from botctl.records import Event, NavSnapshot, Order, Position, Run
from botctl.runtime.live import LiveAccount
from botctl.runtime.wiring import journal_sim_broker
from botctl.store import Store

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2020, 2, 20, 15, 0, tzinfo=timezone.utc)
ACCOUNT = "signals-sim"


@pytest.fixture(scope="module")
def account():
    plan = load_plan(Globals(ROOT, Path("unused.db"), None))
    return next(a for a in plan.accounts if a.id == ACCOUNT)


def paper_run(store: Store, run_id: str = "paper-1", kind: str = "paper") -> str:
    store.upsert_run(Run(run_id=run_id, kind=kind, plan_id="plan", started_at=T0))  # type: ignore[arg-type]
    return run_id


def mark(store: Store, run_id: str, broker: SimBroker, at: datetime) -> None:
    """A NAV mark with its positions, as LiveAccount.mark writes it (one transaction)."""
    with store.transaction():
        store.insert(NavSnapshot(run_id=run_id, account=ACCOUNT, ts_event=at, nav=broker.equity(), cash=broker.cash,
                                 gross_exposure=0.0, leverage=0.0))
        store.insert_many(Position(run_id=run_id, account=ACCOUNT, ts_event=at, symbol=s, qty=q,
                                   avg_price=broker.avg_price[s], price=broker.last_price[s], value=q * broker.last_price[s])
                          for s, q in sorted(broker.qty.items()))


def trade(store: Store, run_id: str, broker: SimBroker, side: str, symbol: str, qty: float, price: float,
          at: datetime) -> None:
    """One order through a real SimBroker (fills at once), journaled as the account cycle does."""
    order = Order(client_order_id=f"c-{symbol}-{side}-{at:%H%M%S}", run_id=run_id, account=ACCOUNT, symbol=symbol,
                  side=side, qty=qty, status="pending", ts_init=at, ts_event=at, reason="entry",  # type: ignore[arg-type]
                  ref_price=price)
    store.upsert_order(order)
    placed, fills = broker.submit(order, at)
    assert placed.status == "filled"
    with store.transaction():
        store.upsert_order(placed)
        store.insert_many(fills)


def holding(broker: SimBroker) -> tuple[float, dict[str, float], dict[str, float]]:
    return broker.cash, dict(broker.qty), dict(broker.avg_price)


def simulator(account) -> SimBroker:
    return SimBroker(account.starting_cash, msgspec.structs.replace(account.sim, fill="close"))


def test_the_rebuilt_simulator_holds_the_fills_made_after_its_last_mark(tmp_path, account):
    with Store.open(tmp_path / "j.db") as store:
        run = paper_run(store)
        traded = simulator(account)
        trade(store, run, traded, "buy", "XLK", 100.0, 95.0, T0)
        trade(store, run, traded, "buy", "XLU", 50.0, 70.0, T0)
        # Marked at the instant of the fills: the mark holds them (a mark at t holds every fill up to t).
        mark(store, run, traded, T0)
        assert holding(journal_sim_broker(account, store)) == holding(traded)
        # Then the process dies between its next fills and their mark.
        later = T0 + timedelta(days=1)
        trade(store, run, traded, "sell", "XLK", 100.0, 97.0, later)
        trade(store, run, traded, "buy", "XLU", 25.0, 71.0, later)
        trade(store, run, traded, "buy", "XLF", 300.0, 30.0, later + timedelta(seconds=1))
        # the same arithmetic as when they were made: exactly the same figures
        assert holding(journal_sim_broker(account, store)) == holding(traded)


def test_fills_before_any_mark_count_from_the_starting_cash_and_other_runs_never(tmp_path, account):
    with Store.open(tmp_path / "j.db") as store:
        replayed = simulator(account)
        trade(store, paper_run(store, "replay-1", "replay"), replayed, "buy", "XLE", 10.0, 50.0, T0)
        run = paper_run(store)
        traded = simulator(account)
        trade(store, run, traded, "buy", "XLK", 100.0, 95.0, T0 + timedelta(minutes=1))  # killed before its first mark
        assert holding(journal_sim_broker(account, store)) == holding(traded)


def test_kill_flatten_with_no_bot_sells_what_a_bot_killed_before_its_first_mark_bought(tmp_path, account):
    from botctl.runtime.offline_kill import kill_offline

    with Store.open(tmp_path / "j.db") as store:
        run = paper_run(store)
        trade(store, run, simulator(account), "buy", "XLK", 100.0, 95.0, T0)  # no mark yet
        done = kill_offline(store, account, "plan", flatten=True, reason="test")
        assert done["sold"] == 1 and "note" not in done, done
        assert store.account_state(ACCOUNT)[1] == []  # marked afterwards: flat
        assert holding(journal_sim_broker(account, store))[1] == {}


def test_reconciling_after_fills_without_their_mark_finds_no_mismatch(tmp_path, account):
    with Store.open(tmp_path / "j.db") as store:
        run = paper_run(store)
        traded = simulator(account)
        trade(store, run, traded, "buy", "XLK", 100.0, 95.0, T0)
        mark(store, run, traded, T0)
        trade(store, run, traded, "buy", "XLU", 50.0, 70.0, T0 + timedelta(days=1))
        trade(store, run, traded, "sell", "XLK", 100.0, 96.0, T0 + timedelta(days=1))
        now = T0 + timedelta(days=1, hours=1)
        # The broker holds what it traded (an Alpaca account would), and so does the rebuilt simulator.
        for broker in (traded, journal_sim_broker(account, store)):
            live = LiveAccount(account, broker, store, plan_id="plan", run_id=paper_run(store, f"paper-{id(broker)}"))
            live.reconcile(now)
            assert live.ready
        assert [e for e in store.events(ACCOUNT) if e.type == "reconcile.position_mismatch"] == []
        # A real difference is still reported: a broker holding what the journal never recorded.
        other = journal_sim_broker(account, store)
        other.qty["XLP"] = 5.0
        LiveAccount(account, other, store, plan_id="plan", run_id=paper_run(store, "paper-3")).reconcile(now)
        found = [e for e in store.events(ACCOUNT) if e.type == "reconcile.position_mismatch"]
        assert len(found) == 1 and found[0].details == {"symbols": ["XLP"]}, found


# --- the cycle's decision is journaled whole ----------------------------------------------------


class Killed(BaseException):
    """The process dies here (what SIGKILL does, in this process)."""


def run_once(db: Path, day: date) -> object:
    return CliRunner().invoke(app, ["--config-dir", str(ROOT), "--db", str(db), "run", "--once", "--account", ACCOUNT],
                              env={"BOTCTL_CLOCK": f"{day}T15:30:00Z*1"})


def cycle_rows(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {
            "orders": conn.execute("SELECT count(*) FROM orders WHERE account = ?", (ACCOUNT,)).fetchone()[0],
            "position_state": conn.execute("SELECT count(*) FROM position_state WHERE account = ?", (ACCOUNT,)).fetchone()[0],
            "book_events": conn.execute("SELECT count(*) FROM events WHERE account = ? AND subsystem = 'book'",
                                        (ACCOUNT,)).fetchone()[0],
        }


def test_a_cycle_killed_while_journaling_its_book_events_keeps_none_of_its_decision(tmp_path, monkeypatch):
    """Killed as the book's events are written: its orders and state are not kept without them
    (a restart would only finish those orders, and the events would be lost for good); the
    restart decides again and journals the whole decision once."""
    db = tmp_path / "j.db"
    insert, insert_many = Store.insert, Store.insert_many

    def dying_insert(self, record):
        if isinstance(record, Event) and record.subsystem == "book":
            raise Killed
        return insert(self, record)

    def dying_insert_many(self, records):
        records = list(records)
        if any(isinstance(r, Event) and r.subsystem == "book" for r in records):
            raise Killed
        return insert_many(self, records)

    monkeypatch.setattr(Store, "insert", dying_insert)
    monkeypatch.setattr(Store, "insert_many", dying_insert_many)
    with pytest.raises(Killed):
        run_once(db, date(2020, 2, 20))
    assert cycle_rows(db) == {"orders": 0, "position_state": 0, "book_events": 0}

    monkeypatch.undo()
    again = run_once(db, date(2020, 2, 20))
    assert again.exit_code == 0, again.output
    with sqlite3.connect(db) as conn:
        entries = conn.execute("SELECT symbol FROM orders WHERE account = ? AND reason = 'entry' ORDER BY symbol",
                               (ACCOUNT,)).fetchall()
        noted = conn.execute("SELECT symbol FROM events WHERE account = ? AND type = 'book.entry' ORDER BY symbol",
                             (ACCOUNT,)).fetchall()
    assert entries and noted == entries  # each entry once, with its event once
    assert cycle_rows(db)["position_state"] == 1
