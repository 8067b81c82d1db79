"""Read-side summaries for status (and the dashboard): what each account looks like now,
assembled from the journal alone, so they work whether or not the bot runs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

import msgspec

from botctl.engine.pnl import pnl_since
from botctl.records import Control, NavSnapshot, Order, Position, Run
from botctl.store.journal import TRADING_KINDS, Store

# A running bot heartbeats at least every cycle; beyond this it is presumed stuck or dead.
HEARTBEAT_STALE_SECONDS = 300


class PositionView(msgspec.Struct):
    symbol: str
    qty: float
    price: float
    value: float
    weight: float
    unrealized_pnl: float


class ExitWaitingView(msgspec.Struct):
    """A book position whose symbol had no price when its exits were due: nothing is sold
    blind, the exit waits (a `book.exit_waiting` WARN each session) until a price comes back."""

    rule: str  # the exit decided and not done yet, or "no_price": its exits could not be checked
    since: str  # the first session without a close
    decided_on: str | None  # when that exit was decided (None with "no_price")


class BookPositionView(msgspec.Struct):
    """A signal book's open position as its journaled state says (engine.positions). A sale
    decided and waiting for a price is listed too, under the exit's rule; once its position
    has left the book only its quantity is known (entered_on and the figures are None)."""

    model: str
    symbol: str
    qty: float
    entered_on: str | None  # the bar the entry was decided on; it filled at the next session's open
    entry_price: float | None
    high_close: float | None
    stop_level: float | None  # the close at or below which a stop fires
    ladder_stage: int | None  # take-profit rungs sold
    score: float | None
    as_of: str | None  # the bar of the book's last decision
    age_days: int | None  # calendar days from entered_on to as_of
    exit_waiting: ExitWaitingView | None = None  # its exit waits for a price


class AccountView(msgspec.Struct):
    account: str
    run_id: str | None
    halted: bool
    halt_reason: str | None
    halted_since: datetime | None
    nav: float | None
    cash: float | None
    leverage: float | None
    day_pnl: float | None
    total_pnl: float | None
    positions: list[PositionView]
    open_orders: list[Order]
    last_cycle_at: datetime | None
    marked_at: datetime | None
    last_error: str | None
    last_warning: str | None = None  # the newest WARN, when newer than the last error: why a cycle did not trade
    book_positions: list[BookPositionView] = []  # signal books' open positions (position_state)


class RunView(msgspec.Struct):
    run: Run | None
    running: bool
    expected_running: bool
    stale: bool
    reason: str


def run_view(store: Store, now: datetime | None = None) -> RunView:
    from botctl.runtime.process import is_botctl_process

    now = now or datetime.now(timezone.utc)
    # The bot's run: a backtest (or an older journal's, kept in this file) or a kill's manual
    # run finishing later must neither hide a running bot nor a crashed one.
    run = store.latest_run(TRADING_KINDS)
    if run is None:
        return RunView(None, False, False, False, "no run recorded yet")
    if run.status != "running":
        said = f": {run.note}" if run.status == "failed" and run.note else ""
        # A failed run is unhealthy: whatever it was doing has stopped for a reason to read.
        return RunView(run, False, False, run.status == "failed", f"last run {run.status}{said}")
    alive = is_botctl_process(run.pid, run.started_at)
    beat = run.heartbeat_at or run.started_at
    age = (now - beat).total_seconds()
    if not alive:
        ended = store.unrecorded_end()  # its end could not be written into the journal
        if ended is not None and ended.run_id == run.run_id:
            return RunView(ended, False, True, True, f"last run {ended.status}: {ended.note} "
                                                      f"(written beside the journal; moved in on the next run)")
        return RunView(run, False, True, True, f"pid {run.pid} is not running (crashed or killed without a clean stop)")
    if age > HEARTBEAT_STALE_SECONDS:
        return RunView(run, True, True, True, f"heartbeat is {age:.0f}s old (stale after {HEARTBEAT_STALE_SECONDS}s)")
    return RunView(run, True, True, False, "running")


def account_view(store: Store, account: str, controls: dict[str, Control]) -> AccountView:
    latest: NavSnapshot | None = store.latest_nav(account)
    run_id = latest.run_id if latest else None
    halt = controls.get(account) or controls.get("*")
    halted = bool(halt and halt.halted)
    positions: list[Position] = store.positions_at_latest(account, run_id) if latest else []
    day_pnl = total_pnl = None
    if latest is not None:
        # The previous mark may belong to an earlier run (a kill with no bot running writes
        # one mark under a 'manual' run): P&L is measured across that boundary.
        two = store.newest("nav", 2, account=account)
        day_pnl = latest.nav - two[0][1].nav if len(two) == 2 else 0.0
        base_run = run_id
        run = store.get_run(latest.run_id)
        if run is not None and run.kind == "manual" and len(two) == 2:
            base_run = two[0][1].run_id
        first = store.rows_after("nav", 0, 1, account=account, run_id=base_run)
        # The run's first mark is the money put in (journaled at the starting cash before any trade).
        total_pnl = pnl_since(latest.nav, first[0][1].nav)[0] if first else None
    nav = latest.nav if latest else None
    views = [PositionView(p.symbol, p.qty, p.price, p.value, p.value / nav if nav else 0.0,
                          (p.price - p.avg_price) * p.qty) for p in positions]
    last_order = store.newest("orders", 1, account=account)
    errors = store.events(account=account, severity_at_least="ERROR", limit=1)
    warnings = store.events(account=account, severity_at_least="WARN", limit=1)
    warning = warnings[0] if warnings and warnings[0].severity == "WARN" else None
    return AccountView(
        account=account, run_id=run_id, halted=halted, halt_reason=halt.reason if halt and halted else None,
        halted_since=halt.since if halt and halted else None, nav=nav, cash=latest.cash if latest else None,
        leverage=latest.leverage if latest else None, day_pnl=day_pnl, total_pnl=total_pnl, positions=views,
        open_orders=store.open_orders(account), last_cycle_at=last_order[0][1].ts_init if last_order else None,
        marked_at=latest.ts_event if latest else None,
        last_error=(errors[0].message or errors[0].type) if errors else None,
        last_warning=f"{warning.ts_event:%Y-%m-%d %H:%M} {warning.type}: {warning.message}" if warning else None,
        book_positions=book_positions(store, account, run_id),
    )


def book_positions(store: Store, account: str, run_id: str | None) -> list[BookPositionView]:
    """Signal books' open positions: a replay keeps them under its run id, paper and live under
    'live'. An unreadable document shows nothing rather than failing status."""
    from botctl.engine.positions import decode_books

    documents = (store.position_states(run_id, account) if run_id else {}) or store.position_states("live", account)
    try:
        state = decode_books(documents)
    except ValueError:
        return []
    out = []
    for model, book in sorted(state.models.items()):
        as_of = book.as_of.isoformat() if book.as_of else None
        waiting = {symbol: ExitWaitingView(sale.rule, sale.waiting_since.isoformat(), sale.decided_on.isoformat())
                   for symbol, sale in book.selling.items() if sale.waiting_since is not None}
        for symbol, p in sorted(book.positions.items()):
            age = (book.as_of - p.decided_on).days if book.as_of else None
            exit_waiting = waiting.pop(symbol, None) or (
                ExitWaitingView("no_price", p.waiting_since.isoformat(), None) if p.waiting_since else None)
            out.append(BookPositionView(
                model=model, symbol=symbol, qty=p.qty, entered_on=p.decided_on.isoformat(), entry_price=p.entry_price,
                high_close=p.high_close, stop_level=p.stop_level, ladder_stage=p.stage, score=p.score,
                as_of=as_of, age_days=age, exit_waiting=exit_waiting))
        for symbol, exit_waiting in sorted(waiting.items()):  # sold in full, the sale not done yet
            out.append(BookPositionView(
                model=model, symbol=symbol, qty=book.selling[symbol].qty, entered_on=None, entry_price=None,
                high_close=None, stop_level=None, ladder_stage=None, score=None, as_of=as_of, age_days=None,
                exit_waiting=exit_waiting))
    return out


class FeedSourceView(msgspec.Struct):
    """One external signal source as the journal shows it (status, dashboard)."""

    source: str
    signals: int  # journaled, in all
    today: int  # received since midnight UTC
    last_received_at: datetime | None
    stale: bool  # its newest feed.stale event is newer than its newest feed.fresh
    stale_since: datetime | None


def feed_views(store: Store, now: datetime, also: Iterable[str] = ()) -> list[FeedSourceView]:
    """Every source that journaled a signal or went stale, and those of `also` (the ones
    feeds.yaml declares: listed with zeros until they send), by name."""
    midnight = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    counts = store.signal_sources(midnight)
    stale: dict[str, datetime | None] = {}
    with store._guard():
        rows = store.conn.execute(
            "SELECT type, ts_event, json_extract(details, '$.source') FROM events "
            "WHERE subsystem = 'feeds' AND type IN ('feed.stale', 'feed.fresh') ORDER BY id DESC LIMIT 10000"
        ).fetchall()
    for type_, ts, source in rows:
        if source is not None and source not in stale:
            stale[source] = datetime.fromisoformat(ts) if type_ == "feed.stale" else None
    names = sorted(set(counts) | set(stale) | set(also))
    return [FeedSourceView(name, counts.get(name, (0, None, 0))[2], counts.get(name, (0, None, 0))[0],
                           counts.get(name, (0, None, 0))[1], stale.get(name) is not None, stale.get(name))
            for name in names]


def journal_accounts(store: Store) -> list[str]:
    """Accounts the journal knows, in the order they first appeared."""
    with store._guard():  # a damaged file is a one-line StoreError here too
        rows = store.conn.execute("SELECT account FROM nav GROUP BY account ORDER BY MIN(id)").fetchall()
    return [r[0] for r in rows]


def simulated_now(store: Store, run: Run | None) -> datetime | None:
    """A replay's (or backtest's) own clock: the newest simulated time it journaled (its last
    NAV mark or order). None for paper and live runs, which follow the wall clock."""
    if run is None or run.kind not in ("replay", "backtest"):
        return None
    times = [rec.ts_event for _, rec in store.newest("nav", 1, run_id=run.run_id)]
    times += [rec.ts_init for _, rec in store.newest("orders", 1, run_id=run.run_id)]
    return max(times, default=None)
