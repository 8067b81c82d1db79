"""AlpacaBroker under failure, against FakeAlpaca: an order is placed exactly once whatever the
network does, errors are classified as documented, every call is bounded in time, and the
credentials never show in an error."""

from __future__ import annotations

import json
import socket
import time
import traceback

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from broker_support import API_KEY, CASH, SECRET_KEY, make_order

from botctl.adapters.alpaca_broker import AlpacaBroker, classify
from botctl.errors import BrokerAuth, BrokerError, BrokerRejected, BrokerTransient
from fakes.fake_alpaca import FakeAlpaca

TIMEOUT = 0.5
RETRIES = 3
SECRETS = (API_KEY, SECRET_KEY)


def assert_no_secret(exc: BaseException) -> None:
    """Neither key shows in the message, the repr or the traceback a logger would print."""
    shown = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    for text in shown:
        for secret in SECRETS:
            assert secret not in text
            assert secret.strip() not in text


def make_broker(fake: FakeAlpaca, *, timeout: float = TIMEOUT, retries: int = RETRIES,
                api_key: str = API_KEY, secret_key: str = SECRET_KEY, url: str | None = None) -> AlpacaBroker:
    return AlpacaBroker(api_key, secret_key, paper=True, base_url=url or fake.url, timeout=timeout, retries=retries,
                        backoff=0.01, sleep=lambda s: None)


@pytest.fixture
def fake():
    with FakeAlpaca(api_key=API_KEY, secret_key=SECRET_KEY, cash=CASH) as f:
        f.market_open = True
        f.set_price("SPY", 100.0)
        yield f


@pytest.fixture
def broker(fake) -> AlpacaBroker:
    return make_broker(fake)


def buy(qty: float = 10, symbol: str = "SPY"):
    return make_order(symbol, "buy", qty, 100.0)


def posts(fake: FakeAlpaca) -> int:
    return sum(1 for method, path, _, _ in fake.requests if method == "POST" and path == "/v2/orders")


def requests_to(fake: FakeAlpaca, method: str, path: str) -> int:
    return sum(1 for m, p, _, _ in fake.requests if m == method and p == path)


def assert_placed_once(fake: FakeAlpaca, order, placed, fills) -> None:
    assert [o["client_order_id"] for o in fake.orders()] == [order.client_order_id]
    assert placed.client_order_id == order.client_order_id
    assert placed.status == "filled" and placed.filled_qty == pytest.approx(order.qty)
    assert placed.broker_order_id == fake.orders()[0]["id"]
    assert sum(f.qty for f in fills) == pytest.approx(order.qty)
    assert fake.positions() == {order.symbol: pytest.approx(order.qty)}


# --- ambiguous sends are resolved by lookup, never by a blind resend ---------------------------


def test_timeout_before_the_order_is_created_resends_once(fake, broker):
    fake.inject("timeout", seconds=3)
    order = buy()
    started = time.monotonic()
    placed, fills = broker.submit(order, order.ts_init)
    assert time.monotonic() - started < 3  # the adapter's timeout fired, not the fake's answer
    assert_placed_once(fake, order, placed, fills)
    assert posts(fake) == 2


# (fault, its parameters, POSTs expected): an order the broker already has is found by lookup
# and never resent (1 POST); a send that never reached it is resent once per fault.
ONE_FAULT_ON_SEND = {
    "504-after-accept": ("504_after_accept", {}, 1),
    "timeout-after-accept": ("timeout_after_accept", {"seconds": 3}, 1),
    "dropped-connection": ("drop", {}, 2),
    "500-then-success": ("500", {}, 2),
    "429-once": ("429", {"count": 1}, 2),
    "429-twice": ("429", {"count": 2}, 3),
}


@pytest.mark.parametrize("case", list(ONE_FAULT_ON_SEND))
def test_a_fault_on_send_places_the_order_exactly_once(fake, broker, case):
    kind, params, expected_posts = ONE_FAULT_ON_SEND[case]
    fake.inject(kind, **params)
    order = buy()
    placed, fills = broker.submit(order, order.ts_init)
    assert_placed_once(fake, order, placed, fills)
    assert posts(fake) == expected_posts


