"""The health endpoint of a running bot: GET /health (JSON) and GET /metrics (Prometheus).

One endpoint serves every account of the process, from a `Telemetry` object the runtime
updates after each step. It listens on 127.0.0.1 by default and runs in a daemon thread, so
it never holds up a trading cycle and dies with the process. It is bounded (WORKERS threads,
a BACKLOG-deep queue, CLIENT_TIMEOUT for slow clients), counts clients that hang up instead of
printing their tracebacks, and can require a bearer token (`health.token_env`).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import sys
import threading
import time
from collections import deque
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from botctl.errors import BotctlError, UsageError, failure_text
from botctl.records import Event

if TYPE_CHECKING:
    from botctl.store import Store


class Telemetry:
    """What the bot reports about itself. Updated by the runtime, read by the HTTP thread."""

    def __init__(self, accounts: dict[str, dict]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.nav = Gauge("botctl_nav", "Account NAV at the last mark", ["account"], registry=r)
        self.cash = Gauge("botctl_cash", "Account cash at the last mark", ["account"], registry=r)
        self.leverage = Gauge("botctl_gross_leverage", "Gross leverage at the last mark", ["account"], registry=r)
        self.orders = Counter("botctl_orders", "Orders by final status", ["account", "status"], registry=r)
        self.fills = Counter("botctl_fills", "Fills", ["account"], registry=r)
        self.errors = Counter("botctl_errors", "WARN and worse events by subsystem", ["subsystem", "severity"], registry=r)
        self.blocked = Counter("botctl_orders_blocked", "Orders blocked by the risk guard", ["account", "rule"], registry=r)
        self.halted = Gauge("botctl_halted", "1 while the account is halted", ["account"], registry=r)
        self.cycle = Histogram("botctl_cycle_duration_seconds", "Wall time of one account cycle", ["account"], registry=r)
        self.fetch = Histogram("botctl_data_fetch_seconds", "Wall time of one market data fetch", registry=r)
        self.dropped = Counter("botctl_health_clients_dropped", "Health clients that went away or timed out "
                               "before their answer", registry=r)
        self.mismatches = Gauge("botctl_position_mismatches", "Positions that differ between journal and broker",
                                ["account"], registry=r)
        self.notifications = Counter("botctl_notifications", "Notifications by destination and outcome (sent, failed, "
                                     "dropped)", ["destination", "outcome"], registry=r)
        self.started = time.monotonic()
        self.cycles = 0
        self.last_cycle_at: datetime | None = None
        self.accounts = {a: {"broker_connected": True, "halted": False, **info} for a, info in accounts.items()}
        self._problems: deque[tuple[float, str]] = deque(maxlen=10_000)
        self._lock = threading.Lock()

    def problem(self, subsystem: str, severity: str) -> None:
        self.errors.labels(subsystem, severity).inc()
        with self._lock:
            self._problems.append((time.monotonic(), severity))

    def signals_from(self, feeds: SignalCounts) -> None:
        """Count on /metrics what `feeds` (the run's `feeds.runner.FeedRunner`) received,
        journaled and refused, by source and reason, read from it at each scrape."""
        self.registry.register(_SignalCollector(feeds))

    def client_dropped(self) -> None:
        self.dropped.inc()

    def notified(self, destination: str, outcome: str) -> None:
        self.notifications.labels(destination, outcome).inc()

    def account_state(self, account: str, **changes) -> None:
        with self._lock:
            self.accounts[account].update(changes)
        if "halted" in changes:
            self.halted.labels(account).set(1 if changes["halted"] else 0)

    def cycled(self, at: datetime) -> None:
        with self._lock:
            self.cycles += 1
            self.last_cycle_at = at

    def health(self) -> dict:
        now = time.monotonic()
        with self._lock:
            recent = [sev for t, sev in self._problems if now - t <= 3600]
            accounts = {a: dict(v) for a, v in self.accounts.items()}
            cycles, last = self.cycles, self.last_cycle_at
        errors = sum(1 for s in recent if s in ("ERROR", "CRITICAL"))
        warnings = sum(1 for s in recent if s == "WARN")
        disconnected = [a for a, v in accounts.items() if not v["broker_connected"]]
        halted = [a for a, v in accounts.items() if v["halted"]]
        if disconnected and len(disconnected) == len(accounts):
            status = "unhealthy"
        elif disconnected or halted or errors:
            status = "degraded"
        else:
            status = "healthy"
        return {
            "status": status, "uptime_s": round(now - self.started, 3), "cycles": cycles,
            "last_cycle_at": last.isoformat() if last else None,
            "errors_last_hour": errors, "warnings_last_hour": warnings, "accounts": accounts,
        }


class SignalCounts(Protocol):
    """What /metrics reads of the run's feeds (botctl.feeds.runner.FeedRunner)."""

    def counts(self) -> dict[tuple[str, str, str], int]: ...

    def live_sources(self) -> list[str]: ...

    def stale_now(self) -> list[str]: ...


class _SignalCollector(Collector):
    """botctl_signals_{received,accepted,rejected}_total and botctl_signal_source_stale, from the
    feeds' own counters at scrape time (the intake thread never touches prometheus_client).
    Received counts every signal a source handed in, checked or not; accepted, those journaled;
    rejected, the rest by reason (a check's reason, `duplicate`, `overloaded`, `journal_unavailable`)."""

    def __init__(self, feeds: SignalCounts) -> None:
        self.feeds = feeds

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        received = CounterMetricFamily("botctl_signals_received", "External signals received, by source", labels=["source"])
        accepted = CounterMetricFamily("botctl_signals_accepted", "External signals journaled, by source", labels=["source"])
        rejected = CounterMetricFamily("botctl_signals_rejected", "External signals refused or not journaled, by source "
                                       "and reason", labels=["source", "reason"])
        stale = GaugeMetricFamily("botctl_signal_source_stale", "1 while a polled source is stale (no new entries from "
                                  "it)", labels=["source"])
        counts = self.feeds.counts()
        sources = sorted(set(self.feeds.live_sources()) | {s for s, _, _ in counts if s != "*"})
        stale_now = set(self.feeds.stale_now())
        for source in sources:
            received.add_metric([source], counts.get((source, "received", ""), 0))
            accepted.add_metric([source], counts.get((source, "recorded", ""), 0))
            stale.add_metric([source], 1.0 if source in stale_now else 0.0)
        for (source, outcome, reason), n in sorted(counts.items()):
            if source == "*":
                continue
            if outcome == "rejected":
                rejected.add_metric([source, reason], n)
            elif outcome == "duplicate":
                rejected.add_metric([source, "duplicate"], n)
        return [received, accepted, rejected, stale]


# Bounds of the server: at most WORKERS requests are served at once and the kernel queues up
# to BACKLOG more connections (Linux caps it at net.core.somaxconn); a client gets
# CLIENT_TIMEOUT seconds to send its request, so slow or silent clients cannot hold a worker.
WORKERS = 64
BACKLOG = 512
CLIENT_TIMEOUT = 2.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def health_token(token_env: str | None, environ=os.environ) -> str | None:
    """The bearer token clients must send, from the environment variable `health.token_env`
    names (never from a file); None when no token is configured."""
    if not token_env:
        return None
    token = environ.get(token_env, "")
    if not token.strip():
        raise UsageError(f"health.token_env names ${token_env}, which is not set: export the health endpoint's "
                         "token there, or remove health.token_env from accounts.yaml")
    return token.strip()


class _BoundedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a cap on threads (the accept loop waits for a free worker, so
    the listen backlog is the request queue) and quiet about clients that go away early."""

    request_queue_size = BACKLOG
    daemon_threads = True

    def __init__(self, address, handler, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self._workers = threading.BoundedSemaphore(WORKERS)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        self._workers.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._workers.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._workers.release()

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]  # socketserver calls this from its except clause
        if isinstance(exc, OSError):  # reset, broken pipe, timed out: the client's doing
            self.telemetry.client_dropped()
            return
        # anything else is a bug in the handler: one line, not a traceback per request
        reason = failure_text(exc) if exc is not None else "unknown error"
        sys.stderr.write(f"health: error answering {client_address[0]}: {reason}\n")


class HealthServer:
    def __init__(self, telemetry: Telemetry, host: str, port: int, *, token: str | None = None) -> None:
        handler = _handler(telemetry, token)
        try:
            self.server = _BoundedServer((host, port), handler, telemetry)
        except OSError as exc:
            raise BotctlError(f"cannot serve the health endpoint on {host}:{port}: {exc.strerror} "
                              "(choose another with --health-port, or 0 to disable)") from None
        self.host = host
        # a short poll: shutdown() waits for serve_forever to notice, and a stopping bot should not
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="botctl-health", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        # bound, it is getsockname()'s (str, int); the stubs also allow the bytes bind() accepts
        return f"http://{host!s}:{port}"

    @property
    def exposed(self) -> bool:
        """Listening beyond this machine: /health and /metrics show NAV and cash."""
        return not is_loopback(self.host)

    def __enter__(self) -> HealthServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def record_address(store: Store, run_id: str, server: HealthServer, at: datetime) -> None:
    """Journal where this run serves its health endpoint (a `health.serving` event), so the
    dashboard finds a bot started with --health-port N; WARN when it is not loopback-only."""
    url = server.address + "/health"
    store.insert(Event(ts_event=at, subsystem="health", type="health.serving", run_id=run_id,
                       message=f"health endpoint: {url} and /metrics", details={"url": url}))
    if server.exposed:
        store.insert(Event(ts_event=at, subsystem="health", type="health.exposed", severity="WARN", run_id=run_id,
                           message=exposure_warning(server.host)))


def exposure_warning(host: str) -> str:
    return (f"health.host {host} is not a loopback address: /health and /metrics (NAV, cash, positions' "
            "leverage) are reachable from the network; keep it on 127.0.0.1 or set health.token_env")


def recorded_address(store: Store, run_id: str) -> str | None:
    """The /health URL a run recorded (None: it served none)."""
    found = store.newest("events", 1, run_id=run_id, type="health.serving")
    return found[0][1].details.get("url") if found else None


def _handler(telemetry: Telemetry, token: str | None):
    expected = f"Bearer {token}".encode() if token else None

    class Handler(BaseHTTPRequestHandler):
        timeout = CLIENT_TIMEOUT  # a socket timeout for reading the request: slow clients are cut off

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if expected is not None and not hmac.compare_digest(
                    self.headers.get("Authorization", "").strip().encode(), expected):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer realm="botctl"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path = self.path.split("?", 1)[0]
            if path == "/health":
                body, kind = json.dumps(telemetry.health()).encode(), "application/json"
            elif path == "/metrics":
                body, kind = generate_latest(telemetry.registry), CONTENT_TYPE_LATEST
            else:
                self.send_error(404, "try /health or /metrics")
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_error(self, format, *args) -> None:
            # http.server's own word for a client that sent no request within the timeout
            if format.startswith("Request timed out"):
                telemetry.client_dropped()

        def log_message(self, format, *args) -> None:  # requests are not worth a log line
            return

    return Handler
