"""Secrets: with Alpaca keys in the environment, everything botctl writes or prints is scanned
for them - a full run with broker faults and failing accounts (wrong keys, a malformed key, a
broker that refuses connections), the scheduled loop, `status` and `status --json`, `tail` and
`tail --json` of every kind, `plan`, `validate`, `kill`/`resume`, the service unit, the health
endpoint, the journal's SQL dump, every file left on disk, and every error message, with and
without BOTCTL_DEBUG. The keys appear nowhere (neither whole, nor their first half, nor as
UTF-16).
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from datetime import date
from pathlib import Path

import pytest
from chaos_support import (
    KEY,
    SECRET,
    SkipClock,
    environ,
    quick_broker,
    run_loop,
    WRONG_KEY,
    WRONG_SECRET,
    alpaca_account,
    clock_spec,
    daily_strategies,
    make_workspace,
    new_chaos_fake,
    no_traceback,
    ny,
    scan_for_secrets,
)

MALFORMED_KEY = "PKMALFORMEDKEY4242\nX-Evil: 1"
MALFORMED_SECRET = "malformedSECRET77777777777777777777777"
ALL_SECRETS = (KEY, SECRET, WRONG_KEY, WRONG_SECRET, MALFORMED_KEY.split("\n")[0], MALFORMED_SECRET)
DAY = date(2024, 3, 4)


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - loopback
        return answer.read().decode()


@pytest.fixture(scope="module")
def everything(tmp_path_factory):
    """Run everything once; collect every output and leave every file behind."""
    root = tmp_path_factory.mktemp("secrets")
    outputs: list[tuple[str, str]] = []
    clock = {"now": ny(DAY, 10, 30)}
    with new_chaos_fake(now=lambda: clock["now"]) as fake:
        ws = make_workspace(root, OTHER_API_KEY=WRONG_KEY, OTHER_SECRET_KEY=WRONG_SECRET,
                            BAD_API_KEY=MALFORMED_KEY, BAD_SECRET_KEY=MALFORMED_SECRET,
                            BOTCTL_CLOCK=clock_spec(ny(DAY, 10, 30)))
        daily_strategies(ws.config)
        dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
        accounts = [
            alpaca_account("good", fake.url),
            alpaca_account("wrong", fake.url, key_env="OTHER_API_KEY", secret_env="OTHER_SECRET_KEY"),
            alpaca_account("malformed", fake.url, key_env="BAD_API_KEY", secret_env="BAD_SECRET_KEY"),
        ]
        ws.write_accounts(*accounts, alpaca_account("unreachable", dead))
        # The unreachable broker, in this process with short retries (its connection errors are
        # journaled; as a subprocess each command would spend ~10 s in backoff).
        with environ(ALPACA_API_KEY=KEY, ALPACA_SECRET_KEY=SECRET), quick_broker(timeout=0.5):
            at = ny(DAY, 10, 30)
            run_loop(ws, SkipClock(at, at), once=True, accounts=["unreachable"])

        def record(what: str, proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
            outputs.append((f"{what} stdout", proc.stdout))
            outputs.append((f"{what} stderr", proc.stderr))
            assert no_traceback(proc.stdout + proc.stderr), (what, proc.stderr)
            return proc

        # trading, with ambiguous sends, a rejection, a 500 and an auth failure at the broker
        fake.inject("504_after_accept")
        fake.inject("reject", message="insufficient buying power")
        fake.inject("500", count=2)
        ws.write_accounts(*accounts)
        record("run --once", ws.run_once(timeout=180))
        ws.write_accounts(*accounts, alpaca_account("unreachable", dead))
        record("status --json (all accounts)", ws.botctl("status", "--json"))
        ws.write_accounts(*accounts)
        record("run --once --json", ws.run_once("--json", timeout=180))
        record("run --once debug", ws.botctl("run", "--once", "--cache-dir", str(ws.cache), timeout=180,
                                             env={**ws.env, "BOTCTL_DEBUG": "1"}))
        # the scheduled loop, just before the next session's cycle, on a 30x clock
        ws.env["BOTCTL_CLOCK"] = clock_spec(ny(date(2024, 3, 5), 9, 59, 30), 30)
        clock["now"] = ny(date(2024, 3, 5), 10, 30)
        fake.inject("auth", method="GET", path="/v2/account")
        loop = ws.spawn(ws.argv("run", "--cache-dir", str(ws.cache)))
        for _ in range(80):  # until the loop's cycle has met the auth failure (or 8 s)
            if fake.injected["auth"]:
                time.sleep(0.5)
                break
            time.sleep(0.1)
        loop.send_signal(signal.SIGTERM)
        out, err = loop.communicate(timeout=60)
        record("run (loop)", subprocess.CompletedProcess(loop.args, loop.returncode, out, err))
        ws.env["BOTCTL_CLOCK"] = clock_spec(ny(DAY, 10, 30))
        # the operator's commands
        for args in (["status"], ["status", "--json"], ["plan"], ["plan", "--json"], ["validate"],
                     ["kill", "--flatten", "--timeout", "2"], ["resume"], ["service", "unit"],
                     ["status", "--account", "nope"], ["tail", "--kind", "nope"]):
            record(" ".join(args), ws.botctl(*args))
        for kind in ("events", "orders", "fills", "nav"):
            record(f"tail --json {kind}", ws.botctl("tail", "--json", "-n", "10000", "--kind", kind))
            record(f"tail {kind}", ws.botctl("tail", "-n", "10000", "--kind", kind))
        # a replay with its health endpoint, on the same journal, read while it runs
        port = _free_port()
        replay = ws.spawn(ws.argv("run", "--replay", "2015-01-01:2015-12-31", "--speed", "2000000",
                                  "--health-port", str(port)))
        health = ""
        for _ in range(100):
            with contextlib.suppress(OSError):
                health = _get(f"http://127.0.0.1:{port}/health") + _get(f"http://127.0.0.1:{port}/metrics")
                break
            time.sleep(0.1)
        replay.send_signal(signal.SIGTERM)
        out, err = replay.communicate(timeout=60)
        record("run --replay", subprocess.CompletedProcess(replay.args, replay.returncode, out, err))
        outputs.append(("GET /health + /metrics", health))
        with contextlib.closing(sqlite3.connect(ws.db)) as conn:
            dump = "\n".join(conn.iterdump())
        outputs.append(("journal SQL dump", dump))
        yield {"ws": ws, "outputs": outputs, "dump": dump, "health": health, "fake": fake}


def test_the_run_really_exercised_the_failure_paths(everything):
    """The scan below is only worth something if the secrets had every chance to leak."""
    ws, text = everything["ws"], "\n".join(t for _, t in everything["outputs"])
    status = json.loads(next(t for w, t in everything["outputs"] if w == "status --json (all accounts) stdout"))["accounts"]
    assert status["good"]["last_error"] is None or "order" in status["good"]["last_error"]
    assert "401" in status["wrong"]["last_error"]
    assert "malformed" in status["malformed"]["last_error"], status["malformed"]
    assert "no answer from the broker" in status["unreachable"]["last_error"], status["unreachable"]
    assert everything["fake"].orders(), "nothing was traded"
    assert "INSERT INTO" in everything["dump"] and "botctl_nav" in everything["health"]
    types = {e[0] for e in ws.events()}
    assert {"reconcile.failed", "order.rejected", "kill.orders_canceled"} & types, types
    assert "run paper-" in text


def test_no_key_in_any_output_the_dump_or_the_health_endpoint(everything):
    leaks = [leak for where, text in everything["outputs"] for leak in scan_for_secrets(text, where, ALL_SECRETS)]
    assert leaks == []


def test_no_key_in_any_file_left_on_disk(everything):
    files = [p for p in Path(everything["ws"].root).rglob("*") if p.is_file()]
    assert any(p.name == "journal.db" for p in files) and any(p.suffix == ".parquet" for p in files)
    leaks = [leak for p in files for leak in scan_for_secrets(p.read_bytes(), str(p), ALL_SECRETS)
             if p.name != "accounts.yaml"]
    assert leaks == []
    # accounts.yaml names the variables, never their values
    assert scan_for_secrets((everything["ws"].config / "accounts.yaml").read_bytes(), "accounts.yaml", ALL_SECRETS) == []


@pytest.mark.timeout(60)
def test_the_trading_loop_serves_its_health_endpoint(tmp_path):
    clock = {"now": ny(DAY, 10, 30)}
    with new_chaos_fake(now=lambda: clock["now"]) as fake:
        ws = make_workspace(tmp_path, BOTCTL_CLOCK=clock_spec(ny(DAY, 9, 59, 30), 30))
        ws.write_accounts(alpaca_account("good", fake.url))
        port = _free_port()
        loop = ws.spawn(ws.argv("run", "--cache-dir", str(ws.cache), "--health-port", str(port)))
        try:
            body = None
            for _ in range(150):  # a loaded machine can take seconds to start the bot
                with contextlib.suppress(OSError):
                    body = json.loads(_get(f"http://127.0.0.1:{port}/health", timeout=1))
                    break
                time.sleep(0.1)
            assert body is not None, "nothing listens on --health-port while `botctl run` runs"
        finally:
            loop.send_signal(signal.SIGTERM)
            loop.communicate(timeout=30)
