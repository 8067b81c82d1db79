"""Paper and live trading: one process, every account, a real (or accelerated) clock.

Startup is recovery: before any trading each account is reconciled with its broker (orders
the journal holds in an open or unknown state are looked up by client id; orders and positions
the journal does not know are recorded). Each cycle then decides on the last closed bar, runs
the risk guard, and sends each order only after its row is committed. Client ids are
deterministic per cycle, so a cycle re-run after a crash finds its own orders instead of
placing them again.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import msgspec

from botctl.adapters.sim_broker import SimBroker
from botctl.engine import guard
from botctl.engine.engine import decide_cycle
from botctl.engine.positions import BookState, decode_books, encode_books
from botctl.engine.ids import client_order_id, cycle_prefix
from botctl.errors import BadMarketData, BotctlError, BrokerAuth, BrokerError, DataError, StoreError
from botctl.ports import Broker
from botctl.records import OPEN_ORDER_STATUSES, Event, NavSnapshot, Order, Position, Severity, SubmitOrder
from botctl.spec.plan import AccountPlan
from botctl.spec.validate import step_symbols
from botctl.strategy.bars import Bars
from botctl.strategy.evaluate import Decision
from botctl.strategy.signals import Signals

if TYPE_CHECKING:
    import polars as pl

    from botctl.store import Store

NEW_YORK = ZoneInfo("America/New_York")
GUARD_SCOPE = "live"


def cycle_time(day: date, account: AccountPlan) -> datetime:
    """The cycle's identity: its session and scheduled minute, the same on every restart."""
    minutes = min(m.schedule.after_open_minutes for m in account.models)
    return (datetime.combine(day, time(9, 30), NEW_YORK) + timedelta(minutes=minutes)).astimezone(timezone.utc)


def make_broker(account: AccountPlan, store: Store, environ: Mapping[str, str] = os.environ) -> Broker:
    """The account's broker. Keys come from the environment variables the account names and
    go nowhere else: not the journal, not a log, not an error message."""
    if account.broker == "alpaca":
        from botctl.adapters.alpaca_broker import AlpacaBroker

        key_env, secret_env = account.api_key_env, account.secret_key_env
        assert key_env is not None and secret_env is not None  # the plan names both for an alpaca account
        missing = [name for name in (key_env, secret_env) if not environ.get(name)]
        if missing:
            raise BrokerAuth(f"account {account.id}: environment variable(s) {', '.join(missing)} not set "
                             "(export the Alpaca keys there; they are never read from files)")
        return AlpacaBroker(environ[key_env], environ[secret_env],
                            paper=account.mode == "paper", base_url=account.base_url)
    return journal_sim_broker(account, store)


def journal_sim_broker(account: AccountPlan, store: Store) -> SimBroker:
    """A SimBroker holding what the journal says the account holds (from its own paper runs
    only, never a backtest's or replay's); it fills at the last close."""
    from botctl.adapters.sim_broker import SimBroker

    latest, positions = store.account_state(account.id)
    broker = SimBroker(latest.cash if latest else account.starting_cash, msgspec.structs.replace(account.sim, fill="close"))
    for position in positions:
        broker.qty[position.symbol] = position.qty
        broker.avg_price[position.symbol] = position.avg_price
        broker.last_price[position.symbol] = position.price
    return broker


def load_market_data(account: AccountPlan, data_path: Path | None, cache_dir: Path, today: date,
                     environ: Mapping[str, str] = os.environ,
                     warn: Callable[[str, str], None] | None = None) -> pl.DataFrame:
    """The account's bars: its --data files, or Alpaca's (cached). `warn(symbol, message)`
    hears of problems that were worked around (a damaged cache file fetched again)."""
    from botctl.adapters.file_data import load_bars

    if account.data != "alpaca":
        return load_bars(data_path)
    from botctl.adapters.alpaca_data import AlpacaData

    key, secret = environ.get(account.api_key_env or "ALPACA_API_KEY"), environ.get(account.secret_key_env or "ALPACA_SECRET_KEY")
    if not key or not secret:
        raise BrokerAuth(f"account {account.id}: Alpaca data needs the keys in ${account.api_key_env or 'ALPACA_API_KEY'} "
                         f"and ${account.secret_key_env or 'ALPACA_SECRET_KEY'}")
    data = AlpacaData(key, secret, data_url=account.data_url or account.base_url, feed=account.feed, cache_dir=cache_dir)
    try:
        return data.bars(account.symbols, today)
    finally:
        if warn is not None:
            for symbol, message in data.warnings:
                warn(symbol, message)


