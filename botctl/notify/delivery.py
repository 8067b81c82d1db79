"""Getting messages out without ever holding up trading.

Each destination has its own bounded `Outbox` and its own worker thread, so a hung Telegram
delays nothing but Telegram. The trading thread only appends to an outbox (a lock and a
deque); Apprise is imported and called only in the workers.

The bound: an outbox holds at most `queue_size` messages. When a message arrives at a full
outbox, the oldest INFO message goes, else the oldest WARN, else the oldest ERROR. CRITICAL
messages are never dropped: an outbox full of them grows past the bound (CRITICAL means a
halt or a breaker, a handful a day). Dropped messages are counted and reported.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from botctl.notify.messages import Message, digest_message
from botctl.records import SEVERITIES
from botctl.spec.notify import Destination, NotifyFile

if TYPE_CHECKING:
    from apprise import NotifyBase

CRITICAL = SEVERITIES.index("CRITICAL")


class Outbox:
    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._items: deque[Message] = deque()
        self._ready = threading.Condition()
        self.closed = False

    def __len__(self) -> int:
        with self._ready:
            return len(self._items)

    def put(self, message: Message) -> Message | None:
        """Queue `message`; returns the message dropped to make room, if one was."""
        dropped = None
        with self._ready:
            if len(self._items) >= self.bound:
                dropped = self._drop_one()
                if dropped is None and message.rank < CRITICAL:
                    # everything queued is CRITICAL: the newcomer is what goes
                    return message
            message.queued_at = time.monotonic()
            self._items.append(message)
            self._ready.notify()
        return dropped

    def _drop_one(self) -> Message | None:
        for rank in range(CRITICAL):
            for i, queued in enumerate(self._items):
                if queued.rank == rank:
                    del self._items[i]
                    return queued
        return None

    def get(self, timeout: float) -> Message | None:
        with self._ready:
            if not self._items and not self.closed:
                self._ready.wait(timeout)
            return self._items.popleft() if self._items else None

    def push_back(self, message: Message) -> None:
        """Put a message being retried back at the head (it keeps its place in line)."""
        with self._ready:
            self._items.appendleft(message)

    def take_all(self) -> list[Message]:
        with self._ready:
            items, self._items = list(self._items), deque()
            return items

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify_all()


class _ThreadLog(logging.Handler):
    """Apprise says why a send failed only in its log: keep each thread's last warning, so a
    failure can be journaled with its reason (masked). Nothing of Apprise's reaches stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: dict[int, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.last[threading.get_ident()] = record.getMessage()
        except Exception:  # a log line must never break a send
            pass


_log = _ThreadLog()
_apprise_ready = threading.Lock()
_set_up = False


def _apprise():
    global _set_up
    with warnings.catch_warnings():  # its imports trip deprecation warnings that are not ours to fix
        warnings.simplefilter("ignore")
        import apprise

    with _apprise_ready:
        if not _set_up:
            logger = logging.getLogger("apprise")
            logger.addHandler(_log)
            logger.propagate = False
            logger.setLevel(logging.WARNING)
            _set_up = True
    return apprise


def apprise_schemes() -> frozenset[str]:
    """Every URL scheme the installed Apprise can send to."""
    apprise = _apprise()
    schemes: set[str] = set()
    with warnings.catch_warnings():  # loading its plugins trips deprecation warnings too
        warnings.simplefilter("ignore")
        services = apprise.Apprise().details().get("schemas", [])
    for service in services:
        for key in ("protocols", "secure_protocols"):
            schemes.update(str(p).lower() for p in service.get(key) or ())
    return frozenset(schemes)


def check_url(url: str) -> str | None:
    """None when Apprise can send to `url`; otherwise why not (the caller masks it)."""
    apprise = _apprise()
    if apprise.Apprise.instantiate(url) is None:
        return f"not a valid {url.split('://', 1)[0]}:// URL for Apprise"
    return None


_plugins: dict[tuple[str, int], NotifyBase] = {}  # (url, thread) -> Apprise plugin: parsed once, not per send


def send(url: str, message: Message, timeout: float) -> str | None:
    """One attempt; None when delivered, else the reason (not yet masked)."""
    apprise = _apprise()
    key = (url, threading.get_ident())
    plugin = _plugins.get(key)
    if plugin is None:
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            return "not a valid Apprise URL"
        _plugins[key] = plugin
    if "cto=" not in url:
        plugin.socket_connect_timeout = min(timeout, 4.0)
    if "rto=" not in url:
        plugin.socket_read_timeout = timeout
    kind = {"INFO": apprise.NotifyType.INFO, "WARN": apprise.NotifyType.WARNING}.get(
        message.severity, apprise.NotifyType.FAILURE)
    _log.last.pop(threading.get_ident(), None)
    try:  # the plugin itself, in this thread (Apprise() would send from a thread pool of its own)
        ok = plugin.notify(body=message.body, title=message.title, notify_type=kind)
    except Exception as exc:  # a plugin's bug is a failed send, not a dead worker
        return f"{type(exc).__name__}: {exc}"
    if ok:
        return None
    return _log.last.pop(threading.get_ident(), None) or "the service refused the message"


