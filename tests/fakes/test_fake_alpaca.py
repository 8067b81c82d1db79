"""FakeAlpaca driven by the REAL alpaca-py clients (TradingClient, StockHistoricalDataClient)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestTradeRequest, StockSnapshotRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetCalendarRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
)

from .fake_alpaca import FakeAlpaca

UTC = timezone.utc
DATA = Path(__file__).resolve().parents[2] / "botctl" / "data" / "etf_daily.parquet"
# Friday 2024-03-01, 10:00 New York: a regular session is open.
OPEN = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
# Saturday 2024-03-02, 12:00 New York.
WEEKEND = datetime(2024, 3, 2, 17, 0, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture(scope="module")
def etf_bars() -> pl.DataFrame:
    return pl.read_parquet(DATA).filter(
        pl.col("symbol").is_in(["SPY", "TLT"]) & pl.col("date").is_between(date(2023, 1, 1), date(2024, 12, 31)))


@pytest.fixture
def clock() -> Clock:
    return Clock(OPEN)


@pytest.fixture
def fake(etf_bars, clock):
    with FakeAlpaca(bars=etf_bars, now=clock) as server:
        yield server


def trading(fake: FakeAlpaca, key: str = "test-key", secret: str = "test-secret") -> TradingClient:
    client = TradingClient(key, secret, paper=True, url_override=fake.url)
    client._retry_wait = 0
    return client


def data(fake: FakeAlpaca) -> StockHistoricalDataClient:
    client = StockHistoricalDataClient("test-key", "test-secret", url_override=fake.url)
    client._retry_wait = 0
    return client


def with_timeout(client, seconds: float):
    """alpaca-py sets no timeout; give its session one, the way RESTClient calls it."""
    request = client._session.request
    client._session.request = lambda method, url, **opts: request(method, url, timeout=seconds, **opts)
    return client


def market(symbol="SPY", qty=None, notional=None, side=OrderSide.BUY, cid=None) -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, notional=notional, side=side,
                              time_in_force=TimeInForce.DAY, client_order_id=cid)


def close_on(frame: pl.DataFrame, symbol: str, day: date, column: str = "adj_close") -> float:
    return frame.filter((pl.col("symbol") == symbol) & (pl.col("date") == day))[column].item()


def posts(fake: FakeAlpaca) -> int:
    return sum(1 for m, p, *_ in fake.requests if (m, p) == ("POST", "/v2/orders"))


# --- account, clock, calendar -----------------------------------------------------------------


def test_account(fake):
    account = trading(fake).get_account()
    assert account.status == "ACTIVE" and account.currency == "USD"
    assert (account.cash, account.equity, account.portfolio_value) == ("100000", "100000", "100000")
    assert account.buying_power == "200000" and account.multiplier == "2"


def test_clock_open_closed_and_forced(fake, clock):
    tc = trading(fake)
    c = tc.get_clock()
    assert c.is_open is True
    assert c.next_close == datetime(2024, 3, 1, 21, 0, tzinfo=UTC)
    assert c.next_open == datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    clock.t = WEEKEND
    assert tc.get_clock().is_open is False
    fake.market_open = True
    assert tc.get_clock().is_open is True
    fake.market_open = None
    clock.t = datetime(2024, 11, 29, 18, 30, tzinfo=UTC)  # 13:30 New York, after the half day's close
    c = tc.get_clock()
    assert c.is_open is False and c.next_open == datetime(2024, 12, 2, 14, 30, tzinfo=UTC)


def test_calendar_with_holiday_and_half_day(fake):
    days = trading(fake).get_calendar(GetCalendarRequest(start=date(2024, 11, 26), end=date(2024, 12, 2)))
    assert [d.date for d in days] == [date(2024, 11, 26), date(2024, 11, 27), date(2024, 11, 29), date(2024, 12, 2)]
    half = days[2]
    assert (half.open, half.close) == (datetime(2024, 11, 29, 9, 30), datetime(2024, 11, 29, 13, 0))
    assert days[0].close == datetime(2024, 11, 26, 16, 0)


# --- orders and positions ---------------------------------------------------------------------


def test_market_order_fills_and_updates_position_and_cash(fake, etf_bars):
    tc = trading(fake)
    price = close_on(etf_bars, "SPY", date(2024, 3, 1))
    order = tc.submit_order(market(qty=10, cid="buy-1"))
    assert order.status == OrderStatus.FILLED and order.client_order_id == "buy-1"
    assert float(order.filled_qty) == 10 and float(order.filled_avg_price) == pytest.approx(price)
    assert fake.positions() == {"SPY": 10.0}
    assert fake.cash == pytest.approx(100_000 - 10 * price)
    position = tc.get_open_position("SPY")
    assert position.qty == "10" and float(position.avg_entry_price) == pytest.approx(price)
    account = tc.get_account()
    assert float(account.equity) == pytest.approx(100_000)
    assert float(account.buying_power) == pytest.approx(2 * 100_000 - 10 * price)
    sold = tc.submit_order(market(qty=4, side=OrderSide.SELL))
    assert sold.status == OrderStatus.FILLED and fake.positions() == {"SPY": 6.0}


def test_fractional_and_notional_orders(fake, etf_bars):
    tc = trading(fake)
    price = close_on(etf_bars, "TLT", date(2024, 3, 1))
    frac = tc.submit_order(market("TLT", qty=1.5))
    assert frac.qty == "1.5" and frac.filled_qty == "1.5"
    notional = tc.submit_order(market("TLT", notional=1000))
    assert notional.notional == "1000" and notional.qty is None and notional.status == OrderStatus.FILLED
    assert float(notional.filled_qty) == pytest.approx(1000 / price, abs=1e-8)
    assert fake.positions()["TLT"] == pytest.approx(1.5 + 1000 / price, abs=1e-8)
    assert fake.cash == pytest.approx(100_000 - 1.5 * price - 1000, abs=1e-6)


def test_duplicate_client_id_lookup_and_unknown(fake):
    tc = trading(fake)
    first = tc.submit_order(market(qty=1, cid="dup"))
    with pytest.raises(APIError) as err:
        tc.submit_order(market(qty=1, cid="dup"))
    assert (err.value.status_code, err.value.code) == (422, 40010001)
    assert err.value.message == "client_order_id must be unique"
    assert tc.get_order_by_client_id("dup").id == first.id
    assert tc.get_order_by_id(first.id).client_order_id == "dup"
    with pytest.raises(APIError) as err:
        tc.get_order_by_client_id("nope")
    assert (err.value.status_code, err.value.code) == (404, 40410000)
    with pytest.raises(APIError) as err:
        tc.get_order_by_id("00000000-0000-4000-8000-000000000000")
    assert err.value.status_code == 404
    with pytest.raises(APIError) as err:
        tc.get_open_position("TLT")
    assert err.value.status_code == 404
    assert len(fake.orders()) == 1


def test_buying_power_and_qty_checks(fake):
    tc = trading(fake)
    with pytest.raises(APIError) as err:
        tc.submit_order(market(notional=250_000))
    assert (err.value.status_code, err.value.code, err.value.message) == (403, 40310000, "insufficient buying power")
    with pytest.raises(APIError) as err:
        tc.submit_order(market(qty=1, side=OrderSide.SELL))
    assert err.value.status_code == 403 and err.value.message.startswith("insufficient qty available")
    assert fake.orders() == []


def test_closed_market_orders_wait_then_fill(fake, clock, etf_bars):
    clock.t = WEEKEND
    tc = trading(fake)
    order = tc.submit_order(market(qty=2))
    assert order.status == OrderStatus.ACCEPTED and fake.positions() == {}
    # open buy orders reserve buying power
    assert float(tc.get_account().buying_power) == pytest.approx(200_000 - 2 * close_on(etf_bars, "SPY", date(2024, 3, 1)))
    assert [o.id for o in tc.get_orders()] == [order.id]  # status=open by default
    assert fake.fill_pending() == 1
    assert tc.get_order_by_id(order.id).status == OrderStatus.FILLED
    # ... or when the market opens (lazily, on the next request)
    second = tc.submit_order(market(qty=3))
    assert second.status == OrderStatus.ACCEPTED
    clock.t = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
    filled = tc.get_order_by_id(second.id)
    assert filled.status == OrderStatus.FILLED
    assert float(filled.filled_avg_price) == pytest.approx(close_on(etf_bars, "SPY", date(2024, 3, 4)))
    assert fake.positions() == {"SPY": 5.0}


def test_cancel_and_list_orders(fake, clock):
    tc = trading(fake)
    done = tc.submit_order(market(qty=1, cid="done"))
    clock.t = WEEKEND
    a = tc.submit_order(market(qty=1, cid="a"))
    b = tc.submit_order(market("TLT", qty=1, cid="b"))
    c = tc.submit_order(LimitOrderRequest(symbol="TLT", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
                                          limit_price=50, client_order_id="c"))
    assert tc.cancel_order_by_id(a.id) is None
    assert tc.get_order_by_id(a.id).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as err:
        tc.cancel_order_by_id(done.id)
    assert err.value.status_code == 422
    with pytest.raises(APIError) as err:
        tc.cancel_order_by_id("00000000-0000-4000-8000-000000000000")
    assert err.value.status_code == 404
    assert [o.client_order_id for o in tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))] == ["c", "b", "a", "done"]
    assert [o.client_order_id for o in tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, direction="asc", limit=2))] == ["done", "a"]
    assert [o.client_order_id for o in tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))] == ["a", "done"]
    assert [o.client_order_id for o in tc.get_orders(GetOrdersRequest(symbols=["TLT"]))] == ["c", "b"]
    after = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, after=OPEN + timedelta(hours=1)))
    assert {o.client_order_id for o in after} == {"a", "b", "c"}
    cancelled = tc.cancel_orders()
    assert sorted(str(r.id) for r in cancelled) == sorted([str(b.id), str(c.id)])
    assert all(r.status == 200 for r in cancelled)
    assert tc.get_orders() == []


def test_close_positions(fake, clock):
    tc = trading(fake)
    tc.submit_order(market(qty=10))
    tc.submit_order(market("TLT", qty=4))
    closed = tc.close_position("SPY", ClosePositionRequest(qty="3"))
    assert closed.side == OrderSide.SELL and closed.qty == "3" and fake.positions()["SPY"] == 7
    tc.close_position("SPY", ClosePositionRequest(percentage="50"))
    assert fake.positions()["SPY"] == pytest.approx(3.5)
    clock.t = WEEKEND
    pending = tc.submit_order(market("TLT", qty=1, side=OrderSide.SELL))  # holds 1 of the 4 TLT
    results = tc.close_all_positions(cancel_orders=True)
    assert ("DELETE", "/v2/positions", {"cancel_orders": "True"}, None) in fake.requests
    assert {r.symbol: r.status for r in results} == {"SPY": 200, "TLT": 200}
    assert tc.get_order_by_id(pending.id).status == OrderStatus.CANCELED
    assert fake.positions() == {"SPY": 3.5, "TLT": 4.0}  # closing orders wait for the open
    fake.fill_pending()
    assert fake.positions() == {} and tc.get_all_positions() == []


# --- market data ------------------------------------------------------------------------------


def test_bars_pagination_merged_by_sdk():
    days = [date(2023, 1, 2) + timedelta(days=i) for i in range(300)]
    frame = pl.DataFrame({
        "symbol": ["AAA"] * 300 + ["BBB"] * 300, "date": days * 2,
        "open": [float(i) + 1 for i in range(600)], "high": [float(i) + 2 for i in range(600)],
        "low": [float(i) for i in range(600)], "close": [float(i) + 1.5 for i in range(600)],
        "adj_close": [float(i) + 1.5 for i in range(600)], "volume": [1000] * 600,
    })
    with FakeAlpaca(bars=frame, now=Clock(datetime(2024, 6, 1, tzinfo=UTC))) as fake:
        fake.max_page_size = 250
        dc = data(fake)
        req = StockBarsRequest(symbol_or_symbols=["BBB", "AAA"], timeframe=TimeFrame.Day, start=datetime(2023, 1, 1))
        bars = dc.get_stock_bars(req)
        assert len(bars["AAA"]) == 300 and len(bars["BBB"]) == 300
        assert [b.timestamp.date() for b in bars["AAA"]] == days  # midnight New York = 05:00Z in winter
        assert bars["AAA"][0].timestamp == datetime(2023, 1, 2, 5, 0, tzinfo=UTC)
        pages = [r for r in fake.requests if r[1] == "/v2/stocks/bars"]
        assert len(pages) == 3 and "page_token" not in pages[0][2] and pages[1][2]["page_token"]
        assert bars.df.shape == (600, 7)
        fake.requests.clear()
        limited = dc.get_stock_bars(StockBarsRequest(symbol_or_symbols=["AAA", "BBB"], timeframe=TimeFrame.Day,
                                                     start=datetime(2023, 1, 1), limit=450))
        assert (len(limited["AAA"]), len(limited["BBB"])) == (300, 150)  # limit counts across symbols
        assert [r[2]["limit"] for r in fake.requests] == ["450", "200"]
        window = dc.get_stock_bars(StockBarsRequest(symbol_or_symbols="AAA", timeframe=TimeFrame.Day,
                                                    start=datetime(2023, 2, 1), end=datetime(2023, 2, 10)))
        assert [b.timestamp.date() for b in window["AAA"]] == [date(2023, 2, d) for d in range(1, 10)]


def test_bars_adjusted_vs_raw_and_latest_prices(fake, etf_bars):
    dc = data(fake)
    day = date(2024, 2, 1)
    row = etf_bars.filter((pl.col("symbol") == "SPY") & (pl.col("date") == day)).row(0, named=True)
    req = dict(symbol_or_symbols="SPY", timeframe=TimeFrame.Day, start=datetime(2024, 2, 1), end=datetime(2024, 2, 1, 23))
    raw = dc.get_stock_bars(StockBarsRequest(**req, adjustment=Adjustment.RAW))["SPY"][0]
    adj = dc.get_stock_bars(StockBarsRequest(**req, adjustment=Adjustment.ALL))["SPY"][0]
    assert (raw.open, raw.close, raw.volume) == (row["open"], row["close"], row["volume"])
    assert adj.close == pytest.approx(row["adj_close"]) and adj.close < raw.close
    assert adj.open == pytest.approx(row["open"] * row["adj_close"] / row["close"])
    assert raw.vwap is not None and raw.trade_count is not None
    # no bars after the fake's today
    everything = dc.get_stock_bars(StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Day,
                                                    start=datetime(2024, 1, 1), end=datetime(2024, 12, 31)))
    assert everything["SPY"][-1].timestamp.date() == date(2024, 3, 1)
    price = close_on(etf_bars, "SPY", date(2024, 3, 1))
    assert dc.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="SPY"))["SPY"].price == pytest.approx(price)
    fake.set_price("SPY", 123.45)
    snap = dc.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols=["SPY", "TLT"]))
    assert snap["SPY"].latest_trade.price == 123.45
    assert snap["TLT"].daily_bar.close == pytest.approx(close_on(etf_bars, "TLT", date(2024, 3, 1)))
    assert trading(fake).submit_order(market(qty=1)).filled_avg_price == "123.45"


# --- faults -----------------------------------------------------------------------------------


def test_fault_429_retried_then_exhausted(fake):
    tc = trading(fake)
    fake.inject("429", method="GET", path="/v2/account")
    assert tc.get_account().cash == "100000"  # one 429, the SDK's retry succeeds
    assert [p for _, p, *_ in fake.requests].count("/v2/account") == 2
    fake.inject("429", method="GET", path="/v2/account", count=4)
    with pytest.raises(APIError) as err:
        tc.get_account()
    assert err.value.status_code == 429 and err.value.code == 42910000
    assert err.value.response.headers["X-RateLimit-Limit"] == "200"
    assert err.value.response.headers["X-RateLimit-Remaining"] == "0"
    assert int(err.value.response.headers["X-RateLimit-Reset"]) > time.time()


@pytest.mark.parametrize("kind", ["500", "503"])
def test_fault_server_errors_not_retried(fake, kind):
    tc = trading(fake)
    fake.inject(kind)
    with pytest.raises(APIError) as err:
        tc.submit_order(market(qty=1))
    assert err.value.status_code == int(kind)
    assert posts(fake) == 1 and fake.orders() == []
    assert tc.submit_order(market(qty=1)).status == OrderStatus.FILLED  # the rule is used up


def test_fault_504_after_accept(fake):
    tc = trading(fake)
    fake.inject("504_after_accept")
    with pytest.raises(APIError) as err:
        tc.submit_order(market(qty=2, cid="once"))
    assert (err.value.status_code, err.value.code) == (422, 40010001)
    assert posts(fake) == 2
    [order] = fake.orders()
    assert order["client_order_id"] == "once" and order["status"] == "filled"
    assert fake.positions() == {"SPY": 2.0}
    assert tc.get_order_by_client_id("once").status == OrderStatus.FILLED


def test_fault_timeout(fake):
    tc = with_timeout(trading(fake), 0.3)
    fake.inject("timeout", seconds=3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        tc.submit_order(market(qty=1, cid="t1"))
    assert fake.orders() == []
    fake.inject("timeout_after_accept", seconds=3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        tc.submit_order(market(qty=1, cid="t2"))
    assert [o["client_order_id"] for o in fake.orders()] == ["t2"]
    assert tc.get_order_by_client_id("t2").status == OrderStatus.FILLED


def test_fault_timeout_without_client_timeout_answers_504(fake):
    tc = trading(fake)
    tc._retry = 0
    fake.inject("timeout", method="GET", path="/v2/clock", seconds=0.2)
    with pytest.raises(APIError) as err:
        tc.get_clock()
    assert err.value.status_code == 504


def test_fault_drop(fake):
    tc = trading(fake)
    fake.inject("drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        tc.submit_order(market(qty=1))
    assert fake.orders() == []
    assert tc.submit_order(market(qty=1)).status == OrderStatus.FILLED


def test_fault_partial_fill(fake, clock):
    tc = trading(fake)
    fake.inject("partial_fill")
    order = tc.submit_order(market(qty=10))
    assert order.status == OrderStatus.PARTIALLY_FILLED and order.filled_qty == "5"
    assert fake.positions() == {"SPY": 5.0}
    assert [o.id for o in tc.get_orders()] == [order.id]  # still open
    tc.cancel_order_by_id(order.id)
    assert tc.get_order_by_id(order.id).filled_qty == "5"
    clock.t = WEEKEND  # a pending order fills partially when it fills
    fake.inject("partial_fill", fraction=0.25)
    pending = tc.submit_order(market(qty=8))
    fake.fill_pending()
    assert tc.get_order_by_id(pending.id).filled_qty == "2" and fake.positions() == {"SPY": 7.0}


def test_fault_reject(fake):
    tc = trading(fake)
    fake.inject("reject")
    with pytest.raises(APIError) as err:
        tc.submit_order(market(qty=1))
    assert (err.value.status_code, err.value.code, err.value.message) == (403, 40310000, "insufficient buying power")
    fake.inject("reject", message="account is not allowed to short")
    with pytest.raises(APIError) as err:
        tc.submit_order(market(qty=1))
    assert err.value.message == "account is not allowed to short"
    assert fake.orders() == []


def test_fault_auth_and_forbidden(fake):
    tc = trading(fake)
    fake.inject("auth", method="GET", path="/v2/account")
    with pytest.raises(APIError) as err:
        tc.get_account()
    assert (err.value.status_code, err.value.code, err.value.message) == (401, 40110000, "request is not authorized")
    fake.inject("forbidden", method="*", path="/v2/positions")
    with pytest.raises(APIError) as err:
        tc.get_all_positions()
    assert err.value.status_code == 403 and err.value.message == "forbidden."
    with pytest.raises(KeyError):
        err.value.code  # noqa: B018 - no code in the body, like the real API
    assert tc.get_account().status == "ACTIVE"


def test_fault_stale_data(fake, etf_bars):
    dc = data(fake)
    fake.inject("stale_data")
    req = StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Day, start=datetime(2024, 2, 1))
    stale = dc.get_stock_bars(req)["SPY"][-1].timestamp.date()
    assert stale <= date(2024, 3, 1) - timedelta(days=10)
    assert dc.get_stock_bars(req)["SPY"][-1].timestamp.date() == date(2024, 3, 1)
    fake.inject("stale_data", days=30, path="/v2/stocks", count=2)
    req.start = datetime(2024, 1, 1)
    assert dc.get_stock_bars(req)["SPY"][-1].timestamp.date() <= date(2024, 1, 31)
    assert dc.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="SPY"))["SPY"].price \
        == pytest.approx(close_on(etf_bars, "SPY", date(2024, 1, 31)))


def test_fault_count_none_until_cleared(fake):
    tc = trading(fake)
    fake.inject("500", method="GET", path="/v2/clock", count=None)
    for _ in range(3):
        with pytest.raises(APIError):
            tc.get_clock()
    fake.clear_faults()
    assert tc.get_clock().is_open


# --- auth, HTTP details, lifecycle --------------------------------------------------------------


def test_real_auth_checks(fake):
    with pytest.raises(APIError) as err:
        trading(fake, key="wrong").get_account()
    assert (err.value.status_code, err.value.code) == (401, 40110000)
    response = requests.get(fake.url + "/v2/account", headers={"APCA-API-KEY-ID": "test-key"}, timeout=5)
    assert response.status_code == 403 and response.json() == {"message": "forbidden."}
    basic = StockHistoricalDataClient("test-key", "test-secret", url_override=fake.url, use_basic_auth=True)
    assert basic.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="SPY"))["SPY"].price > 0


def test_http_details(fake):
    headers = {"APCA-API-KEY-ID": "test-key", "APCA-API-SECRET-KEY": "test-secret"}
    response = requests.get(fake.url + "/v2/nothing/here", headers=headers, timeout=5)
    assert response.status_code == 404 and "message" in response.json()
    assert response.headers["Content-Length"] == str(len(response.content))
    ok = requests.get(fake.url + "/v2/account", headers=headers, timeout=5)
    assert json.loads(ok.content)["cash"] == "100000"
    assert ok.headers["Content-Length"] == str(len(ok.content))
    assert fake.url.startswith("http://127.0.0.1:") and not fake.url.endswith("/")


def test_stop_closes_socket(etf_bars):
    fake = FakeAlpaca(bars=etf_bars, now=Clock(OPEN)).start()
    port = int(fake.url.rsplit(":", 1)[1])
    tc = trading(fake)
    assert tc.get_clock().is_open  # leaves a keep-alive connection in the client's pool
    fake.inject("timeout", method="GET", path="/v2/calendar", seconds=30)
    fake.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(requests.exceptions.ConnectionError):
        tc.get_clock()


def test_set_position_seeds_holdings(fake):
    fake.set_position("XYZ", 5, avg_entry_price=10.0)  # a symbol without bars
    tc = trading(fake)
    assert tc.get_open_position("XYZ").market_value == "50"
    assert tc.close_position("XYZ").status == OrderStatus.FILLED
    assert fake.positions() == {} and fake.cash == pytest.approx(100_050)


def test_subprocess_client(fake):
    """The server runs in this process's thread; another process reaches it through the URL."""
    script = (
        "import sys\n"
        "from alpaca.trading.client import TradingClient\n"
        "from alpaca.trading.requests import MarketOrderRequest\n"
        "tc = TradingClient('test-key', 'test-secret', paper=True, url_override=sys.argv[1])\n"
        "o = tc.submit_order(MarketOrderRequest(symbol='TLT', qty=3, side='buy', time_in_force='day', client_order_id='sub'))\n"
        "print(o.status.value, tc.get_open_position('TLT').qty)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, fake.url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["filled", "3"]
    assert fake.positions() == {"TLT": 3.0} and fake.orders()[0]["client_order_id"] == "sub"
