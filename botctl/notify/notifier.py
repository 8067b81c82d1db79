"""The notifier: hears every record the runtime journals, and turns them into messages.

`Notifier.heard(record)` is the Store's listener, called on the trading thread after each
committed write: it routes and queues, nothing else (no I/O, no waiting). A housekeeping
thread sends a rebalance's orders as one message once they stop coming, builds the daily
summary after each close (reading the journal through a connection of its own), and
journals what was sent or failed (`notify.sent`, `notify.failed`) and counts it for /metrics.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import date, datetime, time as dtime, timedelta, timezone

from botctl.notify.delivery import Courier, send
from botctl.notify.messages import NEW_YORK, DaySummary, Message, event_message, orders_message, summary_message
from botctl.records import Event, NavSnapshot, Order, Record, Run
from botctl.spec.notify import ORDERS_TYPE, SUMMARY_TYPE, Destination, NotifyConfig

OUTCOMES_EVERY = 1.0  # seconds between two journal writes of notify.sent / notify.failed
Benchmark = Callable[[date], "float | None"]  # the benchmark's return on that session, if known


def cycle_key(order: Order) -> str:
    """The part of a client order id shared by one account's cycle (see engine.ids)."""
    cut = order.client_order_id.rfind(f"-{order.symbol}-")
    return order.client_order_id[:cut] if cut > 0 else order.client_order_id


@dataclasses.dataclass
class _Group:
    key: str
    orders: dict[str, Order]
    last_seen: float


