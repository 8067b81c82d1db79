"""A loopback fake of the Alpaca REST API (trading + stock market data), for tests that point the
REAL alpaca-py 0.44 clients at it.

It speaks the subset of the API a stock bot uses, with the JSON shapes alpaca-py parses (see
/work/shared/reference/alpaca.md): money and quantities as strings, UUID ids, non-null
created_at/updated_at/submitted_at, lowercase enums, bars with `n` and `vw`, market-data
pagination with `next_page_token`. State (account cash, orders, positions, bars) is in memory
behind one lock; the server is a stdlib ThreadingHTTPServer on 127.0.0.1 (ephemeral port) served
from a daemon thread, so it works for in-process clients and for subprocesses alike.

    from fakes.fake_alpaca import FakeAlpaca   # tests/ is on sys.path (tests/conftest.py, prepend mode)

    with FakeAlpaca(bars=frame, now=lambda: clock.now) as fake:
        tc = TradingClient("test-key", "test-secret", paper=True, url_override=fake.url)
        dc = StockHistoricalDataClient("test-key", "test-secret", url_override=fake.url)
        tc._retry_wait = 0                              # SDK retries (429/504) become instant
        fake.inject("504_after_accept")                 # next POST /v2/orders
        ...
        assert fake.positions() == {"SPY": 10.0}

Public API
----------
FakeAlpaca(*, api_key="test-key", secret_key="test-secret", cash=100_000.0, multiplier=2,
           bars=None, now=None, fill_model="last")
    bars: a long polars frame with columns symbol, date, open, high, low, close, adj_close
          (optional; defaults to close), volume - like botctl/data/etf_daily.parquet.
    now:  the fake's clock, a callable returning a datetime (naive = UTC). Default: real UTC now.
    fill_model: "last" (below) or "open": the simulator's `fill: open`, for holding the paper
          loop equal to a backtest. Until a session's close the fake knows only the previous
          close (its latest trade, quote and marks), and market orders fill at the session's
          adjusted open; after the close it knows that close. An order placed while the
          market is closed fills at the next session's open, answered as filled at the first
          request after that open (asked or not during the session).
.url                      "http://127.0.0.1:PORT" (valid once started; no /v2, no trailing slash)
.start() / .stop()        also `with FakeAlpaca(...) as fake:`; stop() closes the listening socket
                          and every open connection, and wakes up delayed ("timeout") answers.
.cash: float              the account's cash (writable)
.multiplier: int          margin multiplier (writable)
.market_open: bool|None   force /v2/clock is_open and order filling; None = computed from the
                          clock (XNYS sessions from exchange_calendars, half days included)
.max_page_size: int       cap on bars per page (default 10000, the real API's maximum); lower it
                          to force the SDK to paginate
.requests                 list of (method, path, query: dict[str, str], body: parsed JSON | None),
                          one per request received, faulted ones included
.orders() -> list[dict]   copies of every order (the JSON the API returns), oldest first
.positions() -> dict[str, float]
.set_price(symbol, price) override the fill/mark price (None removes the override)
.set_position(symbol, qty, avg_entry_price=None)   seed a position (cash is not touched)
.fill_pending() -> int    fill every open order that can fill (market; marketable limit) now,
                          whatever the market hours; returns how many filled
.inject(kind, *, method=None, path=None, count=1, **params)
                          fault rule for the next `count` requests (None = until cleared) whose
                          method matches (`"*"` = any) and whose path starts with `path`
.clear_faults()

Prices: set_price() wins; otherwise the adj_close of the symbol's latest bar dated <= today (the
fake clock's New York date). The fake quotes, fills and marks at adjusted prices; bars are
adjusted on request (adjustment != raw: open/high/low scaled by adj_close/close, close =
adj_close, volume as traded). n and vw of bars are synthetic. Bars dated after today are never
served.

Orders: market orders (qty, fractional qty, or notional) and limit orders. While the market is
open they fill at once at the current price (limits only when marketable); otherwise they stay
"accepted" and fill on the first request made while the market is open (or on fill_pending()).
Buying power = max(0, multiplier * equity - long market value - open buy orders' value);
buys above it get 403/40310000; selling more than held (minus open sells) gets 403
"insufficient qty available"; no shorting, no expiry of day orders, no replace (PATCH -> 422).

Fault kinds (defaults: method POST, path /v2/orders; for stale_data GET /v2/stocks/bars). One
rule is consumed per matching request (the oldest rule first):
  "429"                  429 {"code":42910000,...} + X-RateLimit-Limit/-Remaining/-Reset headers
  "500", "503"           that status with a JSON {"code","message"} body; nothing is processed
  "504_after_accept"     the request IS processed (e.g. the order is created and filled), then
                         504 is answered; alpaca-py retries the POST and gets 422/40010001
  "timeout"              answer nothing for `seconds` (default 5), then 504; nothing processed
  "timeout_after_accept" process the request, wait `seconds`, then send the real answer
  "drop"                 close the connection without answering; nothing processed
  "partial_fill"         the order fills `fraction` (default 0.5) of its quantity when it fills
                         and stays partially_filled (open, cancelable)
  "reject"               403 {"code":40310000,"message": `message` or "insufficient buying power"}
  "auth"                 401 {"code":40110000,"message":"request is not authorized"}
  "forbidden"            403 {"message":"forbidden."} (no code)
  "stale_data"           data endpoints serve nothing dated after today - `days` (default 10)

Auth: every request must carry APCA-API-KEY-ID and APCA-API-SECRET-KEY (or the data client's
Basic auth): wrong -> 401/40110000, missing -> 403 {"message":"forbidden."}.
"""

