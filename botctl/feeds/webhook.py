"""The webhook receiver: signals pushed over HTTP, authenticated, checked and journaled before
the sender hears "accepted".

Two ways to authenticate (docs/feeds.md):

- `standard_webhooks` (the Standard Webhooks scheme): headers `webhook-id`,
  `webhook-timestamp` (Unix seconds) and `webhook-signature` (space-separated `v1,<base64>`
  entries); each is base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")) with the key the base64
  part of the `whsec_...` secret. A timestamp outside the tolerance window is refused, and a
  webhook-id seen within the window is refused as a replay (beyond the window the timestamp
  check refuses it; the journal's uniqueness on the signal id holds in any case).
- `passphrase`: the body's `passphrase` field (or an `X-Botctl-Passphrase` header) must equal
  the secret. For senders that cannot sign (TradingView alerts). Weaker: anyone who sees one
  request can send any signal, and there is no timestamp, so only the signal id stops a replay.

Answers are one line of JSON: 200 accepted, 400 bad signal, 401 not authenticated, 404 no such
source, 409 duplicate or replay, 411/413 length, 429 the journal queue is full, 503 the journal
failed. The secret is never logged, journaled or echoed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botctl.feeds.checks import Rejection, check_signal, payload_hash
from botctl.feeds.intake import Intake
from botctl.spec.feeds import WebhookSource, decode_webhook_secret

REPLY_SECONDS = 5.0  # how long a request waits for its batch to be committed
MAX_REMEMBERED_IDS = 100_000

STATUS_OF = {"oversize": 413, "bad_signature": 401, "bad_passphrase": 401, "stale_timestamp": 401,
             "replayed": 409, "duplicate": 409, "unknown_source": 404, "overloaded": 429}


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The `webhook-signature` header value a Standard Webhooks sender puts on `body`."""
    key = decode_webhook_secret(secret)
    if key is None:
        raise ValueError("not a whsec_ secret")
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def verify_standard(key: bytes, headers: Mapping[str, str], body: bytes, now: float,
                    tolerance: float) -> tuple[str, str] | Rejection:
    """(webhook-id, webhook-timestamp) when the request is signed by `key` within the window."""
    msg_id, stamp, signatures = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not stamp or not signatures:
        return Rejection("bad_signature", "missing webhook-id, webhook-timestamp or webhook-signature header")
    if not stamp.isdigit() or len(stamp) > 12:
        return Rejection("stale_timestamp", "webhook-timestamp is not Unix seconds")
    if abs(now - int(stamp)) > tolerance:
        return Rejection("stale_timestamp", f"webhook-timestamp is more than {tolerance:g} s from now")
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    for entry in signatures.split(" "):
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return msg_id, stamp
    return Rejection("bad_signature", "no v1 signature matches the body")


