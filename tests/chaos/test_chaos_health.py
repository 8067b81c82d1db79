"""The health endpoint under hostile clients: clients that hang up early or never send their
request are counted, not printed as tracebacks, and cannot keep others from an answer; a
configured bearer token is required; a run journals where it serves, a replay serves nothing
unless asked, and a host beyond loopback is warned about.

Reproductions (before): 300 slow clients printed 300 tracebacks; with a listen backlog of 5,
209 of 500 concurrent requests were answered; `run --replay` failed when port 8787 was taken.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from chaos_support import REPO, botctl_argv, clean_env, no_traceback

from botctl.runtime.health import CLIENT_TIMEOUT, HealthServer, Telemetry, recorded_address
from botctl.store import Store


def _get(url: str, token: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _hang_up_early(port: int) -> None:
    """Send a request and reset the connection before the answer (SO_LINGER 0: an RST)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.close()


@pytest.mark.timeout(60)
def test_slow_and_vanishing_clients_are_counted_quietly_and_others_still_get_answers(capfd):
    telemetry = Telemetry({"a": {}})
    with HealthServer(telemetry, "127.0.0.1", 0) as server:
        port = server.server.server_address[1]
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(24)]  # never send a request
        for sock in silent[:12]:
            sock.sendall(b"GET /hea")  # half a request line, then nothing
        vanishing = [threading.Thread(target=_hang_up_early, args=(port,)) for _ in range(100)]
        for t in vanishing:
            t.start()
        for t in vanishing:
            t.join()
        # more silent clients than workers: an honest client waits for their timeout, no longer
        status, body = _get(server.address + "/health", timeout=4 * CLIENT_TIMEOUT + 5)
        assert status == 200 and json.loads(body)["status"] == "healthy"
        for sock in silent:
            sock.close()
        dropped = telemetry.dropped._value.get()
    out, err = capfd.readouterr()
    assert no_traceback(out + err) and "Error" not in err, err[-2000:]
    assert dropped >= 12, dropped  # at least the half-request clients that timed out


def test_a_configured_token_is_required():
    with HealthServer(Telemetry({"a": {}}), "127.0.0.1", 0, token="s3cret-token") as server:
        assert _get(server.address + "/health")[0] == 401
        assert _get(server.address + "/health", token="wrong")[0] == 401
        assert _get(server.address + "/metrics", token="s3cret-token")[0] == 200
        status, body = _get(server.address + "/health", token="s3cret-token")
        assert status == 200 and "s3cret" not in body.decode()


def _config_with_health(tmp_path: Path, health: str) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    (config / "strategies.yaml").write_text((REPO / "strategies.yaml").read_text())
    (config / "accounts.yaml").write_text((REPO / "accounts.yaml").read_text().split("\nhealth:")[0]
                                          + f"\nhealth: {health}\n")
    return config


def _replay(config: Path, db: Path, *extra: str, **env: str) -> subprocess.CompletedProcess:
    environ = clean_env(**env)
    environ.pop("BOTCTL_HEALTH_PORT")
    return subprocess.run(botctl_argv("--config-dir", str(config), "--db", str(db), "run", "--replay",
                                      "2021-03-01:2021-03-05", *extra), env=environ, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.timeout(120)
def test_a_replay_needs_no_port_and_records_where_it_serves_when_asked(tmp_path):
    with socket.socket() as taken:  # something else holds the configured port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config_with_health(tmp_path, f"{{host: 127.0.0.1, port: {port}}}")
        first = _replay(config, tmp_path / "a.db")
        assert first.returncode == 0 and "health:" not in first.stderr, first.stderr
        with Store.open(tmp_path / "a.db", readonly=True) as store:
            assert recorded_address(store, store.latest_run().run_id) is None
        asked = _replay(config, tmp_path / "b.db", "--health-port", str(port))
        assert asked.returncode == 1 and "cannot serve the health endpoint" in asked.stderr, asked.stderr
    free = _free_port()
    served = _replay(config, tmp_path / "c.db", "--health-port", str(free))
    assert served.returncode == 0, served.stderr
    with Store.open(tmp_path / "c.db", readonly=True) as store:
        assert recorded_address(store, store.latest_run().run_id) == f"http://127.0.0.1:{free}/health"


@pytest.mark.timeout(120)
def test_a_host_beyond_loopback_is_warned_about_and_a_missing_token_refused(tmp_path):
    config = _config_with_health(tmp_path, "{host: 0.0.0.0, port: 8787, token_env: BOTCTL_TEST_HEALTH_TOKEN}")
    missing = _replay(config, tmp_path / "a.db", "--health-port", str(_free_port()))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "$BOTCTL_TEST_HEALTH_TOKEN, which is not set" in missing.stderr
    served = _replay(config, tmp_path / "b.db", "--health-port", str(_free_port()),
                     BOTCTL_TEST_HEALTH_TOKEN="t0ken-value")
    assert served.returncode == 0, served.stderr
    assert "warning: health.host 0.0.0.0 is not a loopback address" in served.stderr
    assert "bearer token required" in served.stderr and "t0ken-value" not in served.stderr + served.stdout
    with Store.open(tmp_path / "b.db", readonly=True) as store:
        warned = [e for e in store.events(severity_at_least="WARN") if e.type == "health.exposed"]
    assert len(warned) == 1
    assert b"t0ken-value" not in (tmp_path / "b.db").read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_token_written_into_token_env_is_refused_without_being_echoed(tmp_path):
    from typer.testing import CliRunner

    from botctl.cli.app import app

    token = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo"
    config = _config_with_health(tmp_path, f"{{host: 127.0.0.1, port: 8787, token_env: {token}}}")
    result = CliRunner().invoke(app, ["--config-dir", str(config), "validate"])
    assert result.exit_code == 4 and "health.token_env: must name an environment variable" in result.output
    assert token not in result.output
