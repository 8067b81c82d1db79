"""Everything one dashboard refresh shows, read from the journal (read-only) and the market data.

`Source.snapshot()` runs in a Textual thread worker: it opens the journal read-only for the
length of one refresh (WAL readers never block the bot's writes), reuses `botctl status`'s
summaries (store.overview), and reads long histories incrementally: the NAV curve and the
trade statistics remember the last row id they saw, so a refresh on a journal of a million
orders reads only what is new. `measure_refresh()` times it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from botctl.records import Event, Run, traded_qty
from botctl.tui.figures import Performance, TradeBook, TradeStats, performance
from botctl.tui.market import Market, MarketClock, ModelState, Ranking, model_states, ny_date, rankings

if TYPE_CHECKING:
    from botctl.store.overview import AccountView, FeedSourceView

EVENTS_KEPT = 100
ACTIVITY_ROWS = 12
REJECTIONS_SHOWN = 5  # the signals panel's newest signal.rejected events
# Fills a refresh feeds the trade statistics at most; the worker reads the rest of a long
# history afterwards in chunks, so a refresh stays short however big the journal.
FILLS_PER_REFRESH = 5_000
# A running bot heartbeats at least every 30 s (runtime.trading); three missed beats and it is
# no longer shown healthy, long before `status` calls it stale (store.overview, 5 minutes).
HEARTBEAT_LATE_SECONDS = 90


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Activity:
    """One order, with what became of it (so a filled order is one line, not two)."""

    ts: datetime
    side: str
    symbol: str
    qty: float
    status: str
    filled_qty: float = 0.0
    fill_price: float | None = None  # as traded, unless journal_price
    note: str = ""
    journal_price: bool = False  # no as-traded price recorded: the journal's (adjusted) one


@dataclass
class Snapshot:
    as_of: datetime
    accounts: list[str]
    account: str | None = None
    problem: str | None = None  # the journal could not be read at all
    config_problem: str | None = None
    status: str = "not running"  # healthy | degraded | unhealthy | halted | not running
    status_reason: str = ""
    run: Run | None = None
    heartbeat_age: float | None = None  # seconds, for a run recorded as running
    # The account's figures come from this run; a replay's (or backtest's) clock is the newest
    # simulated time it journaled, and the market, gates and rankings follow it.
    account_run: Run | None = None
    replay_now: datetime | None = None
    in_config: bool = True
    mode: str | None = None
    broker: str | None = None
    view: AccountView | None = None
    halt_acked: bool = True
    health: dict | None = None
    health_note: str | None = None
    health_required: bool = False  # --health-url given: no answer means degraded
    recorded_health_url: str | None = None  # where the run said it serves /health
    days: list[date] = field(default_factory=list)
    nav: list[float] = field(default_factory=list)
    invested: float | None = None  # what Total return and drawdown are measured from
    bench: list[float] = field(default_factory=list)
    benchmark: str = "SPY"
    perf: Performance | None = None
    trades: TradeStats = field(default_factory=TradeStats)
    trades_partial: bool = False  # older fills still to read (Source.more_trades)
    activity: list[Activity] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    models: list[ModelState] = field(default_factory=list)
    rankings: list[Ranking] = field(default_factory=list)
    market: MarketClock | None = None
    market_note: str | None = None
    bars_end: date | None = None  # the newest bar in the market data
    # External signal feeds: None when the config folder has no feeds.yaml (no panel shown);
    # otherwise every source the journal or feeds.yaml names, and the newest rejections.
    feeds: list[FeedSourceView] | None = None
    feeds_problem: str | None = None  # feeds.yaml could not be read (the journal's sources still show)
    rejections: list[Event] = field(default_factory=list)
    query_seconds: float = 0.0

    @property
    def held(self) -> set[str]:
        return {p.symbol for p in self.view.positions} if self.view is not None else set()

    @property
    def market_now(self) -> datetime:
        """The time the market clock, the gates and the rankings are read at."""
        return self.replay_now or self.as_of


@dataclass
class _Curve:
    scope: tuple[str, ...] = ()
    last_id: int = 0
    days: list[date] = field(default_factory=list)
    nav: list[float] = field(default_factory=list)
    invested: float | None = None  # the scope's first mark: the money put in (engine.pnl)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def load_plan(config_dir: Path):
    """(plan, None) or (None, one-line problem). Symbols are not checked against the data, so
    the dashboard opens even when the data and the config disagree."""
    from botctl.config_files import load_config_dir
    from botctl.errors import BotctlError
    from botctl.spec.plan import compile_plan

    try:
        return compile_plan(load_config_dir(config_dir)), None
    except BotctlError as exc:
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class Source:
    """The dashboard's reader. Not meant for concurrent use: one refresh at a time (a lock
    makes an overlapping refresh wait)."""

    def __init__(self, db: Path, config_dir: Path, data: Path | None = None, *, health_url: str | None = None,
                 clock: Callable[[], datetime] = wall_clock, market: Market | None = None) -> None:
        self.db = Path(db)
        self.config_dir = Path(config_dir)
        self.health_url = health_url
        self.clock = clock
        self.market = market or Market(data)
        self.lock = threading.Lock()
        self._plan_key: object = None
        self._plan: tuple = (None, None)
        self._curves: dict[tuple, _Curve] = {}
        self._books: dict[tuple, TradeBook] = {}
        self._feeds_key: object = None
        self._feeds: tuple[list[str], str | None] = ([], None)

    # --- plan ----------------------------------------------------------------------------

    def plan(self):
        key = []
        for name in ("strategies.yaml", "accounts.yaml"):
            try:
                key.append((self.config_dir / name).stat().st_mtime_ns)
            except OSError:
                key.append(None)
        if key != self._plan_key:
            self._plan_key, self._plan = key, load_plan(self.config_dir)
        return self._plan

    def feed_sources(self) -> tuple[list[str], str | None] | None:
        """(the live sources feeds.yaml declares, a one-line problem) or None without one;
        read again only when the file changes."""
        from botctl.spec.feeds import FEEDS_FILE

        try:
            key: object = (self.config_dir / FEEDS_FILE).stat().st_mtime_ns
        except OSError:
            return None
        if key != self._feeds_key:
            from botctl.config_files import feed_source_names

            self._feeds_key, self._feeds = key, feed_source_names(self.config_dir) or ([], None)
        return self._feeds

    # --- one refresh ---------------------------------------------------------------------

    def snapshot(self, account: str | None = None, *, market: bool = True) -> Snapshot:
        """Everything for `account` (default: the first). `market=False` skips the calendar
        and bars (the journal part alone, as measure_refresh times it)."""
        with self.lock:
            now = self.clock()
            plan, config_problem = self.plan()
            snap = Snapshot(as_of=now, accounts=[a.id for a in plan.accounts] if plan else [],
                            config_problem=config_problem, benchmark=plan.benchmark if plan else "SPY")
            began = time.perf_counter()
            self._read_journal(snap, plan, account, now)
            snap.query_seconds = time.perf_counter() - began
            if snap.account is None and snap.accounts:
                snap.account = account if account in snap.accounts else snap.accounts[0]
            acc_plan = _account_plan(plan, snap.account)
            snap.in_config = acc_plan is not None
            if acc_plan is not None:
                snap.mode, snap.broker = acc_plan.mode, acc_plan.broker
            self._health(snap, plan)
            _status(snap)
            if market:
                try:
                    self._market(snap, acc_plan, snap.market_now)
                except Exception as exc:  # odd data must not hide the journal's figures
                    snap.market_note = f"market data: {type(exc).__name__}: {exc}"
            return snap

    def _read_journal(self, snap: Snapshot, plan, account: str | None, now: datetime) -> None:
        from botctl.errors import BotctlError
        from botctl.store import Store
        from botctl.store.overview import account_view, journal_accounts, run_view, simulated_now

        try:
            store = Store.open(self.db, create=False, readonly=True)
        except BotctlError as exc:
            snap.problem = str(exc).splitlines()[0]
            return
        with store:
            try:
                rv = run_view(store, now)
                snap.run, snap.status_reason = rv.run, rv.reason
                _run_state(snap, rv, now)
                if rv.running:  # only a running bot is asked (and the lookup costs a query)
                    snap.recorded_health_url = recorded_health_url(store, rv.run)
                controls = store.controls()
                self._read_feeds(store, snap, now)
                models = {m.name for a in plan.accounts for m in a.models} if plan else set()
                snap.accounts += [a for a in journal_accounts(store) if a not in snap.accounts and a not in models]
                if not snap.accounts:
                    return
                snap.account = acc = account if account in snap.accounts else snap.accounts[0]
                view = snap.view = account_view(store, acc, controls)
                control = controls.get(acc) or controls.get("*")
                snap.halt_acked = not (control and control.halted and control.acked_at is None)
                if view.run_id is not None:
                    scope = _scope(store, acc)
                    snap.account_run = store.get_run(scope[0]) if scope else None
                    snap.replay_now = simulated_now(store, snap.account_run)
                    self._read_curve(store, acc, scope, snap)
                    snap.trades, snap.trades_partial = self._read_trades(store, acc, scope, FILLS_PER_REFRESH)
                snap.activity = _activity(store, acc)
                snap.events = _events(store, acc)
            except BotctlError as exc:
                snap.problem = str(exc).splitlines()[0]

    def _read_feeds(self, store, snap: Snapshot, now: datetime) -> None:
        configured = self.feed_sources()
        if configured is None:
            return
        from botctl.store.overview import feed_views

        names, snap.feeds_problem = configured
        snap.feeds = feed_views(store, now, also=names)
        snap.rejections = [e for _, e in reversed(store.newest("events", REJECTIONS_SHOWN, type="signal.rejected"))]

    def _read_curve(self, store, account: str, scope: tuple[str, ...], snap: Snapshot) -> None:
        curve = _cached(self._curves, (str(self.db), account), scope, _Curve)
        marks = ",".join("?" * len(scope))
        rows = store.conn.execute(
            f"SELECT id, ts_event, nav FROM nav INDEXED BY nav_account_id WHERE account = ? AND id > ? "
            f"AND run_id IN ({marks}) ORDER BY id", (account, curve.last_id, *scope)).fetchall()
        if curve.invested is None and rows:
            curve.invested = rows[0][2]  # kept when a later mark the same day replaces it
        for row_id, ts, nav in rows:
            day = ny_date(_ts(ts))
            if curve.days and curve.days[-1] == day:  # a later mark the same day replaces the earlier
                curve.nav[-1] = nav
            elif not curve.days or day > curve.days[-1]:
                curve.days.append(day)
                curve.nav.append(nav)
            curve.last_id = row_id
        snap.days, snap.nav, snap.invested = list(curve.days), list(curve.nav), curve.invested

    def _read_trades(self, store, account: str, scope: tuple[str, ...], limit: int) -> tuple[TradeStats, bool]:
        """Feed the account's trade book the next `limit` fills it has not seen; (stats, more
        to read). A long history is read over several short transactions, never in one."""
        book = _cached(self._books, (str(self.db), account), scope, TradeBook)
        marks = ",".join("?" * len(scope))
        rows = store.conn.execute(
            f"SELECT id, symbol, side, qty, price, julianday(ts_event) FROM fills INDEXED BY fills_account_id "
            f"WHERE account = ? AND id > ? AND run_id IN ({marks}) ORDER BY id LIMIT ?",
            (account, book.last_id, *scope, limit)).fetchall()
        for row in rows:
            book.add(*row)
        return book.stats, len(rows) == limit

    def more_trades(self, account: str, limit: int = 20_000) -> tuple[TradeStats, bool] | None:
        """Read the next `limit` fills of a history a refresh left unread (see FILLS_PER_REFRESH)."""
        from botctl.errors import BotctlError
        from botctl.store import Store

        with self.lock:
            try:
                with Store.open(self.db, create=False, readonly=True) as store:
                    scope = _scope(store, account)
                    return self._read_trades(store, account, scope, limit)
            except BotctlError:
                return None

    def _health(self, snap: Snapshot, plan) -> None:
        if self.health_url is None and not (snap.run is not None and snap.run.status == "running"
                                            and snap.status not in ("not running", "unhealthy")):
            snap.health_note = "health: bot not running"
            return
        snap.health_required = self.health_url is not None
        url = health_url(self.health_url, snap.recorded_health_url, plan)
        if url is None:
            snap.health_note = "health: no endpoint recorded or configured"
            return
        try:
            import httpx

            response = httpx.get(url, timeout=0.5)
            response.raise_for_status()
            body = response.json()
            snap.health = body if isinstance(body, dict) else None
            snap.health_note = f"health: {body.get('status', '?')}" if isinstance(body, dict) else "health: bad reply"
        except Exception as exc:  # refused, timed out, not JSON: all mean "no answer"
            snap.health_note = f"health: unreachable at {url} ({type(exc).__name__})"

    def _market(self, snap: Snapshot, acc_plan, now: datetime) -> None:
        market = self.market
        snap.market = market.clock(now)
        snap.bars_end = market.bars_end()
        if snap.days:
            snap.bench = market.benchmark(snap.benchmark, snap.days)
            snap.perf = performance(snap.days, snap.nav, snap.bench, invested=snap.invested)
        if acc_plan is not None:
            snap.models = model_states(market, acc_plan, now)
            snap.rankings = rankings(market, acc_plan, now)
        snap.market_note = market.problem


def _cached(cache: dict, key: tuple, scope: tuple[str, ...], make):
    """The incremental reader kept for `key`, started afresh unless `scope` extends the runs
    it has read so far (a new paper run, a manual kill: their rows are all newer)."""
    entry = cache.get(key)
    if entry is None or scope[: len(entry.scope)] != entry.scope:
        entry = cache[key] = make()
    entry.scope = scope
    return entry


def health_url(given: str | None, recorded: str | None, plan) -> str | None:
    """Where to ask the bot's health: --health-url, else the address the run journaled, else
    health.host/port from accounts.yaml (a bot started with --health-port N records N)."""
    if given is not None:
        return given.rstrip("/") + "/health" if given.rstrip("/").count("/") <= 2 else given  # host:port alone
    if recorded is not None:
        return recorded
    if plan is not None and plan.health.port:
        return f"http://{plan.health.host}:{plan.health.port}/health"
    return None


def recorded_health_url(store, run: Run | None) -> str | None:
    """The /health URL `run` journaled when it began serving (its `health.serving` event)."""
    if run is None:
        return None
    found = store.newest("events", 1, run_id=run.run_id, type="health.serving")
    url = found[0][1].details.get("url") if found else None
    return url if isinstance(url, str) else None


def _run_state(snap: Snapshot, rv, now: datetime) -> None:
    """The bot's state from the journal, the heartbeat first: a dead pid, a failed run or a
    heartbeat `status` calls stale is unhealthy; a late heartbeat is degraded whatever the
    health endpoint says (a frozen bot may still answer it)."""
    run = rv.run
    if run is not None and run.status == "running":
        snap.heartbeat_age = (now - (run.heartbeat_at or run.started_at)).total_seconds()
    if rv.stale:
        snap.status = "unhealthy"
    elif not rv.running:
        snap.status = "not running"
    elif snap.heartbeat_age is not None and snap.heartbeat_age > HEARTBEAT_LATE_SECONDS:
        snap.status = "degraded"
        snap.status_reason = (f"heartbeat {snap.heartbeat_age:.0f}s old (late after {HEARTBEAT_LATE_SECONDS}s): "
                              "the bot may be stuck or frozen")
    else:
        snap.status = "healthy"


def _account_plan(plan, account: str | None):
    if plan is None or account is None:
        return None
    return next((a for a in plan.accounts if a.id == account), None)


def _status(snap: Snapshot) -> None:
    """healthy | degraded | halted | not running, with a reason for the header."""
    view = snap.view
    if view is not None and view.halted and snap.status != "unhealthy":
        snap.status = "halted"
        snap.status_reason = (f"halted: {view.halt_reason}" if snap.halt_acked
                              else f"halt requested ({view.halt_reason}); waiting for the bot to act")
    elif snap.status == "healthy" and snap.health and snap.health.get("status") not in (None, "healthy"):
        snap.status, snap.status_reason = "degraded", f"health endpoint reports {snap.health['status']}"
    elif snap.status == "healthy" and snap.health_required and snap.health is None:
        snap.status, snap.status_reason = "degraded", "the health endpoint does not answer"
    elif snap.status == "unhealthy" and view is not None and view.halted:
        snap.status_reason += f"; halted: {view.halt_reason}"
    if snap.problem:
        snap.status, snap.status_reason = "not running", snap.problem


def _scope(store, account: str) -> tuple[str, ...]:
    """The runs whose marks make the account's history: the latest replay or backtest (and the
    manual kills after it), or every paper/live run, which continue one another."""
    conn = store.conn
    anchor = conn.execute(
        "SELECT n.run_id, r.kind, r.id FROM nav n INDEXED BY nav_account_id JOIN runs r ON r.run_id = n.run_id "
        "WHERE n.account = ? AND r.kind != 'manual' ORDER BY n.id DESC LIMIT 1", (account,)).fetchone()
    if anchor is None:
        rows = conn.execute("SELECT run_id FROM runs WHERE kind = 'manual' ORDER BY id").fetchall()
    elif anchor[1] in ("replay", "backtest"):
        rows = [(anchor[0],)] + conn.execute(
            "SELECT run_id FROM runs WHERE kind = 'manual' AND id > ? ORDER BY id", (anchor[2],)).fetchall()
    else:
        rows = conn.execute("SELECT run_id FROM runs WHERE kind IN ('paper', 'live', 'manual') ORDER BY id").fetchall()
    return tuple(r[0] for r in rows)


def _activity(store, account: str) -> list[Activity]:
    """The newest orders, newest first, each with its fills on the same line (a trade is one
    line) at the price that traded; a fill journaled before as-traded prices were recorded
    shows the journal's price and says so."""
    orders = list(reversed(store.orders(account=account, limit=ACTIVITY_ROWS)))
    ids = [o.client_order_id for o in orders]
    traded = {}
    if ids:
        rows = store.conn.execute(
            f"SELECT client_order_id, SUM(qty * COALESCE(as_traded_price, price)) / SUM(qty), "
            f"SUM(qty * price) / SUM(qty), MAX(as_traded_price IS NULL) FROM fills "
            f"WHERE client_order_id IN ({','.join('?' * len(ids))}) GROUP BY client_order_id", ids).fetchall()
        traded = {cid: (price, adjusted, bool(journal_only)) for cid, price, adjusted, journal_only in rows}
    items = []
    for o in orders:
        price, adjusted, journal_only = traded.get(o.client_order_id, (o.avg_fill_price, None, True))
        # Shares as the exchange counted them: the journal's are adjusted shares (the same money).
        shares = traded_qty(1.0, adjusted, price) if adjusted and price and not journal_only else 1.0
        items.append(Activity(o.ts_init, o.side, o.symbol, o.qty * shares, o.status, o.filled_qty * shares, price,
                              o.reject_reason or "", journal_price=journal_only))
    return items


