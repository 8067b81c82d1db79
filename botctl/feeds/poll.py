"""Polling a JSON signal API (an `http_poll` source) and watching signal files (`file`).

A poll is one GET with the auth header (its value from the environment, never logged), retried
with doubling backoff on 429, 5xx and no answer (a Retry-After header wins, capped). Each
item of the answer is mapped to the signal fields, checked and journaled. A source with no
good answer for `stale_after_minutes` is stale (`Poller.judge`, asked by the poller after a
failed poll and by the trading loop through `FeedRunner.stale_since`): a `feed.stale` WARN
event, status shows it, and its scores count as missing (feeds.plan_scores.LiveScores: no new
entries, no score-based exits) until an answer comes again (`feed.fresh`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botctl.feeds.checks import Rejection, check_signal, payload_hash
from botctl.feeds.files import FileTail
from botctl.feeds.intake import Intake
from botctl.records import Event
from botctl.spec.feeds import HttpPollSource


def dig(value: Any, dotted: str) -> Any:
    """`value["a"]["b"]` for "a.b" ("" is the value itself); None where a step is missing."""
    for part in dotted.split(".") if dotted else ():
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def map_item(item: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """The signal fields of one answer item: declared ones from their keys, the rest as named."""
    out = dict(item)
    for field, key in fields.items():
        out[field] = dig(item, key)
    return out


class _Watched:
    """What pollers and watchers share: a thread that runs `once` every `interval`."""

    def __init__(self, name: str, interval: float, intake: Intake, now: Callable[[], datetime], *,
                 kinds: Mapping[str, float | None], known_symbols: Collection[str] | None,
                 max_future: timedelta) -> None:
        self.name, self.interval, self.intake, self.now = name, interval, intake, now
        self.kinds, self.known_symbols, self.max_future = kinds, known_symbols, max_future
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_signal_at: datetime | None = None

    def start(self) -> _Watched:
        self._thread = threading.Thread(target=self._loop, name=f"feeds-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.once()
            except Exception as exc:  # noqa: BLE001 - a source's bug must not end the others
                self.intake.event(Event(ts_event=self.now(), subsystem="feeds", type="feed.failed", severity="WARN",
                                        run_id=self.intake.run_id, message=f"{self.name}: {type(exc).__name__}",
                                        details={"source": self.name}))
            self._stop.wait(self.interval)

    def once(self) -> None:
        raise NotImplementedError

    def take(self, raw: Any, digest_of: bytes, where: str = "", default_kind: str | None = None) -> Any:
        """Check one raw signal and queue it for the journal (waiting for room: a poller can
        wait); its Reply, or None when it was refused or there was no room."""
        if not isinstance(raw, dict):
            self.intake.reject(self.name, Rejection("malformed", "an item is not a JSON object"), where)
            return None
        checked = check_signal(raw, source=self.name, received=self.now(), kinds=self.kinds,
                               known_symbols=self.known_symbols, max_future=self.max_future,
                               digest=payload_hash(digest_of), default_kind=default_kind)
        if isinstance(checked, Rejection):
            self.intake.reject(self.name, checked, where)
            return None
        reply = self.intake.submit(checked, wait=True, timeout=30)
        if reply is not None:
            self.last_signal_at = checked.ts_received
        return reply


class Poller(_Watched):
    def __init__(self, name: str, spec: HttpPollSource, header_value: str | None, intake: Intake,
                 now: Callable[[], datetime], *, sleep: Callable[[float], bool] | None = None, **rules: Any) -> None:
        super().__init__(name, spec.interval_seconds, intake, now, **rules)
        self.spec = spec
        self._headers = {"Accept": "application/json"}
        if spec.auth is not None and header_value:
            self._headers[spec.auth.header] = spec.auth.prefix + header_value
        self.started = now()
        self.last_ok: datetime | None = None
        self.last_error = ""
        self.stale = False  # a feed.stale is the journal's last word on it (until its feed.fresh)
        self.stale_since: datetime | None = None  # from when its scores count as missing
        self._state = threading.Lock()  # the trading loop judges it too (FeedRunner.stale_since)
        self._sleep = sleep or (lambda seconds: self._stop.wait(seconds))

    def restore_stale(self, since: datetime) -> None:
        """The journal says this source went stale at `since` and never recovered (a restart):
        it stays stale until its first good answer, which records the `feed.fresh`."""
        with self._state:
            self.stale, self.stale_since = True, since

    def is_stale(self, now: datetime) -> bool:
        if self.stale:
            return True
        since = self.last_ok or self.started
        return now - since > timedelta(minutes=self.spec.stale_after_minutes)

    def judge(self, now: datetime, reason: str = "") -> datetime | None:
        """When this source went stale if it is stale at `now` (the first time, a `feed.stale`
        WARN is journaled), else None."""
        with self._state:
            if self.stale:
                return self.stale_since
            since = self.last_ok or self.started
            limit = timedelta(minutes=self.spec.stale_after_minutes)
            if now - since <= limit:
                return None
            self.stale, self.stale_since = True, since + limit
        why = reason or self.last_error or "no poll has answered"
        self.intake.event(Event(ts_event=now, subsystem="feeds", type="feed.stale", severity="WARN",
                                run_id=self.intake.run_id,
                                message=f"{self.name}: no good answer since {since.isoformat()} "
                                        f"(over {self.spec.stale_after_minutes:g} min): no new entries from it",
                                details={"source": self.name, "since": since.isoformat(), "reason": why}))
        return self.stale_since

    def fetch(self) -> Any:
        """The decoded answer, or raises _PollFailed with a reason that holds no secret."""
        import httpx

        spec = self.spec
        delay = spec.backoff_seconds
        reason = ""
        for attempt in range(spec.retries + 1):
            if attempt:
                if self._sleep(min(delay, spec.max_backoff_seconds)):
                    raise _PollFailed("stopped")
                delay *= 2
            try:
                response = httpx.get(spec.url, headers=self._headers, timeout=spec.timeout_seconds,
                                     follow_redirects=False)
            except httpx.HTTPError as exc:
                reason = f"no answer ({type(exc).__name__})"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                reason = f"HTTP {response.status_code}"
                after = response.headers.get("retry-after", "")
                if after.isdigit():
                    delay = max(delay, float(after))
                continue
            if response.status_code != 200:
                raise _PollFailed(f"HTTP {response.status_code} (not retried)")
            try:
                return response.json()
            except ValueError:
                raise _PollFailed("the answer is not JSON") from None
        raise _PollFailed(f"{reason} after {spec.retries + 1} tries")

    def once(self) -> None:
        try:
            answer = self.fetch()
            items = dig(answer, self.spec.items)
            if not isinstance(items, list):
                raise _PollFailed(f"no list at `{self.spec.items or '(the answer)'}` in the answer")
        except _PollFailed as exc:
            self._failed(str(exc))
            return
        import json

        for i, item in enumerate(items):
            mapped = map_item(item, self.spec.fields) if isinstance(item, dict) else item
            raw = json.dumps(item, sort_keys=True, default=str).encode()
            self.take(mapped, raw, f"item {i}", self.spec.kind)
        with self._state:
            self.last_ok = self.now()
            self.last_error = ""
            recovered, self.stale, self.stale_since = self.stale, False, None
        if recovered:
            self.intake.event(Event(ts_event=self.last_ok, subsystem="feeds", type="feed.fresh", severity="INFO",
                                    run_id=self.intake.run_id, message=f"{self.name}: answering again; entries from it resume",
                                    details={"source": self.name}))

    def _failed(self, reason: str) -> None:
        now = self.now()
        first = not self.last_error
        self.last_error = reason
        if first:
            self.intake.event(Event(ts_event=now, subsystem="feeds", type="feed.failed", severity="WARN",
                                    run_id=self.intake.run_id, message=f"{self.name}: poll failed: {reason}",
                                    details={"source": self.name, "reason": reason}))
        self.judge(now, reason)


class _PollFailed(Exception):
    pass


class FileWatcher(_Watched):
    def __init__(self, name: str, path: Path, interval: float, intake: Intake, now: Callable[[], datetime], *,
                 default_kind: str | None = None, **rules: Any) -> None:
        super().__init__(name, interval, intake, now, **rules)
        self.tail = FileTail(path)
        self.default_kind = default_kind
        self.last_error = ""

    def once(self) -> None:
        from botctl.errors import DataError

        try:
            rows = list(self.tail.poll())
        except (DataError, OSError) as exc:
            if not self.last_error:
                self.intake.event(Event(ts_event=self.now(), subsystem="feeds", type="feed.failed", severity="WARN",
                                        run_id=self.intake.run_id, message=f"{self.name}: {exc}",
                                        details={"source": self.name}))
            self.last_error = str(exc)
            return
        self.last_error = ""
        replies = []
        for row in rows:
            if row.values is None:
                self.intake.reject(self.name, Rejection("malformed", row.problem), row.where)
            else:
                replies.append(self.take(row.values, row.raw, row.where, self.default_kind))
        # A row the journal did not take is read again: from the start of the files on the
        # next pass (the journal drops the ones it already has), so none is skipped.
        if any(r is None or not r.wait(30) or r.recorded is None for r in replies):
            self.tail = FileTail(self.tail.path)