def test_a_failing_lookup_after_an_ambiguous_send_is_retried(fake, broker):
    fake.inject("504_after_accept")
    fake.inject("drop", method="GET", path="/v2/orders:by_client_order_id")
    order = buy()
    placed, fills = broker.submit(order, order.ts_init)
    assert_placed_once(fake, order, placed, fills)
    assert posts(fake) == 1


def test_a_duplicate_client_id_from_a_restarted_adapter_is_already_placed(fake, broker):
    order = buy()
    placed, fills = broker.submit(order, order.ts_init)
    restarted = make_broker(fake)
    restarted.remember_fills(order.client_order_id, sum(f.qty for f in fills), sum(f.qty * f.price for f in fills))
    again, again_fills = restarted.submit(order, order.ts_init)
    assert again.status == "filled" and again.broker_order_id == placed.broker_order_id
    assert again_fills == []
    assert len(fake.orders()) == 1


def test_submit_gives_up_after_bounded_retries_without_placing(fake, broker):
    fake.inject("500", count=None)
    order = buy()
    with pytest.raises(BrokerTransient) as err:
        broker.submit(order, order.ts_init)
    assert posts(fake) == RETRIES + 1
    assert fake.orders() == []
    assert_no_secret(err.value)


def test_submit_to_a_broker_that_never_answers_is_bounded(fake):
    broker = make_broker(fake, timeout=0.3, retries=2)
    fake.inject("timeout", count=None, seconds=30)
    order = buy()
    started = time.monotonic()
    with pytest.raises(BrokerTransient) as err:
        broker.submit(order, order.ts_init)
    elapsed = time.monotonic() - started
    assert posts(fake) == 3
    assert elapsed < 0.3 * 3 * 2 + 2.0
    assert fake.orders() == []
    assert_no_secret(err.value)


def test_submit_when_nothing_answers_stops_at_the_failed_lookup(fake):
    """A send that timed out is looked up (with its own retries); when the lookup cannot answer
    either, submit gives up at once with BrokerTransient (the order stays ambiguous for the
    caller to resolve) instead of resending blind."""
    timeout, retries = 0.2, 2
    broker = make_broker(fake, timeout=timeout, retries=retries)
    fake.inject("timeout", method="*", path="/v2", count=None, seconds=30)
    order = buy()
    started = time.monotonic()
    with pytest.raises(BrokerTransient) as err:
        broker.submit(order, order.ts_init)
    elapsed = time.monotonic() - started
    assert posts(fake) == 1
    assert requests_to(fake, "GET", "/v2/orders:by_client_order_id") == retries + 1
    assert elapsed < (1 + retries + 1) * timeout * 2 + 2.0
    assert fake.orders() == []
    assert_no_secret(err.value)


# --- rejections and refused credentials ------------------------------------------------------


def test_reject_becomes_a_rejected_order_with_the_message(fake, broker):
    fake.inject("reject", message="account is not allowed to short")
    order = buy()
    placed, fills = broker.submit(order, order.ts_init)
    assert placed.status == "rejected" and fills == []
    assert "account is not allowed to short" in placed.reject_reason
    assert placed.client_order_id == order.client_order_id and placed.run_id == order.run_id
    assert fake.orders() == [] and posts(fake) == 1  # a rejection is never retried
    for secret in SECRETS:
        assert secret not in placed.reject_reason


def test_buying_power_rejection_comes_from_the_broker(fake, broker):
    order = buy(qty=5_000)
    placed, _ = broker.submit(order, order.ts_init)
    assert placed.status == "rejected" and "insufficient buying power" in placed.reject_reason
    assert fake.orders() == []


