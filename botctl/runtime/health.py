"""The health endpoint of a running bot: GET /health (JSON) and GET /metrics (Prometheus).

One endpoint serves every account of the process, from a `Telemetry` object the runtime
updates after each step. It listens on 127.0.0.1 by default and runs in a daemon thread, so
it never holds up a trading cycle and dies with the process.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from botctl.errors import BotctlError


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
        self.mismatches = Gauge("botctl_position_mismatches", "Positions that differ between journal and broker",
                                ["account"], registry=r)
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


class HealthServer:
    def __init__(self, telemetry: Telemetry, host: str, port: int) -> None:
        handler = _handler(telemetry)
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise BotctlError(f"cannot serve the health endpoint on {host}:{port}: {exc.strerror} "
                              "(choose another with --health-port, or 0 to disable)") from None
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="botctl-health", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HealthServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(telemetry: Telemetry):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
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

        def log_message(self, format, *args) -> None:  # requests are not worth a log line
            return

    return Handler