from __future__ import annotations

import base64
import bisect
import json
import math
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import date, datetime, time as dtime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

__all__ = ["FakeAlpaca", "FAULT_KINDS"]

UTC = timezone.utc
NY = ZoneInfo("America/New_York")

FAULT_KINDS = frozenset({
    "429", "500", "503", "504_after_accept", "timeout", "timeout_after_accept", "drop",
    "partial_fill", "reject", "auth", "forbidden", "stale_data",
})

OPEN_STATUSES = frozenset({
    "new", "partially_filled", "accepted", "pending_new", "accepted_for_bidding", "pending_cancel",
    "pending_replace", "held", "pending_review", "calculated", "stopped", "suspended",
})
_FILLABLE = ("accepted", "new", "pending_new")

_FORBIDDEN = {"message": "forbidden."}
_UNAUTHORIZED = {"code": 40110000, "message": "request is not authorized"}
_ORDER_NOT_FOUND = {"code": 40410000, "message": "order not found"}

# --- the XNYS calendar (shared by every instance; built once, lazily) --------------------------

_CAL_LOCK = threading.Lock()
_CAL: dict[str, Any] = {}


def _calendar() -> dict[str, Any]:
    with _CAL_LOCK:
        if not _CAL:
            import exchange_calendars

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cal = exchange_calendars.get_calendar("XNYS", start="1990-01-01")
                sched = cal.schedule
                opens = sched["open"].dt.to_pydatetime()
                closes = sched["close"].dt.to_pydatetime()
                days = [d.date() for d in sched.index]
            _CAL["days"] = days
            _CAL["sessions"] = {d: (o.astimezone(UTC), c.astimezone(UTC)) for d, o, c in zip(days, opens, closes)}
        return _CAL


def _session(day: date) -> tuple[datetime, datetime] | None:
    """(open, close) in UTC of the XNYS session on `day`, None if the exchange is closed. Outside
    the calendar's range: weekdays 09:30-16:00 New York."""
    cal = _calendar()
    if cal["days"][0] <= day <= cal["days"][-1]:
        return cal["sessions"].get(day)
    if day.weekday() >= 5:
        return None
    return (datetime.combine(day, dtime(9, 30), NY).astimezone(UTC),
            datetime.combine(day, dtime(16, 0), NY).astimezone(UTC))


def _sessions_between(start: date, end: date) -> list[tuple[date, datetime, datetime]]:
    cal = _calendar()
    days = cal["days"]
    lo, hi = bisect.bisect_left(days, start), bisect.bisect_right(days, end)
    return [(d, *cal["sessions"][d]) for d in days[lo:hi]]


# --- small helpers -----------------------------------------------------------------------------


def _s(x: float) -> str:
    """A number as the API writes it: a string, up to 9 decimals, no trailing zeros."""
    text = f"{float(x):.9f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(value)
    return out


def _parse_time(text: str | None, *, end: bool = False) -> datetime | None:
    """RFC 3339 or YYYY-MM-DD (a date means its start, or with end=True its whole day), as UTC."""
    if not text:
        return None
    if len(text) == 10:
        day = date.fromisoformat(text)
        if end:
            day += timedelta(days=1)
            return datetime.combine(day, dtime(0), UTC) - timedelta(microseconds=1)
        return datetime.combine(day, dtime(0), UTC)
    out = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    return out.replace(tzinfo=UTC) if out.tzinfo is None else out.astimezone(UTC)


def _bool(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1", "yes")


def _day_start(day: date) -> datetime:
    """A daily bar's timestamp: midnight New York, in UTC (what Alpaca sends)."""
    return datetime.combine(day, dtime(0), NY).astimezone(UTC)


class _HTTPError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status, body)
        self.status, self.body = status, body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeAlpaca


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API; every answer sets Content-Length
    server_version = "FakeAlpaca/1.0"
    # Headers and body leave in two writes: with Nagle's algorithm on, the body waits for the
    # client's delayed ACK, 40 ms a request on loopback.
    disable_nagle_algorithm = True
    timeout = 120

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.fake._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _any(self) -> None:
        self.server.fake._handle(self)

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _any


# --- the fake --------------------------------------------------------------------------------