@pytest.mark.parametrize("kind", ["auth", "forbidden"])
def test_refused_credentials_raise_broker_auth_and_place_nothing(fake, broker, kind):
    fake.inject(kind)
    order = buy()
    with pytest.raises(BrokerAuth) as err:
        broker.submit(order, order.ts_init)
    assert fake.orders() == [] and posts(fake) == 1
    assert_no_secret(err.value)


@pytest.mark.parametrize("kind", ["auth", "forbidden"])
def test_refused_credentials_on_reads_are_not_retried(fake, broker, kind):
    fake.inject(kind, method="GET", path="/v2/account")
    with pytest.raises(BrokerAuth) as err:
        broker.account()
    assert requests_to(fake, "GET", "/v2/account") == 1
    assert_no_secret(err.value)


def test_wrong_keys_raise_broker_auth_without_echoing_them(fake):
    broker = make_broker(fake, api_key=API_KEY + "X", secret_key=SECRET_KEY + "X")
    with pytest.raises(BrokerAuth) as err:
        broker.account()
    assert_no_secret(err.value)
    order = buy()
    with pytest.raises(BrokerAuth) as err:
        broker.submit(order, order.ts_init)
    assert_no_secret(err.value)
    assert fake.orders() == []


# --- partial fills -----------------------------------------------------------------------------


def _complete_fill(fake: FakeAlpaca, client_order_id: str, price: float) -> None:
    """Fill the rest of a partially filled order at `price`, as a broker eventually does.
    FakeAlpaca keeps a partially filled order open forever and has no public call for this,
    so this reaches into its state (under its lock)."""
    with fake._lock:
        order = fake._orders[fake._by_cid[client_order_id]]
        done, qty = float(order["filled_qty"]), float(order["qty"])
        avg = (done * float(order["filled_avg_price"]) + (qty - done) * price) / qty
        order.update(filled_qty=f"{qty:g}", filled_avg_price=f"{avg:.9g}", status="filled")
        fake._positions[order["symbol"]][0] += qty - done
        fake.cash -= (qty - done) * price


def test_partial_fill_reports_the_filled_part_then_only_the_remainder(fake, broker):
    fake.inject("partial_fill", fraction=0.5)
    order = buy(10)
    placed, fills = broker.submit(order, order.ts_init)
    assert placed.status == "partially_filled" and placed.filled_qty == pytest.approx(5)
    assert [(f.qty, f.price) for f in fills] == [(pytest.approx(5), pytest.approx(100.0))]
    assert [o.client_order_id for o in broker.open_orders()] == [order.client_order_id]
    assert broker.fills_for(broker.get_order(order.client_order_id, order)) == []  # nothing new yet

    _complete_fill(fake, order.client_order_id, 105.0)
    done = broker.get_order(order.client_order_id, order)
    assert done.status == "filled" and done.filled_qty == pytest.approx(10)
    rest = broker.fills_for(done)
    assert [(f.qty, f.price) for f in rest] == [(pytest.approx(5), pytest.approx(105.0))]
    assert rest[0].fill_id != fills[0].fill_id
    assert broker.fills_for(done) == []
    assert broker.fills_for(broker.get_order(order.client_order_id, order)) == []
    assert fake.positions() == {"SPY": pytest.approx(10)}


def test_after_a_restart_remember_fills_keeps_the_partial_fill_from_being_reported_again(fake, broker):
    fake.inject("partial_fill", fraction=0.5)
    order = buy(10)
    _, fills = broker.submit(order, order.ts_init)
    restarted = make_broker(fake)
    restarted.remember_fills(order.client_order_id, sum(f.qty for f in fills), sum(f.qty * f.price for f in fills))
    assert restarted.fills_for(restarted.get_order(order.client_order_id, order)) == []
    _complete_fill(fake, order.client_order_id, 110.0)
    rest = restarted.fills_for(restarted.get_order(order.client_order_id, order))
    assert [(f.qty, f.price) for f in rest] == [(pytest.approx(5), pytest.approx(110.0))]


