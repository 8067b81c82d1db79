"""A loopback signal API for the poller: answers from a script, then a default; records what
each request carried (so tests can see the auth header was sent, and only there)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeSignalApi:
    def __init__(self) -> None:
        self.script: list[tuple[int, bytes, dict[str, str]]] = []
        self.default: tuple[int, bytes, dict[str, str]] = (200, b'{"data": []}', {})
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                with api._lock:
                    api.requests.append({k.lower(): v for k, v in self.headers.items()})
                    status, body, headers = api.script.pop(0) if api.script else api.default
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/flow"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, status: int = 200, body: object = None, headers: dict[str, str] | None = None, times: int = 1) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.script += [(status, raw, headers or {})] * times

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