class _Seen:
    """webhook-ids seen within the tolerance window (bounded; oldest forgotten first)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, msg_id: str, now: float) -> bool:
        with self._lock:
            while self._ids and (len(self._ids) > MAX_REMEMBERED_IDS or next(iter(self._ids.values())) < now - 2 * self.window):
                self._ids.popitem(last=False)
            if msg_id in self._ids:
                return False
            self._ids[msg_id] = now
            return True

    def forget(self, msg_id: str) -> None:
        with self._lock:
            self._ids.pop(msg_id, None)


class WebhookReceiver:
    """One configured webhook source: an HTTP server in its own threads."""

    def __init__(self, name: str, spec: WebhookSource, secret: str, intake: Intake, *,
                 kinds: Mapping[str, float | None], known_symbols: Collection[str] | None,
                 max_future: timedelta, now: Callable[[], datetime]) -> None:
        self.name, self.spec, self.intake = name, spec, intake
        self._secret = secret
        self._key = decode_webhook_secret(secret) if spec.mode == "standard_webhooks" else None
        self.kinds, self.known_symbols, self.max_future, self.now = kinds, known_symbols, max_future, now
        self._seen = _Seen(spec.tolerance_seconds)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.last_signal_at: datetime | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(_Handler):
            owner = receiver

        server = ThreadingHTTPServer((self.spec.host, self.spec.port), Handler)
        server.daemon_threads = True
        server.request_queue_size = 128
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"feeds-webhook-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- one request ----------------------------------------------------------------------------

    def handle(self, path: str, headers: Mapping[str, str], read: Callable[[int], bytes]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) for one POST; `read(n)` reads the body."""
        if path.split("?", 1)[0] != self.spec.path:
            return self._refuse(Rejection("unknown_source", f"no webhook source at {path[:60]!r}"))
        length_text = headers.get("content-length")
        if length_text is None or not length_text.isdigit():
            return 411, {"error": "length_required", "detail": "a Content-Length header is required"}
        length = int(length_text)
        if length > self.spec.max_body_bytes:
            return self._refuse(Rejection("oversize", f"body of {length} bytes is over {self.spec.max_body_bytes}"))
        body = read(length)
        msg_id: str | None = None
        if self._key is not None:
            verified = verify_standard(self._key, headers, body, time.time(), self.spec.tolerance_seconds)
            if isinstance(verified, Rejection):
                return self._refuse(verified)
            msg_id = verified[0]
        try:
            value = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond reason
            value = None
        if not isinstance(value, dict):
            if self._key is None:  # unauthenticated so far: say nothing about the body
                return self._refuse(Rejection("bad_passphrase", "no passphrase"))
            return self._refuse(Rejection("malformed", "the body is not a JSON object"))
        if self._key is None:
            given = value.pop("passphrase", None) or headers.get("x-botctl-passphrase", "")
            if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self._secret.encode()):
                return self._refuse(Rejection("bad_passphrase", "the passphrase does not match"))
            # Hashed without the passphrase: the journal must not hold anything derived from it alone.
            digest = payload_hash(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())
        else:
            digest = payload_hash(body)
        if msg_id is not None and not self._seen.first_time(msg_id, time.time()):
            return self._refuse(Rejection("replayed", f"webhook-id {msg_id[:60]!r} was already received"))
        checked = check_signal(value, source=self.name, received=self.now(), kinds=self.kinds,
                               known_symbols=self.known_symbols, max_future=self.max_future, digest=digest,
                               default_kind=self.spec.kind, default_id=msg_id)
        if isinstance(checked, Rejection):
            return self._refuse(checked, status=400)
        reply = self.intake.submit(checked, limit=self.spec.queue_size)
        if reply is None:
            if msg_id is not None:
                self._seen.forget(msg_id)  # never recorded: the sender's retry must get through
            return 429, {"error": "overloaded", "detail": "the journal queue is full; retry later"}
        if not reply.wait(REPLY_SECONDS) or reply.recorded is None:
            if msg_id is not None:
                self._seen.forget(msg_id)
            return 503, {"error": "journal_unavailable", "detail": "the journal has not recorded it yet; retry (a retry of one recorded meanwhile is answered 409 duplicate)"}
        if not reply.recorded:
            return 409, {"error": "duplicate", "detail": f"signal {checked.signal_id[:60]!r} is already recorded",
                         "id": checked.signal_id}
        self.last_signal_at = checked.ts_received
        return 200, {"status": "accepted", "id": checked.signal_id, "received_at": checked.ts_received.isoformat()}

    def _refuse(self, rejection: Rejection, status: int | None = None) -> tuple[int, dict[str, Any]]:
        self.intake.reject(self.name, rejection)
        return status or STATUS_OF.get(rejection.reason, 400), {"error": rejection.reason, "detail": rejection.detail}


class _Handler(BaseHTTPRequestHandler):
    owner: WebhookReceiver
    protocol_version = "HTTP/1.1"
    server_version = "botctl"
    sys_version = ""
    timeout = 10  # a client that stops sending mid-body does not hold a thread for ever
    # The status line and headers go out before the body: with Nagle's algorithm the body would
    # wait for the client's delayed ACK (~40 ms) on every keep-alive request.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, answer = self.owner.handle(self.path, headers, self.rfile.read)
        except Exception as exc:  # noqa: BLE001 - one request's bug must not end the receiver
            status, answer = 500, {"error": "internal", "detail": type(exc).__name__}
        body = json.dumps(answer).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status in (404, 411, 413, 500):
            self.send_header("Connection", "close")  # the body was not read: the stream is out of step
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        body = b'{"error": "method_not_allowed", "detail": "POST signals here"}\n'
        self.send_response(405)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # requests are counted and rejections journaled; stderr stays quiet