class Notifier:
    def __init__(self, config: NotifyConfig, journal: str | None, *, telemetry=None, benchmark: Benchmark | None = None,
                 benchmark_symbol: str = "SPY", sender=send) -> None:
        self.config = config
        self.spec = config.spec
        self.journal = journal
        self.telemetry = telemetry
        self.benchmark = benchmark
        self.benchmark_symbol = benchmark_symbol
        self.couriers = {name: Courier(dest, self.spec, self._outcome, sender)
                         for name, dest in config.destinations.items()}
        self.run: Run | None = None
        self._lock = threading.Lock()
        self._groups: dict[str, _Group] = {}
        self._closes: deque[NavSnapshot] = deque()
        self._outcomes: deque[tuple[Destination, Message, str | None, str]] = deque()
        self._summarized: set[tuple[str, date]] = set()
        self._stop = threading.Event()
        self._house = threading.Thread(target=self._housekeeping, name="botctl-notify", daemon=True)
        self._store = None
        self._recorded_at = 0.0

    # --- the trading thread's side: cheap and never raising -----------------------------

    def heard(self, record: Record) -> None:
        try:
            self._heard(record)
        except Exception:  # a notification problem must never become a trading problem
            pass

    def _heard(self, record: Record) -> None:
        if isinstance(record, Run):
            self.run = record
            return
        if self.run is None or self.run.kind not in self.spec.kinds:
            return
        if isinstance(record, Event):
            # routes first: most events go nowhere, and are not worth formatting
            if record.subsystem != "notify" and self.config.destinations_for(record.type, record.severity, record.account):
                self.route(event_message(record, self.run.kind), record.account)
        elif isinstance(record, Order):
            key = cycle_key(record)
            with self._lock:
                group = self._groups.get(record.account)
                if group is not None and group.key != key:
                    self._flush_group(record.account)
                    group = None
                if group is None:
                    group = self._groups[record.account] = _Group(key, {}, 0.0)
                group.orders[record.client_order_id] = record
                group.last_seen = time.monotonic()
        elif isinstance(record, NavSnapshot) and self.spec.daily_summary and self._summaries_go(record.account):
            self._closes.append(record)

    def _summaries_go(self, account: str) -> bool:
        return any(self.config.destinations_for(SUMMARY_TYPE, severity, account) for severity in ("INFO", "WARN"))

    def route(self, message: Message, account: str | None) -> None:
        for name in self.config.destinations_for(message.about, message.severity, account):
            # one copy per destination: the attempts are its own
            dropped = self.couriers[name].outbox.put(dataclasses.replace(message))
            if dropped is not None:
                self._outcomes.append((self.config.destinations[name], dropped, "dropped: the queue was full", "dropped"))

    def _flush_group(self, account: str) -> None:
        """Called with the lock held."""
        group = self._groups.pop(account, None)
        if group is not None and group.orders:
            kind = self.run.kind if self.run else None
            self.route(orders_message(account, list(group.orders.values()), kind), account)

    # --- the housekeeping thread --------------------------------------------------------------

    def start(self) -> Notifier:
        for courier in self.couriers.values():
            courier.start()
        self._house.start()
        return self

    def _housekeeping(self) -> None:
        while not self._stop.wait(0.1):
            self._tick()
        self._tick(final=True)

    def _tick(self, final: bool = False) -> None:
        try:
            now = time.monotonic()
            with self._lock:
                for account in [a for a, g in self._groups.items() if final or now - g.last_seen >= self.spec.group_seconds]:
                    self._flush_group(account)
            while self._closes:
                self._maybe_summarize(self._closes.popleft())
        except Exception:  # a summary that cannot be built is not worth stopping the notifier
            pass
        # Outcomes are journaled in one transaction a second at most: each write takes the
        # journal's write lock, which trading's own commits would otherwise queue behind.
        if final or time.monotonic() - self._recorded_at >= OUTCOMES_EVERY:
            self._recorded_at = time.monotonic()
            self._record_outcomes()

    def _maybe_summarize(self, mark: NavSnapshot) -> None:
        from botctl.adapters.calendar import sessions

        day = mark.ts_event.astimezone(NEW_YORK).date()
        if (mark.account, day) in self._summarized:
            return
        session = next(iter(sessions(day, day)), None)
        if session is None or mark.ts_event < session.close:
            return  # a mark during the session (after a cycle), not the close
        self._summarized.add((mark.account, day))
        with self._lock:
            self._flush_group(mark.account)  # the day's orders first, then the summary
        summary = self._summary(mark, day)
        self.route(summary_message(summary, self.run.kind if self.run else None), mark.account)

    def _summary(self, mark: NavSnapshot, day: date) -> DaySummary:
        previous = fills = warnings = errors = None
        store = self._journal()
        if store is not None:
            from botctl.store.codec import format_ts

            start = format_ts(datetime.combine(day, dtime(0), NEW_YORK))
            end = format_ts(datetime.combine(day + timedelta(days=1), dtime(0), NEW_YORK))
            kind = self.run.kind if self.run else ""
            runs = "SELECT run_id FROM runs WHERE kind = ?"
            conn = store.conn
            row = conn.execute(f"SELECT nav FROM nav WHERE account = ? AND ts_event < ? AND run_id IN ({runs}) "
                               "ORDER BY ts_event DESC LIMIT 1", (mark.account, start, kind)).fetchone()
            previous = row[0] if row else None
            fills = conn.execute(f"SELECT COUNT(*) FROM fills WHERE account = ? AND ts_event >= ? AND ts_event < ? "
                                 f"AND run_id IN ({runs})", (mark.account, start, end, kind)).fetchone()[0]
            counted = dict(conn.execute(
                f"SELECT severity, COUNT(*) FROM events WHERE (account = ? OR account IS NULL) AND ts_event >= ? "
                f"AND ts_event < ? AND severity != 'INFO' AND subsystem != 'notify' "
                f"AND (run_id IS NULL OR run_id IN ({runs})) GROUP BY severity",
                (mark.account, start, end, kind)).fetchall())
            warnings = sum(counted.values())
            errors = counted.get("ERROR", 0) + counted.get("CRITICAL", 0)
        bench = None
        if self.benchmark is not None:
            try:
                bench = self.benchmark(day)
            except Exception:
                bench = None
        return DaySummary(account=mark.account, day=day, as_of=mark.ts_event, nav=mark.nav, previous_nav=previous,
                          benchmark=self.benchmark_symbol, benchmark_return=bench, fills=fills or 0,
                          warnings=warnings or 0, errors=errors or 0)

    def _journal(self):
        """This thread's own connection to the journal (the trading thread's is never shared)."""
        if self._store is None and self.journal is not None:
            from botctl.store import Store

            try:
                # synchronous=NORMAL: an outcome lost to a power cut is not worth an fsync that
                # trading's next commit would wait behind
                self._store = Store.open(self.journal, create=False, durable=False)
            except Exception:
                self.journal = None  # not worth retrying every tick; outcomes still reach /metrics
        return self._store

    # --- outcomes -----------------------------------------------------------------------------

    def _outcome(self, destination: Destination, message: Message, reason: str | None) -> None:
        self._outcomes.append((destination, message, reason, "sent" if reason is None else "failed"))

    def _record_outcomes(self) -> None:
        events: list[Event] = []
        while self._outcomes:
            destination, message, reason, outcome = self._outcomes.popleft()
            if self.telemetry is not None:
                try:
                    self.telemetry.notified(destination.name, outcome)
                except Exception:
                    pass
            sent = reason is None
            events.append(Event(
                ts_event=datetime.now(timezone.utc), subsystem="notify", type="notify.sent" if sent else "notify.failed",
                # no account: a notification's fate is not the account's news (status shows an
                # account's newest warning as why it did not trade)
                severity="INFO" if sent else "WARN", run_id=self.run.run_id if self.run else None,
                message=(f"{message.title} -> {destination.name}" if sent
                         else f"{message.title} -> {destination.name}: {reason}")[:500],
                details={"to": destination.name, "account": message.account, "url": destination.shown, "about": message.about,
                         "severity": message.severity, "attempts": message.attempts, "outcome": outcome}))
        store = self._journal() if events else None
        if store is not None:
            try:
                store.insert_many(events)
            except Exception:
                pass  # the journal is busy or failing: trading's own writes matter more

    # --- stopping -----------------------------------------------------------------------------

    def close(self) -> None:
        """Send what is queued (for up to flush_seconds), journal what could not be, stop."""
        self._stop.set()
        self._house.join(timeout=30)
        deadline = time.monotonic() + self.spec.flush_seconds
        while time.monotonic() < deadline and not all(c.idle() for c in self.couriers.values()):
            time.sleep(0.02)
        for courier in self.couriers.values():
            courier.halt()
        deadline = time.monotonic() + self.spec.timeout_seconds + 1.0  # one send in flight, shared by all
        for name, courier in self.couriers.items():
            for message in courier.leftovers(deadline):
                self._outcomes.append((self.config.destinations[name], message,
                                       "not delivered before the bot stopped", "failed"))
        self._record_outcomes()
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Notifier:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def benchmark_from_bars(bars, symbol: str) -> Benchmark | None:
    """The benchmark's close-to-close return on a session, from aligned bars."""
    if symbol not in bars.symbols:
        return None
    column = bars.symbols.index(symbol)

    def day_return(day: date) -> float | None:
        row = bars.index_of(day)
        if row <= 0 or bars.dates[row] != day:
            return None
        before, after = float(bars.close[row - 1, column]), float(bars.close[row, column])
        return after / before - 1.0 if before > 0 and after == after else None

    return day_return


__all__ = ["Notifier", "benchmark_from_bars", "cycle_key", "ORDERS_TYPE", "SUMMARY_TYPE"]
