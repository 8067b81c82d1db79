"""The one way a live signal enters botctl: checked, then journaled by one writer thread.

Sources (webhook handlers, pollers, file watchers) run in their own threads and hand checked
signals to `Intake.submit`, which puts them on a bounded queue. The writer thread drains the
queue in batches, commits each batch in one transaction on its own connection to the journal
(SQLite connections stay in the thread that made them) and only then answers each signal:
recorded or duplicate. Nothing is usable before that commit, because everything that uses a
signal reads it back from the journal.

Rejections become `signal.rejected` WARN events through the same queue, at most
REJECTION_EVENTS_PER_MINUTE per source and reason (a flood of bad requests must not flood
the journal); the rest are counted and the next event says how many were folded into it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from botctl.feeds.checks import Rejection
from botctl.records import Event, Signal

REJECTION_EVENTS_PER_MINUTE = 20
BATCH = 500


@dataclass
class Reply:
    """A submitted signal's answer, set once its batch is committed."""

    done: threading.Event = field(default_factory=threading.Event)
    recorded: bool | None = None  # True recorded, False duplicate, None: the journal failed
    error: str = ""
    submitted: float = field(default_factory=time.perf_counter)  # for the receipt->journal figure
    committed: float = 0.0

    def wait(self, timeout: float) -> bool:
        return self.done.wait(timeout)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Intake:
    def __init__(self, db_path: str, *, run_id: str | None = None, queue_size: int = 10000,
                 now: Callable[[], datetime] = utc_now, durable: bool = True) -> None:
        self.db_path = db_path
        self.run_id = run_id
        self.now = now
        self.durable = durable
        self._queue: queue.Queue[tuple[Signal, Reply] | tuple[Event, None] | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # (source, outcome, reason): received, recorded, duplicate, rejected
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self._window: dict[tuple[str, str], tuple[float, int, int]] = {}  # start, told, folded
        self.failure: str = ""  # the journal's last error, for status
        self._waiting: dict[str, int] = {}  # per source: signals queued, not yet answered

    # --- the sources' side ------------------------------------------------------------------

    def count(self, source: str, outcome: str, reason: str = "") -> None:
        with self._lock:
            self.counts[(source, outcome, reason)] += 1

    def submit(self, signal: Signal, *, wait: bool = False, timeout: float = 5.0,
               limit: int | None = None) -> Reply | None:
        """Queue `signal` for the journal; None when the queue is full, or when its source
        already has `limit` signals waiting (the caller says so: a webhook answers 429, a
        poller waits). With wait, blocks up to `timeout` for room."""
        reply = Reply()
        self.count(signal.source, "received")
        with self._lock:
            waiting = self._waiting.get(signal.source, 0)
            if limit is not None and waiting >= limit:
                self.counts[(signal.source, "rejected", "overloaded")] += 1
                return None
            self._waiting[signal.source] = waiting + 1
        try:
            self._queue.put((signal, reply), block=wait, timeout=timeout if wait else None)
        except queue.Full:
            with self._lock:
                self._waiting[signal.source] -= 1
            self.count(signal.source, "rejected", "overloaded")
            return None
        return reply

    def reject(self, source: str, rejection: Rejection, where: str = "") -> None:
        """Count a refused signal and journal a `signal.rejected` event (rate capped)."""
        self.count(source, "received")
        self.count(source, "rejected", rejection.reason)
        key = (source, rejection.reason)
        clock = time.monotonic()
        with self._lock:
            start, told, folded = self._window.get(key, (clock, 0, 0))
            if clock - start >= 60:
                start, told = clock, 0
            if told >= REJECTION_EVENTS_PER_MINUTE:
                self._window[key] = (start, told, folded + 1)
                return
            self._window[key] = (start, told + 1, 0)
        details: dict[str, object] = {"source": source, "reason": rejection.reason}
        if rejection.signal_id:
            details["signal_id"] = rejection.signal_id
        if where:
            details["where"] = where
        if folded:
            details["not_journaled_before"] = folded
        more = f" (and {folded} more like it not journaled)" if folded else ""
        self.event(Event(ts_event=self.now(), subsystem="feeds", type="signal.rejected", severity="WARN",
                         run_id=self.run_id, symbol=rejection.symbol,
                         message=f"{source}: signal refused, never traded on: {rejection.detail}"
                                 f"{' at ' + where if where else ''}{more}",
                         details=details))

    def event(self, event: Event) -> None:
        """Journal an event in order with the signals (dropped, and counted, if the queue
        stays full for a second: the signals matter more)."""
        try:
            self._queue.put((event, None), timeout=1.0)
        except queue.Full:
            self.count("*", "event_dropped")

    # --- the writer ---------------------------------------------------------------------------

    def start(self) -> Intake:
        ready = threading.Event()
        problem: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, problem), name="feeds-journal", daemon=True)
        self._thread.start()
        ready.wait()
        if problem:
            raise problem[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Journal what is queued, then end the writer."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _run(self, ready: threading.Event, problem: list[BaseException]) -> None:
        from botctl.store.journal import Store

        try:
            store = Store.open(self.db_path, durable=self.durable)
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it
            problem.append(exc)
            ready.set()
            return
        ready.set()
        try:
            while True:
                first = self._queue.get()
                batch = [first]
                while first is not None and len(batch) < BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stopping = any(item is None for item in batch)
                self._write(store, [item for item in batch if item is not None])
                if stopping:
                    return
        finally:
            store.close()

    def _write(self, store, batch) -> None:
        from botctl.errors import StoreError

        signals = [(s, r) for s, r in batch if isinstance(s, Signal)]
        events = [e for e, _ in batch if isinstance(e, Event)]
        with self._lock:
            for s, _ in signals:
                self._waiting[s.source] -= 1
        try:
            with store.transaction():
                answers = store.append_signals([s for s, _ in signals])
                if events:
                    store.insert_many(events)
        except StoreError as exc:
            # Not recorded, so never usable; the sender is told (a webhook answers 503) and
            # a poller or watcher reads it again on its next pass.
            self.failure = str(exc)
            for signal, reply in signals:
                self.count(signal.source, "rejected", "journal_unavailable")
                reply.error = str(exc)
                reply.done.set()
            return
        self.failure = ""
        committed = time.perf_counter()
        for (signal, reply), recorded in zip(signals, answers):
            self.count(signal.source, "recorded" if recorded else "duplicate")
            reply.recorded, reply.committed = recorded, committed
            reply.done.set()