def test_an_open_order_that_fills_partially_later(fake, broker):
    fake.market_open = False
    fake.inject("partial_fill", fraction=0.25)
    order = buy(8)
    placed, fills = broker.submit(order, order.ts_init)
    assert placed.status == "accepted" and fills == []
    fake.fill_pending()
    found = broker.get_order(order.client_order_id, order)
    assert found.status == "partially_filled" and found.filled_qty == pytest.approx(2)
    assert [f.qty for f in broker.fills_for(found)] == [pytest.approx(2)]
    assert broker.fills_for(found) == []
    canceled = broker.cancel(order.client_order_id, order.ts_init)
    assert canceled.status == "canceled" and canceled.filled_qty == pytest.approx(2)
    assert broker.fills_for(canceled) == []
    assert fake.positions() == {"SPY": pytest.approx(2)}


# --- reads: retried when transient, bounded when the broker never answers ---------------------------


def test_account_is_retried_through_503(fake, broker):
    fake.inject("503", method="GET", path="/v2/account", count=2)
    state = broker.account()
    assert state.cash == pytest.approx(CASH) and state.equity == pytest.approx(CASH)
    assert requests_to(fake, "GET", "/v2/account") == 3


def test_positions_are_retried_through_503(fake, broker):
    broker.submit(buy(3), buy().ts_init)
    fake.inject("503", method="GET", path="/v2/positions", count=2)
    positions = broker.positions()
    assert positions["SPY"].qty == pytest.approx(3) and positions["SPY"].price == pytest.approx(100.0)
    assert requests_to(fake, "GET", "/v2/positions") == 3


def test_reads_under_persistent_503_give_up_with_broker_transient(fake, broker):
    fake.inject("503", method="GET", path="/v2/positions", count=None)
    with pytest.raises(BrokerTransient) as err:
        broker.positions()
    assert requests_to(fake, "GET", "/v2/positions") == RETRIES + 1
    assert_no_secret(err.value)


def test_a_broker_that_never_answers_fails_transient_in_bounded_time(fake):
    timeout, retries = 0.3, 3
    broker = make_broker(fake, timeout=timeout, retries=retries)
    fake.inject("timeout", method="GET", path="/v2/account", count=None, seconds=30)
    started = time.monotonic()
    with pytest.raises(BrokerTransient) as err:
        broker.account()
    elapsed = time.monotonic() - started
    attempts = retries + 1
    assert requests_to(fake, "GET", "/v2/account") == attempts
    assert timeout * attempts * 0.9 <= elapsed < timeout * attempts * 2 + 2.0
    assert_no_secret(err.value)


def test_a_closed_port_is_transient_and_leaks_nothing(fake):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    broker = make_broker(fake, url=f"http://127.0.0.1:{port}", retries=1)
    with pytest.raises(BrokerTransient) as err:
        broker.account()
    assert_no_secret(err.value)
    order = buy()
    with pytest.raises(BrokerTransient) as err:
        broker.submit(order, order.ts_init)
    assert_no_secret(err.value)


def test_a_key_with_a_stray_newline_is_not_echoed(fake):
    broker = make_broker(fake, secret_key=SECRET_KEY + "\n", retries=0)  # as pasted from a file
    with pytest.raises(BrokerError) as err:
        broker.account()
    assert_no_secret(err.value)


# --- classify ------------------------------------------------------------------------------


def api_error(status: int, body: dict | str) -> APIError:
    response = requests.Response()
    response.status_code = status
    response._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    response.headers["APCA-API-KEY-ID"] = API_KEY  # nothing in a response may be echoed either
    return APIError(response.text, requests.HTTPError(f"{status} Error", response=response))