def _events(store, account: str) -> list[Event]:
    """The account's WARN-or-worse events and the bot's own (no account), newest first."""
    mine = store.events(account=account, severity_at_least="WARN", limit=EVENTS_KEPT)
    general = [e for e in store.events(severity_at_least="WARN", limit=EVENTS_KEPT) if e.account is None]
    merged = sorted(mine + general, key=lambda e: e.ts_event, reverse=True)
    return merged[:EVENTS_KEPT]


def measure_refresh(db_path, config_dir: Path | None = None, *, runs: int = 7, account: str | None = None) -> float:
    """Median seconds of journal work (opening the file and every query; not the calendar, the
    bars or drawing) in one dashboard refresh of `db_path`, once the dashboard is open.

    Also printed: the very first refresh (which reads the whole NAV curve and the first
    FILLS_PER_REFRESH fills) and the background reading of the rest of the fill history."""
    import statistics

    source = Source(Path(db_path), config_dir or Path("."))
    first = source.snapshot(account, market=False)
    began, chunks = time.perf_counter(), 0
    partial = first.trades_partial
    while partial and first.account:
        _, partial = source.more_trades(first.account) or (None, False)
        chunks += 1
    catch_up = time.perf_counter() - began
    times = [source.snapshot(first.account, market=False).query_seconds for _ in range(runs)]
    median = statistics.median(times)
    print(f"refresh of {db_path} ({first.account}): first {first.query_seconds * 1000:.1f} ms; "
          f"rest of the fill history {catch_up * 1000:.1f} ms in {chunks} background chunk(s); "
          f"then median {median * 1000:.1f} ms over {runs} (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})")
    return median


__all__ = ["Activity", "Snapshot", "Source", "health_url", "load_plan", "measure_refresh", "recorded_health_url",
           "wall_clock"]