Outcome = Callable[[Destination, Message, str | None], None]  # (where, what, None or masked reason)


class Courier(threading.Thread):
    """The worker of one destination: sends in order, retries with backoff, holds messages
    back during quiet hours or over the rate limit and sends them later as one digest."""

    def __init__(self, destination: Destination, spec: NotifyFile, outcome: Outcome,
                 sender: Callable[[str, Message, float], str | None] = send,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        super().__init__(name=f"botctl-notify-{destination.name}", daemon=True)
        self.destination = destination
        self.spec = spec
        self.outbox = Outbox(spec.queue_size)
        self.outcome = outcome
        self.sender = sender
        self.now = now
        self.stopping = threading.Event()
        self.held: list[Message] = []
        self.held_why = ""
        self.sent_at: deque[float] = deque()
        self.busy = False

    # --- the policy ----------------------------------------------------------------------

    def _quiet(self) -> bool:
        quiet = self.spec.quiet_hours
        if quiet is None:
            return False
        local = self.now().astimezone(ZoneInfo(quiet.timezone))
        minute = local.hour * 60 + local.minute
        start = int(quiet.start[:2]) * 60 + int(quiet.start[3:])
        end = int(quiet.end[:2]) * 60 + int(quiet.end[3:])
        return start <= minute < end if start <= end else (minute >= start or minute < end)

    def _quiet_spares(self, message: Message) -> bool:
        quiet = self.spec.quiet_hours
        return quiet is not None and message.rank >= SEVERITIES.index(quiet.except_severity.upper())

    def _over_rate(self) -> bool:
        window = self.spec.rate_limit.per_minutes * 60.0
        now = time.monotonic()
        while self.sent_at and now - self.sent_at[0] > window:
            self.sent_at.popleft()
        return len(self.sent_at) >= self.spec.rate_limit.messages

    def _hold(self, message: Message, why: str) -> None:
        self.held.append(message)
        self.held_why = why
        if len(self.held) > self.spec.queue_size:  # the digest lists titles: keep its size bounded too
            lowest = min(range(len(self.held)), key=lambda i: self.held[i].rank)
            del self.held[lowest]

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stopping.is_set():
            if self.held and not self._quiet() and not self._over_rate():
                digest = digest_message(self.held, self.held_why)
                self.held = []
                self._deliver(digest)
                continue
            message = self.outbox.get(timeout=0.2)
            if message is None:
                if self.outbox.closed:
                    return
                continue
            if message.rank < CRITICAL:
                if self._quiet() and not self._quiet_spares(message):
                    self._hold(message, "quiet hours")
                    continue
                if self._over_rate():
                    self._hold(message, "rate limit")
                    continue
            self._deliver(message)

    def _deliver(self, message: Message) -> None:
        retry = self.spec.retry
        self.busy = True
        try:
            while True:
                message.attempts += 1
                reason = self.sender(self.destination.url, message, self.spec.timeout_seconds)
                if reason is None:
                    self.sent_at.append(time.monotonic())
                    self.outcome(self.destination, message, None)
                    return
                reason = self.destination.mask(reason)[:300]
                last_try = message.attempts >= retry.attempts
                if message.rank < CRITICAL and last_try:
                    self.outcome(self.destination, message, reason)
                    return
                if message.attempts == retry.attempts:  # CRITICAL: said once, then tried until delivered
                    self.outcome(self.destination, message, f"{reason}; still trying (CRITICAL)")
                wait = min(retry.max_seconds, retry.first_seconds * 2 ** (message.attempts - 1))
                if self.stopping.wait(wait):
                    self.outbox.push_back(message)
                    return
        finally:
            self.busy = False

    def idle(self) -> bool:
        return not self.busy and len(self.outbox) == 0

    def halt(self) -> None:
        """Stop after the send in flight, if any (a retry's wait ends at once)."""
        self.stopping.set()
        self.outbox.close()

    def leftovers(self, deadline: float) -> list[Message]:
        """After `halt`: wait for the worker until `deadline` (monotonic); what was not sent."""
        self.join(timeout=max(0.0, deadline - time.monotonic()))
        return self.outbox.take_all() + self.held

    def stop(self, flush_seconds: float) -> list[Message]:
        """Let queued messages go for up to `flush_seconds`, then stop; returns those left."""
        deadline = time.monotonic() + flush_seconds
        while time.monotonic() < deadline and not self.idle():
            time.sleep(0.02)
        self.halt()
        return self.leftovers(time.monotonic() + self.spec.timeout_seconds + 1.0)