@pytest.mark.parametrize(("status", "body", "expected"), [
    (401, {"code": 40110000, "message": "request is not authorized"}, BrokerAuth),
    (403, {"message": "forbidden."}, BrokerAuth),
    (403, {"code": 40310000, "message": "insufficient buying power"}, BrokerRejected),
    (403, {"code": 40310100, "message": "trade denied due to pattern day trading protection"}, BrokerRejected),
    (422, {"code": 40010001, "message": "client_order_id must be unique"}, BrokerRejected),
    (422, {"code": 42210000, "message": "qty must be > 0"}, BrokerRejected),
    (429, {"code": 42910000, "message": "rate limit exceeded"}, BrokerTransient),
    (500, {"code": 50010000, "message": "internal server error"}, BrokerTransient),
    (502, "<html>bad gateway</html>", BrokerTransient),
    (503, {"code": 50310000, "message": "service unavailable"}, BrokerTransient),
    (504, {"message": "gateway timeout"}, BrokerTransient),
])
def test_classify_http_errors(status, body, expected):
    error = classify(api_error(status, body), "get account")
    assert type(error) is expected
    assert str(error).startswith("get account: ") and f"HTTP {status}" in str(error)
    if isinstance(body, dict) and "message" in body:
        assert body["message"] in str(error)
    assert_no_secret(error)


@pytest.mark.parametrize("status", [507, 520, 524])
def test_classify_every_5xx_is_transient(status):
    assert isinstance(classify(api_error(status, {"message": "server error"}), "submit x"), BrokerTransient)


class _GatewayFake(FakeAlpaca):
    """Processes the next order POST, then answers it with `status` instead (a gateway error)."""

    status_after_accept: int | None = None

    def _send(self, h, status, payload, headers=None):
        if self.status_after_accept and h.command == "POST" and h.path.startswith("/v2/orders") and status == 200:
            status, payload, self.status_after_accept = self.status_after_accept, {"message": "origin error"}, None
        super()._send(h, status, payload, headers)


def test_an_unlisted_5xx_after_accept_is_resolved_by_lookup():
    with _GatewayFake(api_key=API_KEY, secret_key=SECRET_KEY, cash=CASH) as gateway:
        gateway.market_open = True
        gateway.set_price("SPY", 100.0)
        gateway.status_after_accept = 524
        order = buy()
        placed, fills = make_broker(gateway).submit(order, order.ts_init)
        assert len(gateway.orders()) == 1
        assert placed.status == "filled" and sum(f.qty for f in fills) == pytest.approx(10)


def test_classify_real_sdk_errors_from_the_fake(fake):
    client = TradingClient(API_KEY, SECRET_KEY, paper=True, url_override=fake.url)
    client._retry = 0
    seen = {}
    for kind, expected in [("auth", BrokerAuth), ("forbidden", BrokerAuth), ("reject", BrokerRejected),
                           ("429", BrokerTransient), ("500", BrokerTransient), ("503", BrokerTransient)]:
        fake.inject(kind, method="GET", path="/v2/account")
        with pytest.raises(APIError) as err:
            client.get_account()
        seen[kind] = classify(err.value, "get account")
        assert type(seen[kind]) is expected, kind
        assert_no_secret(seen[kind])


@pytest.mark.parametrize("exc", [
    requests.ReadTimeout("HTTPConnectionPool(host='127.0.0.1', port=1): Read timed out. (read timeout=0.5)"),
    requests.ConnectTimeout("connect timed out"),
    requests.ConnectionError("Connection aborted.", "RemoteDisconnected('Remote end closed connection')"),
], ids=["ReadTimeout", "ConnectTimeout", "ConnectionError"])
def test_classify_network_errors_are_transient(exc):
    error = classify(exc, "submit abc")
    assert isinstance(error, BrokerTransient)
    assert str(error).startswith("submit abc: ") and type(exc).__name__ in str(error)


def test_classify_keeps_botctl_errors_and_never_echoes_a_request():
    original = BrokerRejected("already ours")
    assert classify(original, "x") is original
    request = requests.Request("GET", "http://127.0.0.1:1/v2/account",
                               headers={"APCA-API-KEY-ID": API_KEY, "APCA-API-SECRET-KEY": SECRET_KEY}).prepare()
    exc = requests.ConnectionError(f"failed: {request.headers}", request=request)
    error = classify(exc, "get account")
    assert isinstance(error, BrokerTransient)
    assert_no_secret(error)