class LiveAccount:
    """One account's trading against its broker, journaling every step."""

    def __init__(self, account: AccountPlan, broker: Broker, store: Store, *, plan_id: str, run_id: str) -> None:
        self.account = account
        self.broker = broker
        self.store = store
        self.plan_id = plan_id
        self.run_id = run_id
        raw = store.guard_state(GUARD_SCOPE, account.id)
        self.guard = msgspec.json.decode(raw, type=guard.GuardState) if raw else guard.GuardState(
            account=account.id, high_water_mark=0.0, last_close_nav=0.0)
        # Signal books' position state, restored from the journal: a restart continues it.
        try:
            stored = store.position_states(GUARD_SCOPE, account.id)
            self.book_state: BookState | None = decode_books(stored) if stored else None
        except ValueError as exc:
            raise StoreError(f"account {account.id}: {exc}") from exc
        self.ready = False
        self.problem: str | None = None
        self.failed_at: datetime | None = None  # when reconciliation last failed
        self.blocked: list[guard.Block] = []  # the risk guard's refusals in the last cycle decided
        self.tradeable = frozenset({s for m in account.models for s in m.universe}
                                   | {s for m in account.models for st in m.steps for s, w in step_symbols(st) if w[0] != "benchmark"})

    def event(self, type_: str, message: str, *, severity: Severity = "INFO", symbol: str | None = None,
              details: dict[str, object] | None = None, now: datetime | None = None) -> None:
        self.store.insert(Event(ts_event=now or datetime.now(timezone.utc), subsystem="live", type=type_,
                                severity=severity, run_id=self.run_id, account=self.account.id, symbol=symbol,
                                message=message, details=details or {}))

    # --- recovery -----------------------------------------------------------------------------

    def reconcile(self, now: datetime) -> None:
        """Bring the journal in line with the broker before trading. On failure the account
        does not trade (the reason is recorded and shown by status)."""
        try:
            self._reconcile(now)
        except BrokerError as exc:
            self.problem = f"reconciliation failed: {exc}"
            self.failed_at = now
            self.event("reconcile.failed", f"{self.problem}; this account will not trade", severity="ERROR", now=now)
            return
        self.ready = True

    def _reconcile(self, now: datetime) -> None:
        journal_open = self.store.open_orders(self.account.id)
        for order in journal_open:
            self._resolve(order, now)
        known = {o.client_order_id for o in self.store.orders(self.account.id, status=OPEN_ORDER_STATUSES)}
        for order in self.broker.open_orders():
            if order.client_order_id not in known and self.store.get_order(order.client_order_id) is None:
                self.event("reconcile.foreign_order", f"open order {order.client_order_id} ({order.side} {order.qty:g} "
                           f"{order.symbol}) is at the broker but not in the journal", severity="WARN",
                           symbol=order.symbol, now=now)
        self._sync_positions(now)

    def _resolve(self, order: Order, now: datetime) -> Order:
        """Ask the broker what became of a journaled order; record its state and any fills."""
        fills = self.store.fills(client_order_id=order.client_order_id)
        self.broker.remember_fills(order.client_order_id, sum(f.qty for f in fills), sum(f.qty * f.price for f in fills))
        found = self.broker.get_order(order.client_order_id, order)
        if found is None:
            if order.ts_init.astimezone(NEW_YORK).date() < now.astimezone(NEW_YORK).date():
                gone = msgspec.structs.replace(order, status="canceled", ts_event=now,
                                               reject_reason="never reached the broker; its session is over")
                self.store.upsert_order(gone)
                self.event("reconcile.order_never_sent", f"{order.client_order_id} never reached the broker", now=now)
                return gone
            # Journaled, never seen by the broker (a crash or a failed send before it arrived):
            # still this session's to send, with the same client id, so it can land only once.
            return msgspec.structs.replace(order, status="pending") if order.status == "unknown" else order
        found = msgspec.structs.replace(found, run_id=order.run_id, account=order.account, reason=order.reason,
                                        ts_init=order.ts_init, ref_price=order.ref_price)
        fills = self.broker.fills_for(found)
        with self.store.transaction():
            self.store.upsert_order(found)
            self.store.insert_many(fills)
        if found.status != order.status:
            self.event("reconcile.order_updated", f"{order.client_order_id}: {order.status} -> {found.status}", now=now)
        return found

    def _sync_positions(self, now: datetime) -> None:
        broker_positions = {s: p.qty for s, p in self.broker.positions().items() if p.qty}
        journal = {p.symbol: p.qty for p in self.store.account_state(self.account.id)[1]}
        mismatched = {s for s in set(broker_positions) | set(journal)
                      if abs(broker_positions.get(s, 0.0) - journal.get(s, 0.0)) > 1e-6}
        if mismatched:
            self.event("reconcile.position_mismatch",
                       "broker and journal differ: " + ", ".join(
                           f"{s} broker {broker_positions.get(s, 0):g} journal {journal.get(s, 0):g}" for s in sorted(mismatched))
                       + "; the broker's positions are taken as the truth", severity="WARN",
                       details={"symbols": sorted(mismatched)}, now=now)

    # --- trading ------------------------------------------------------------------------------

    def cycle(self, bars: Bars, signals: Signals, due: list[str], when: datetime, now: datetime, *,
              max_turnover: float | None = None,
              announce: Callable[[str, list[SubmitOrder]], None] | None = None) -> list[Order]:
        """Decide on the last closed bar and send the orders. Returns the orders sent.

        A cycle decides once. Its orders are committed together before any is sent; a re-run
        of the same cycle (a restart, a second --once) only finishes those orders, because
        deciding again on positions the first run already moved would trade the difference."""
        prefix = cycle_prefix(self.plan_id, self.account.id, when)
        self.blocked = []
        journaled = self.store.orders_with_prefix(prefix + "-")
        if journaled:
            return self._finish(journaled, now)
        today = when.astimezone(NEW_YORK).date()
        row = bars.index_of(today - timedelta(days=1))
        if row < 0:
            raise DataError(f"account {self.account.id}: no bar before {today}")
        verdict = guard.judge_bars(bars, row, self.account.symbols, self.account.risk.price_collar_pct)
        suspect = verdict.suspect
        if suspect:
            raise BadMarketData("; ".join(why for _, why in suspect), symbols=[s for s, _ in suspect])
        closes = {s: float(bars.close[row, bars.symbols.index(s)]) for s in self.account.symbols
                  if not math.isnan(bars.close[row, bars.symbols.index(s)])}
        previous = {s: float(bars.close[row - 1, bars.symbols.index(s)]) for s in self.account.symbols
                    if row >= 1 and not math.isnan(bars.close[row - 1, bars.symbols.index(s)])}
        state = self.broker.account()
        positions = {s: p.qty for s, p in self.broker.positions().items()}
        self.broker.mark(closes)
        if isinstance(self.broker, SimBroker) and bars.as_traded is not None:  # it fills at these closes
            self.broker.as_traded = {s: float(bars.as_traded[row, bars.symbols.index(s)]) for s in closes}
        result = decide_cycle(self.account, signals, row, due, self._standing_decisions(bars, signals, due, today),
                              positions, state.cash, closes, fractional=self.broker.fractional,
                              book_state=self.book_state)
        portfolio = guard.Portfolio(nav=state.equity, qty=positions, prices=closes, last_close=previous or closes,
                                    universe=self.tradeable, data_as_of=bars.dates[row], today=today,
                                    buying_power=state.buying_power,
                                    accepted_moves=frozenset(s for s, _ in verdict.accepted))
        accepted, blocked = guard.check_orders(result.orders, self.account.risk, portfolio, self.guard, now)
        self.blocked = blocked
        for block in blocked:
            self.event("gate.blocked", f"{block.order.side} {block.order.qty:g} {block.order.symbol} blocked: {block.message}",
                       severity="WARN", symbol=block.order.symbol, now=now,
                       details={"rule": block.rule, "limit": block.limit, "value": block.value,
                                "order": msgspec.to_builtins(block.order)})
        turnover = sum(o.qty * o.ref_price for o in accepted) / state.equity if state.equity > 0 else math.inf
        if max_turnover is not None and turnover > max_turnover:
            raise FirstCycleTooLarge(turnover, max_turnover, accepted)
        if announce is not None:
            announce(self.account.id, accepted)
        self.guard = guard.after_orders(self.guard, today, len(accepted))
        orders = [Order(client_order_id=client_order_id(prefix, c.symbol, c.side), run_id=self.run_id,
                        account=self.account.id, symbol=c.symbol, side=c.side, qty=c.qty, status="pending",
                        ts_init=now, ts_event=now, reason=c.reason, ref_price=c.ref_price) for c in accepted]
        with self.store.transaction():  # the whole cycle is committed before the broker hears of it
            for order in orders:
                self.store.upsert_order(order)
            self.store.put_guard_state(GUARD_SCOPE, self.account.id, msgspec.json.encode(self.guard), now)
            if result.book_state is not None:  # committed with the cycle's orders, or not at all
                self.store.put_position_states(GUARD_SCOPE, self.account.id, encode_books(result.book_state), now)
                for note in result.book_notes:
                    self.event(note.type, f"{note.model}: {note.message}", severity=note.severity, symbol=note.symbol,
                               now=now, details={"model": note.model, "rule": note.rule, **note.numbers})
        if result.book_state is not None:
            self.book_state = result.book_state
        sent = [self._send(order, now) for order in orders]
        self.store.put_guard_state(GUARD_SCOPE, self.account.id, msgspec.json.encode(self.guard), now)
        return sent

    def _finish(self, journaled: list[Order], now: datetime) -> list[Order]:
        """Complete a cycle decided before: look up its open orders, send those never sent."""
        sent = []
        for order in sorted(journaled, key=lambda o: o.side != "sell"):
            if order.status not in OPEN_ORDER_STATUSES:
                continue
            resolved = self._resolve(order, now)
            if resolved.status == "pending":
                sent.append(self._send(resolved, now))
        return sent

    def _standing_decisions(self, bars: Bars, signals: Signals, due: list[str], today: date) -> dict[str, Decision]:
        """The targets of models not due today: what each decided at its last scheduled
        rebalance. Decisions are pure functions of the bars, so they are recomputed, not stored."""
        from botctl.strategy.evaluate import decide
        from botctl.strategy.schedule import rebalance_sessions

        out: dict[str, Decision] = {}
        for model in self.account.models:
            if model.name in due:
                continue
            past = [d for d in rebalance_sessions(bars.dates, model.schedule) if d < today]
            if past:
                row = bars.dates.index(past[-1]) - 1
                if row >= 0:
                    out[model.name] = decide(model.steps, model.universe, signals, row)
        return out

    def _send(self, order: Order, now: datetime) -> Order:
        try:
            placed, fills = self.broker.submit(order, now)
        except BrokerError as exc:
            unknown = msgspec.structs.replace(order, status="unknown", ts_event=now, reject_reason=str(exc)[:300])
            self.store.upsert_order(unknown)
            self.event("order.unknown", f"{order.client_order_id}: {exc}; it will be looked up, never re-sent blindly",
                       severity="ERROR", symbol=order.symbol, now=now)
            self.guard, breach = guard.after_reject(self.guard, self.account.risk, now)
            if breach:
                self.halt(*breach, now)
            if isinstance(exc, BrokerAuth):
                raise
            return unknown
        placed = msgspec.structs.replace(placed, run_id=order.run_id, account=order.account, reason=order.reason,
                                         ts_init=order.ts_init, ref_price=order.ref_price)
        fills = [msgspec.structs.replace(f, run_id=order.run_id, account=order.account) for f in fills]
        with self.store.transaction():
            self.store.upsert_order(placed)
            self.store.insert_many(fills)
        if placed.status == "rejected":
            self.event("order.rejected", placed.reject_reason or "rejected", severity="WARN", symbol=order.symbol, now=now)
            self.guard, breach = guard.after_reject(self.guard, self.account.risk, now)
            if breach:
                self.halt(*breach, now)
        for fill in fills:
            self.guard = guard.after_fill(self.guard, fill.symbol, fill.ts_event)
        return placed

    def halt(self, rule: str, reason: str, now: datetime) -> None:
        from botctl.records import Control

        self.store.set_control(Control(account=self.account.id, halted=True, reason=f"{rule}: {reason}", since=now,
                                       who=f"risk guard ({rule})"))
        self.event("breaker.tripped", f"account halted: {reason}", severity="CRITICAL", now=now, details={"rule": rule})

    def mark(self, now: datetime, closes: dict[str, float] | None = None) -> NavSnapshot:
        """Record NAV and positions as the broker reports them, and check the breakers."""
        if closes:
            self.broker.mark(closes)
        state = self.broker.account()
        positions = self.broker.positions()
        prices = {s: p.price if p.price else p.avg_price for s, p in positions.items()}
        gross = sum(abs(p.qty) * prices[s] for s, p in positions.items())
        snapshot = NavSnapshot(run_id=self.run_id, account=self.account.id, ts_event=now, nav=state.equity, cash=state.cash,
                               gross_exposure=gross, leverage=gross / state.equity if state.equity > 0 else 0.0)
        with self.store.transaction():
            self.store.insert(snapshot)
            self.store.insert_many(Position(run_id=self.run_id, account=self.account.id, ts_event=now, symbol=s, qty=p.qty,
                                            avg_price=p.avg_price, price=prices[s], value=p.qty * prices[s])
                                   for s, p in sorted(positions.items()))
        self.guard, breach = guard.after_mark(self.guard, self.account.risk, state.equity)
        self.store.put_guard_state(GUARD_SCOPE, self.account.id, msgspec.json.encode(self.guard), now)
        if breach:
            self.halt(*breach, now)
        return snapshot


class FirstCycleTooLarge(BotctlError):
    def __init__(self, turnover: float, limit: float, orders: list[SubmitOrder]) -> None:
        self.orders = orders
        super().__init__(f"the first cycle would trade {turnover:.0%} of NAV, over the {limit:.0%} allowed without "
                         "confirmation")