class FakeAlpaca:
    """A loopback Alpaca REST server with in-memory state and fault injection (module docstring)."""

    def __init__(self, *, api_key: str = "test-key", secret_key: str = "test-secret", cash: float = 100_000.0,
                 multiplier: int = 2, bars: Any = None, now: Callable[[], datetime] | None = None,
                 fill_model: str = "last") -> None:
        if fill_model not in ("last", "open"):
            raise ValueError(f"fill_model must be 'last' or 'open', not {fill_model!r}")
        self.fill_model = fill_model
        self.api_key, self.secret_key = api_key, secret_key
        self.cash = float(cash)
        self.multiplier = multiplier
        self.market_open: bool | None = None
        self.max_page_size = 10_000
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.url = ""
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._orders: dict[str, dict] = {}  # id -> order JSON, in creation order
        self._meta: dict[str, dict] = {}  # id -> {"seq", "submitted", "fraction"}
        self._by_cid: dict[str, str] = {}
        self._positions: dict[str, list[float]] = {}  # symbol -> [qty, avg_entry_price]
        self._prices: dict[str, float] = {}
        self._faults: list[dict] = []
        self._seq = 0
        self._account_id = str(uuid.uuid4())
        self._created = datetime(2024, 1, 2, 14, 0, tzinfo=UTC)
        self._bar_days: dict[str, list[date]] = {}
        self._bar_rows: dict[str, list[tuple]] = {}  # symbol -> [(date, o, h, l, c, adj, v)]
        if bars is not None:
            self._load_bars(bars)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeAlpaca:
        if self._server is not None:
            return self
        _calendar()  # build it before the first request, not inside one
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FakeAlpaca{self.url[16:]}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeAlpaca:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # --- state for tests ------------------------------------------------------------------------

    def orders(self) -> list[dict]:
        with self._lock:
            return [dict(o) for o in self._orders.values()]

    def positions(self) -> dict[str, float]:
        with self._lock:
            return {s: p[0] for s, p in self._positions.items()}

    def set_price(self, symbol: str, price: float | None) -> None:
        with self._lock:
            if price is None:
                self._prices.pop(symbol.upper(), None)
            else:
                self._prices[symbol.upper()] = float(price)

    def set_position(self, symbol: str, qty: float, avg_entry_price: float | None = None) -> None:
        with self._lock:
            symbol = symbol.upper()
            if not qty:
                self._positions.pop(symbol, None)
                return
            price = avg_entry_price if avg_entry_price is not None else self._price(symbol, self._today())
            if price is None:
                raise ValueError(f"no price for {symbol}: pass avg_entry_price or set_price() first")
            self._positions[symbol] = [float(qty), float(price)]

    def fill_pending(self) -> int:
        with self._lock:
            return self._fill_open_orders(self._utcnow())

    def inject(self, kind: str, *, method: str | None = None, path: str | None = None, count: int | None = 1,
               **params: Any) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(FAULT_KINDS)}")
        if count is not None and count < 1:
            raise ValueError("count must be >= 1 (or None for 'until clear_faults()')")
        default_method, default_path = ("GET", "/v2/stocks/bars") if kind == "stale_data" else ("POST", "/v2/orders")
        with self._lock:
            self._faults.append({"kind": kind, "method": (method or default_method).upper(),
                                 "path": path or default_path, "left": count, "params": params})

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # --- clock, prices ----------------------------------------------------------------------------

    def _utcnow(self) -> datetime:
        now = self._now()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    def _today(self, now: datetime | None = None) -> date:
        return (now or self._utcnow()).astimezone(NY).date()

    def _is_open(self, now: datetime) -> bool:
        if self.market_open is not None:
            return bool(self.market_open)
        session = _session(self._today(now))
        return session is not None and session[0] <= now < session[1]

    def _load_bars(self, frame: Any) -> None:
        columns = set(frame.columns)
        adj = "adj_close" if "adj_close" in columns else "close"
        rows = frame.select(["symbol", "date", "open", "high", "low", "close", adj, "volume"]).sort(["symbol", "date"])
        for sym, day, o, h, lo, c, a, v in rows.iter_rows():
            if isinstance(day, datetime):
                day = day.date()
            sym = str(sym).upper()
            self._bar_days.setdefault(sym, []).append(day)
            self._bar_rows.setdefault(sym, []).append((day, o, h, lo, c, a, v))

    def _rows_upto(self, symbol: str, upto: date) -> list[tuple]:
        days = self._bar_days.get(symbol)
        if not days:
            return []
        return self._bar_rows[symbol][: bisect.bisect_right(days, upto)]

    def _last_row(self, symbol: str, upto: date, back: int = 0) -> tuple | None:
        days = self._bar_days.get(symbol)
        if not days:
            return None
        i = bisect.bisect_right(days, upto) - 1 - back
        return self._bar_rows[symbol][i] if i >= 0 else None

    def _price(self, symbol: str, upto: date) -> float | None:
        if symbol in self._prices:
            return self._prices[symbol]
        if self.fill_model == "open" and upto == self._today():
            session = _session(upto)
            if session is not None and self._utcnow() < session[1]:  # today's close is not known yet
                upto -= timedelta(days=1)
        row = self._last_row(symbol, upto)
        return float(row[5]) if row else None

    def _held_price(self, symbol: str, today: date) -> float | None:
        """The current price; for a held symbol without one, its average entry price."""
        price = self._price(symbol, today)
        if price is None and symbol in self._positions:
            return self._positions[symbol][1]
        return price

    def _fill_price(self, symbol: str, today: date) -> float | None:
        """What a market order fills at: the current price, or the session's adjusted open
        under fill_model "open"."""
        if self.fill_model == "open" and symbol not in self._prices:
            row = self._last_row(symbol, today)
            if row is not None and row[0] == today:
                day, o, _, _, c, adj, _ = row
                return float(o) * (adj / c if c else 1.0)
        return self._held_price(symbol, today)

    def _mark(self, symbol: str, today: date) -> float:
        return self._held_price(symbol, today)  # type: ignore[return-value]  # held: never None

    # --- HTTP -----------------------------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        path = "/" + split.path.lstrip("/")
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        method = h.command.upper()
        with self._lock:
            self.requests.append((method, path, query, body))
            rule = self._take_fault(method, path)
        kind = rule["kind"] if rule else None
        params = rule["params"] if rule else {}

        if kind == "drop":
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if kind == "timeout":
            self._stopping.wait(float(params.get("seconds", 5)))
            return self._send(h, 504, {"message": "gateway timeout"})
        early = {
            "429": (429, {"code": 42910000, "message": "rate limit exceeded"},
                    {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0",
                     "X-RateLimit-Reset": str(int(time.time()) + 60)}),
            "500": (500, {"code": 50010000, "message": "internal server error"}, None),
            "503": (503, {"code": 50310000, "message": "service unavailable"}, None),
            "reject": (403, {"code": 40310000, "message": params.get("message", "insufficient buying power")}, None),
            "auth": (401, dict(_UNAUTHORIZED), None),
            "forbidden": (403, dict(_FORBIDDEN), None),
        }.get(kind or "")
        if early:
            return self._send(h, *early)

        try:
            status, payload = self._dispatch(method, path, query, body, h.headers, rule)
        except _HTTPError as err:
            status, payload = err.status, err.body
        except Exception as err:  # a bug in the fake: answer it rather than hang the client
            status, payload = 500, {"code": 50010000, "message": f"FakeAlpaca error: {err!r}"}

        if kind == "504_after_accept":
            return self._send(h, 504, {"message": "gateway timeout"})
        if kind == "timeout_after_accept":
            self._stopping.wait(float(params.get("seconds", 5)))
        self._send(h, status, payload)

    def _take_fault(self, method: str, path: str) -> dict | None:
        for rule in self._faults:
            if rule["method"] in ("*", method) and path.startswith(rule["path"]):
                if rule["left"] is not None:
                    rule["left"] -= 1
                    if rule["left"] <= 0:
                        self._faults.remove(rule)
                return rule
        return None

    def _send(self, h: _Handler, status: int, payload: Any, headers: dict | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            h.send_response(status)
            if data:
                h.send_header("Content-Type", "application/json; charset=UTF-8")
            h.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                h.send_header(key, value)
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:  # the client gave up (e.g. its read timeout fired)
            h.close_connection = True

    def _auth(self, headers: Any) -> None:
        key, secret = headers.get("APCA-API-KEY-ID"), headers.get("APCA-API-SECRET-KEY")
        auth = headers.get("Authorization") or ""
        if key is None and secret is None and auth.startswith("Basic "):
            try:
                key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                raise _HTTPError(401, dict(_UNAUTHORIZED)) from None
        if key is None or secret is None:
            if auth.startswith("Bearer "):
                raise _HTTPError(401, dict(_UNAUTHORIZED))
            raise _HTTPError(403, dict(_FORBIDDEN))
        if key != self.api_key or secret != self.secret_key:
            raise _HTTPError(401, dict(_UNAUTHORIZED))

    def _dispatch(self, method: str, path: str, query: dict, body: Any, headers: Any,
                  rule: dict | None) -> tuple[int, Any]:
        self._auth(headers)
        kind = rule["kind"] if rule else None
        params = rule["params"] if rule else {}
        with self._lock:
            now = self._utcnow()
            if self._is_open(now):
                self._fill_open_orders(now)
            elif self.fill_model == "open" and self.market_open is None:
                self._fill_queued_orders(now)
            today = self._today(now)
            asof = today - timedelta(days=int(params.get("days", 10))) if kind == "stale_data" else today
            parts = path.rstrip("/").split("/")[1:]  # ["v2", ...]
            route = (method, "/".join(parts[:2]))
            if route == ("GET", "v2/account"):
                return 200, self._account_json(today)
            if route == ("GET", "v2/clock"):
                return 200, self._clock_json(now)
            if route == ("GET", "v2/calendar"):
                return 200, self._calendar_json(query)
            if route == ("GET", "v2/orders:by_client_order_id"):
                oid = self._by_cid.get(query.get("client_order_id", ""))
                if oid is None:
                    raise _HTTPError(404, dict(_ORDER_NOT_FOUND))
                return 200, dict(self._orders[oid])
            if parts[:2] == ["v2", "orders"]:
                return self._orders_route(method, parts[2:], query, body, now, float(params.get("fraction", 0.5)) if kind == "partial_fill" else None)
            if parts[:2] == ["v2", "positions"]:
                return self._positions_route(method, parts[2:], query, now)
            if method == "GET" and parts[:2] == ["v2", "stocks"]:
                return self._data_route("/".join(parts[2:]), query, now, asof)
        raise _HTTPError(404, {"code": 40410000, "message": f"not found: {method} {path}"})

    # --- trading: account, clock, calendar ---------------------------------------------------------

    def _exposure(self, today: date) -> tuple[float, float]:
        long_value = sum(p[0] * self._mark(s, today) for s, p in self._positions.items())
        return self.cash + long_value, long_value

    def _reserved(self, today: date) -> float:
        total = 0.0
        for oid, order in self._orders.items():
            if order["side"] != "buy" or order["status"] not in OPEN_STATUSES:
                continue
            if order["notional"] is not None:
                total += float(order["notional"]) - float(order["filled_qty"]) * float(order["filled_avg_price"] or 0)
            else:
                price = float(order["limit_price"]) if order["limit_price"] else self._price(order["symbol"], today) or 0.0
                total += (float(order["qty"]) - float(order["filled_qty"])) * price
        return max(total, 0.0)

    def _buying_power(self, today: date) -> float:
        equity, long_value = self._exposure(today)
        return max(0.0, self.multiplier * equity - long_value - self._reserved(today))

    def _account_json(self, today: date) -> dict:
        equity, long_value = self._exposure(today)
        bp = _s(self._buying_power(today))
        return {
            "id": self._account_id, "account_number": "PA0FAKEALPACA", "status": "ACTIVE", "crypto_status": "INACTIVE",
            "currency": "USD", "buying_power": bp, "regt_buying_power": bp,
            "non_marginable_buying_power": _s(max(self.cash, 0.0)), "options_buying_power": "0",
            "cash": _s(self.cash), "accrued_fees": "0", "pending_transfer_in": "0", "pending_transfer_out": "0",
            "portfolio_value": _s(equity), "equity": _s(equity), "last_equity": _s(equity),
            "long_market_value": _s(long_value), "short_market_value": "0",
            "initial_margin": _s(0.5 * long_value), "maintenance_margin": _s(0.3 * long_value),
            "last_maintenance_margin": _s(0.3 * long_value), "sma": "0", "multiplier": str(self.multiplier),
            "trading_blocked": False, "transfers_blocked": False, "account_blocked": False,
            "trade_suspended_by_user": False, "shorting_enabled": False, "created_at": _iso(self._created),
            "balance_asof": str(today), "options_approved_level": 0, "options_trading_level": 0,
        }

    def _clock_json(self, now: datetime) -> dict:
        today = self._today(now)
        next_open = next_close = None
        for i in range(0, 30):
            session = _session(today + timedelta(days=i))
            if session is None:
                continue
            if next_open is None and session[0] > now:
                next_open = session[0]
            if next_close is None and session[1] > now:
                next_close = session[1]
            if next_open and next_close:
                break
        return {"timestamp": now.astimezone(NY).isoformat(), "is_open": self._is_open(now),
                "next_open": next_open.astimezone(NY).isoformat(), "next_close": next_close.astimezone(NY).isoformat()}

    def _calendar_json(self, query: dict) -> list[dict]:
        try:
            start = date.fromisoformat(query["start"][:10]) if query.get("start") else date(1970, 1, 1)
            end = date.fromisoformat(query["end"][:10]) if query.get("end") else date(2100, 1, 1)
        except ValueError:
            raise _HTTPError(422, {"code": 42210000, "message": "invalid start or end"}) from None
        sessions = _sessions_between(start, end)
        out = []
        for i, (day, open_, close) in enumerate(sessions):
            settle = sessions[i + 1][0] if i + 1 < len(sessions) else day + timedelta(days=1)
            out.append({"date": str(day), "open": open_.astimezone(NY).strftime("%H:%M"),
                        "close": close.astimezone(NY).strftime("%H:%M"), "session_open": "0400",
                        "session_close": "2000", "settlement_date": str(settle)})
        return out

    # --- trading: orders ------------------------------------------------------------------------

    def _orders_route(self, method: str, rest: list[str], query: dict, body: Any, now: datetime,
                      fraction: Any) -> tuple[int, Any]:
        if not rest:
            if method == "POST":
                return 200, self._submit(body, now, fraction)
            if method == "GET":
                return 200, self._list_orders(query)
            if method == "DELETE":
                out = []
                for oid, order in self._orders.items():
                    if order["status"] in OPEN_STATUSES:
                        self._cancel(order, now)
                        out.append({"id": oid, "status": 200, "body": dict(order)})
                return 207, out
        elif len(rest) == 1:
            order = self._orders.get(rest[0])
            if method in ("GET", "DELETE", "PATCH") and order is None:
                raise _HTTPError(404, dict(_ORDER_NOT_FOUND))
            if method == "GET":
                return 200, dict(order)
            if method == "DELETE":
                if order["status"] not in OPEN_STATUSES:
                    raise _HTTPError(422, {"code": 42210000, "message": f'order is already in "{order["status"]}" state'})
                self._cancel(order, now)
                return 204, None
            if method == "PATCH":
                raise _HTTPError(422, {"code": 42210000, "message": "FakeAlpaca does not replace orders"})
        raise _HTTPError(404, {"code": 40410000, "message": "not found"})

    def _submit(self, body: Any, now: datetime, fraction: Any = None) -> dict:
        def bad(message: str, status: int = 422) -> _HTTPError:
            return _HTTPError(status, {"code": 42210000 if status == 422 else 40010000, "message": message})

        if not isinstance(body, dict):
            raise bad("invalid request body", 400)
        symbol = str(body.get("symbol") or "").upper()
        side, otype, tif = body.get("side"), body.get("type") or body.get("order_type"), body.get("time_in_force")
        if not symbol:
            raise bad("symbol is required")
        if side not in ("buy", "sell"):
            raise bad(f"invalid side: {side}")
        if otype not in ("market", "limit"):
            raise bad(f"order type {otype!r} is not supported by FakeAlpaca (market, limit)")
        if tif not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
            raise bad(f"invalid time_in_force: {tif}")
        try:
            qty, notional, limit = _num(body.get("qty")), _num(body.get("notional")), _num(body.get("limit_price"))
        except (TypeError, ValueError):
            raise bad("invalid qty, notional or limit_price") from None
        if (qty is None) == (notional is None):
            raise bad("qty or notional is required, not both", 400 if qty is not None else 422)
        if (qty is not None and qty <= 0) or (notional is not None and notional <= 0):
            raise bad("qty and notional must be > 0")
        if otype == "limit" and (limit is None or limit <= 0):
            raise bad("limit orders require limit_price")
        if (notional is not None or (qty is not None and qty != int(qty))) and (tif != "day" or otype != "market"):
            raise bad("fractional orders must be market DAY orders")
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if len(cid) > 128:
            raise bad("client_order_id must be no more than 128 characters")
        if cid in self._by_cid:
            raise _HTTPError(422, {"code": 40010001, "message": "client_order_id must be unique"})
        today = self._today(now)
        price = self._fill_price(symbol, today)
        if price is None:
            raise bad(f'asset "{symbol}" not found')
        est_qty = qty if qty is not None else notional / price
        if side == "buy":
            cost = notional if notional is not None else qty * (limit or price)
            bp = self._buying_power(today)
            if cost > bp + 1e-6:
                raise _HTTPError(403, {"buying_power": _s(bp), "code": 40310000, "cost_basis": _s(cost),
                                       "message": "insufficient buying power"})
        else:
            held = self._positions.get(symbol, [0.0])[0]
            for_orders = self._held_for_orders(symbol)
            available = max(held - for_orders, 0.0)
            if est_qty > available + 1e-9:
                raise _HTTPError(403, {"available": _s(available), "code": 40310000, "existing_qty": _s(held),
                                       "held_for_orders": _s(for_orders),
                                       "message": f"insufficient qty available for order (requested: {_s(est_qty)}, "
                                                  f"available: {_s(available)})",
                                       "symbol": symbol})
        oid = str(uuid.uuid4())
        stamp = _iso(now)
        order = {
            "id": oid, "client_order_id": cid, "created_at": stamp, "updated_at": stamp, "submitted_at": stamp,
            "filled_at": None, "expired_at": None, "expires_at": None, "canceled_at": None, "failed_at": None,
            "replaced_at": None, "replaced_by": None, "replaces": None, "asset_id": self._asset_id(symbol),
            "symbol": symbol, "asset_class": "us_equity", "notional": None if notional is None else _s(notional),
            "qty": None if qty is None else _s(qty), "filled_qty": "0", "filled_avg_price": None,
            "order_class": "", "order_type": otype, "type": otype, "side": side, "time_in_force": tif,
            "limit_price": None if limit is None else _s(limit), "stop_price": None, "status": "accepted",
            "extended_hours": bool(body.get("extended_hours", False)), "legs": None, "trail_percent": None,
            "trail_price": None, "hwm": None, "subtag": None, "source": None,
            "position_intent": "buy_to_open" if side == "buy" else "sell_to_close",
        }
        self._seq += 1
        self._orders[oid] = order
        self._by_cid[cid] = oid
        self._meta[oid] = {"seq": self._seq, "submitted": now,
                           "fraction": None if fraction is None else float(fraction)}
        if self._is_open(now):
            if not self._try_fill(order, now) and otype == "limit":
                order["status"] = "new"
        return dict(order)

    def _held_for_orders(self, symbol: str) -> float:
        total = 0.0
        for order in self._orders.values():
            if order["symbol"] == symbol and order["side"] == "sell" and order["status"] in OPEN_STATUSES:
                if order["qty"] is not None:
                    total += float(order["qty"]) - float(order["filled_qty"])
        return total

    @staticmethod
    def _asset_id(symbol: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-alpaca/asset/{symbol}"))

    def _fill_open_orders(self, now: datetime) -> int:
        filled = 0
        for order in list(self._orders.values()):
            if order["status"] in _FILLABLE and self._try_fill(order, now):
                filled += 1
        return filled

    def _fill_queued_orders(self, now: datetime) -> int:
        """Market closed, fill_model "open": orders placed before the last session's open
        filled at that open, as a day order queued overnight does at the real broker (whether
        or not anyone asked meanwhile)."""
        day = self._today(now)
        for back in range(10):
            session = _session(day - timedelta(days=back))
            if session is not None and session[0] <= now:
                last_open = session[0]
                break
        else:
            return 0
        filled = 0
        for order in list(self._orders.values()):
            placed = _parse_time(order["submitted_at"])
            if order["status"] in _FILLABLE and placed is not None and placed < last_open \
                    and self._try_fill(order, last_open):
                filled += 1
        return filled

    def _try_fill(self, order: dict, now: datetime) -> bool:
        """Fill `order` at the current price if it can fill; True if it did."""
        symbol = order["symbol"]
        price = self._fill_price(symbol, self._today(now))
        if price is None:
            return False
        if order["type"] == "limit":
            limit = float(order["limit_price"])
            if (order["side"] == "buy" and price > limit) or (order["side"] == "sell" and price < limit):
                return False
        qty = float(order["qty"]) if order["qty"] is not None else round(float(order["notional"]) / price, 9)
        fraction = self._meta[order["id"]]["fraction"]
        if fraction is not None:
            qty = round(qty * fraction, 9)
        position = self._positions.get(symbol, [0.0, 0.0])
        if order["side"] == "sell":
            qty = min(qty, position[0])
        if qty <= 0:
            return False
        if order["side"] == "buy":
            new_qty = position[0] + qty
            position[1] = (position[0] * position[1] + qty * price) / new_qty
            position[0] = round(new_qty, 9)
            self.cash -= qty * price
        else:
            position[0] = round(position[0] - qty, 9)
            self.cash += qty * price
        if position[0] > 1e-9:
            self._positions[symbol] = position
        else:
            self._positions.pop(symbol, None)
        stamp = _iso(now)
        order.update(filled_qty=_s(qty), filled_avg_price=_s(price), filled_at=stamp, updated_at=stamp,
                     status="filled" if fraction is None else "partially_filled")
        return True

    def _cancel(self, order: dict, now: datetime) -> None:
        stamp = _iso(now)
        order.update(status="canceled", canceled_at=stamp, updated_at=stamp)

    def _list_orders(self, query: dict) -> list[dict]:
        status = (query.get("status") or "open").lower()
        if status not in ("open", "closed", "all"):
            raise _HTTPError(422, {"code": 42210000, "message": f"invalid status: {status}"})
        try:
            limit = int(query.get("limit") or 50)
            after, until = _parse_time(query.get("after")), _parse_time(query.get("until"))
        except ValueError:
            raise _HTTPError(422, {"code": 42210000, "message": "invalid limit, after or until"}) from None
        limit = max(1, min(limit, 500))
        symbols = {s.strip().upper() for s in (query.get("symbols") or "").split(",") if s.strip()}
        side = query.get("side")
        out = []
        for oid, order in self._orders.items():
            meta = self._meta[oid]
            is_open = order["status"] in OPEN_STATUSES
            if (status == "open" and not is_open) or (status == "closed" and is_open):
                continue
            if symbols and order["symbol"] not in symbols:
                continue
            if side and order["side"] != side:
                continue
            if (after and meta["submitted"] <= after) or (until and meta["submitted"] >= until):
                continue
            out.append((meta["submitted"], meta["seq"], order))
        out.sort(key=lambda t: (t[0], t[1]), reverse=(query.get("direction") or "desc").lower() != "asc")
        return [dict(o) for *_, o in out[:limit]]

    # --- trading: positions -----------------------------------------------------------------------

    def _position_json(self, symbol: str, today: date) -> dict:
        qty, avg = self._positions[symbol]
        price = self._mark(symbol, today)
        prev = self._last_row(symbol, today, back=1) if symbol not in self._prices else None
        last = float(prev[5]) if prev else price
        value, cost = qty * price, qty * avg
        return {
            "asset_id": self._asset_id(symbol), "symbol": symbol, "exchange": "ARCA", "asset_class": "us_equity",
            "asset_marginable": True, "avg_entry_price": _s(avg), "qty": _s(qty), "side": "long",
            "market_value": _s(value), "cost_basis": _s(cost), "unrealized_pl": _s(value - cost),
            "unrealized_plpc": _s((value - cost) / cost if cost else 0.0),
            "unrealized_intraday_pl": _s(qty * (price - last)),
            "unrealized_intraday_plpc": _s((price - last) / last if last else 0.0),
            "current_price": _s(price), "lastday_price": _s(last),
            "change_today": _s((price - last) / last if last else 0.0),
            "qty_available": _s(max(qty - self._held_for_orders(symbol), 0.0)),
        }

    def _find_position(self, key: str) -> str | None:
        key_upper = key.upper()
        if key_upper in self._positions:
            return key_upper
        for symbol in self._positions:
            if self._asset_id(symbol) == key.lower():
                return symbol
        return None

    def _positions_route(self, method: str, rest: list[str], query: dict, now: datetime) -> tuple[int, Any]:
        today = self._today(now)
        if not rest:
            if method == "GET":
                return 200, [self._position_json(s, today) for s in sorted(self._positions)]
            if method == "DELETE":
                if _bool(query.get("cancel_orders")):
                    for order in self._orders.values():
                        if order["status"] in OPEN_STATUSES:
                            self._cancel(order, now)
                out = []
                for symbol in sorted(self._positions):
                    qty = self._positions[symbol][0]
                    try:
                        order = self._submit({"symbol": symbol, "qty": qty, "side": "sell", "type": "market",
                                              "time_in_force": "day"}, now)
                        out.append({"symbol": symbol, "status": 200, "body": order})
                    except _HTTPError as err:
                        out.append({"symbol": symbol, "status": err.status, "body": err.body})
                return 207, out
        elif len(rest) == 1:
            symbol = self._find_position(rest[0])
            if symbol is None:
                raise _HTTPError(404, {"code": 40410000, "message": "position does not exist"})
            if method == "GET":
                return 200, self._position_json(symbol, today)
            if method == "DELETE":
                held = self._positions[symbol][0]
                try:
                    qty, pct = _num(query.get("qty")), _num(query.get("percentage"))
                except ValueError:
                    raise _HTTPError(422, {"code": 42210000, "message": "invalid qty or percentage"}) from None
                if qty is not None and pct is not None:
                    raise _HTTPError(422, {"code": 42210000, "message": "only one of qty or percentage"})
                if pct is not None:
                    if not 0 < pct <= 100:
                        raise _HTTPError(422, {"code": 42210000, "message": "percentage must be in (0, 100]"})
                    qty = round(held * pct / 100, 9)
                order = self._submit({"symbol": symbol, "qty": held if qty is None else qty, "side": "sell",
                                      "type": "market", "time_in_force": "day"}, now)
                return 200, order
        raise _HTTPError(404, {"code": 40410000, "message": "not found"})

    # --- market data ----------------------------------------------------------------------------

    @staticmethod
    def _bar_json(row: tuple, adjusted: bool) -> dict:
        day, o, h, lo, c, adj, v = row
        f = adj / c if adjusted and c else 1.0
        o, h, lo, c = o * f, h * f, lo * f, (adj if adjusted else c)
        return {"t": _day_start(day).strftime("%Y-%m-%dT%H:%M:%SZ"), "o": o, "h": h, "l": lo, "c": c,
                "v": int(v), "n": max(1, int(v) // 100), "vw": round((h + lo + c) / 3, 4)}

    def _data_route(self, rest: str, query: dict, now: datetime, asof: date) -> tuple[int, Any]:
        symbols = list(dict.fromkeys(s.strip().upper() for s in (query.get("symbols") or "").split(",") if s.strip()))
        if not symbols:
            raise _HTTPError(400, {"code": 40010000, "message": "invalid symbols"})
        if rest == "bars":
            return 200, self._bars(symbols, query, now, asof)
        if rest == "bars/latest":
            rows = {s: self._last_row(s, asof) for s in symbols}
            return 200, {"bars": {s: self._bar_json(r, True) for s, r in rows.items() if r}}
        priced = {s: p for s in symbols if (p := self._price_asof(s, asof)) is not None}
        stamp = _iso(now)
        trade = lambda p: {"t": stamp, "x": "V", "p": p, "s": 100, "c": ["@"], "i": 1, "z": "B"}  # noqa: E731
        quote = lambda p: {"t": stamp, "ax": "V", "ap": p, "as": 1, "bx": "V", "bp": p, "bs": 1,  # noqa: E731
                           "c": ["R"], "z": "B"}
        if rest == "trades/latest":
            return 200, {"trades": {s: trade(p) for s, p in priced.items()}}
        if rest == "quotes/latest":
            return 200, {"quotes": {s: quote(p) for s, p in priced.items()}}
        if rest == "snapshots":
            out = {}
            for s, p in priced.items():
                snap = {"latestTrade": trade(p), "latestQuote": quote(p)}
                last, prev = self._last_row(s, asof), self._last_row(s, asof, back=1)
                if last:
                    snap["dailyBar"] = self._bar_json(last, True)
                if prev:
                    snap["prevDailyBar"] = self._bar_json(prev, True)
                out[s] = snap
            return 200, out
        raise _HTTPError(404, {"code": 40410000, "message": f"not found: /v2/stocks/{rest}"})

    def _price_asof(self, symbol: str, asof: date) -> float | None:
        return self._price(symbol, asof)

    def _bars(self, symbols: list[str], query: dict, now: datetime, asof: date) -> dict:
        timeframe = query.get("timeframe") or ""
        if timeframe not in ("1Day", "1D", "Day", "1day"):
            raise _HTTPError(400, {"code": 40010000, "message": f"FakeAlpaca serves 1Day bars only, not {timeframe!r}"})
        try:
            start = _parse_time(query.get("start")) or _day_start(self._today(now))
            end = _parse_time(query.get("end"), end=True) or now
            limit = int(query.get("limit") or 1000)
            offset = int(json.loads(base64.urlsafe_b64decode(query["page_token"]))["offset"]) \
                if query.get("page_token") else 0
        except (ValueError, KeyError, TypeError):
            raise _HTTPError(400, {"code": 40010000, "message": "invalid start, end, limit or page_token"}) from None
        if not 1 <= limit <= 10_000:
            raise _HTTPError(400, {"code": 40010000, "message": "invalid limit: must be 1..10000"})
        limit = min(limit, self.max_page_size)
        adjusted = (query.get("adjustment") or "raw").lower() != "raw"
        descending = (query.get("sort") or "asc").lower() == "desc"
        items: list[tuple[str, tuple]] = []
        for symbol in sorted(symbols):
            rows = [r for r in self._rows_upto(symbol, asof) if start <= _day_start(r[0]) <= end]
            items.extend((symbol, r) for r in (reversed(rows) if descending else rows))
        page = items[offset: offset + limit]
        bars: dict[str, list[dict]] = {}
        for symbol, row in page:
            bars.setdefault(symbol, []).append(self._bar_json(row, adjusted))
        token = None
        if offset + limit < len(items):
            token = base64.urlsafe_b64encode(json.dumps({"offset": offset + limit}).encode()).decode()
        return {"bars": bars, "next_page_token": token}
