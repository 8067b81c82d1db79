"""Shared pieces of the live-trading tests: a config folder with Alpaca accounts pointed at a
FakeAlpaca, botctl run as a real subprocess, journal reads, and the expected rotation targets
computed independently of botctl (straight from the bundled adjusted closes)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl

UTC = timezone.utc
REPO = Path(__file__).resolve().parents[2]

# Distinctive credentials: they must never show up in the journal or in any output.
KEY = "PKTESTKEY1234567890XYZ"
SECRET = "s3cr3tTESTsecretVALUE0123456789abcdef"
# The keys of an account that exports wrong ones (also secrets: they must not leak either).
WRONG_KEY = "PKWRONGKEY0987654321QQ"
WRONG_SECRET = "wr0ngSECRETvalue9876543210zyxwvutsrq"

# Friday 2024-03-01, 10:30 New York: the first session of March, a monthly rebalance day.
OPEN_AT = datetime(2024, 3, 1, 15, 30, tzinfo=UTC)
CLOCK_OPEN = "2024-03-01T15:30:00Z*1"
REBALANCE_DAY = date(2024, 3, 1)

ROTATION = ["XLK", "XLF", "XLE", "XLV", "XLI", "XLP", "XLU", "XLY", "XLC", "XLB", "XLRE", "TLT"]

# Every command's stdout/stderr seen by this process, for the secrets test.
OUTPUTS: list[str] = []


@functools.cache
def bundled_bars() -> pl.DataFrame:
    from botctl.adapters.file_data import bundled_data_path

    return pl.read_parquet(bundled_data_path())


def adj_close(symbol: str, day: date) -> float:
    """The latest adjusted close dated <= day (what FakeAlpaca quotes and fills at)."""
    frame = bundled_bars().filter((pl.col("symbol") == symbol) & (pl.col("date") <= day)).sort("date")
    return float(frame["adj_close"][-1])


def expected_weights(day: date = REBALANCE_DAY, lookback: int = 126, top: int = 3, gross: float = 1.25) -> dict[str, float]:
    """SectorRotationModel_v1's target for `day`, from the bars closed before it: 126-day
    momentum on adjusted closes, the top 3 with positive momentum, gross/3 each."""
    momentum = {}
    for symbol in ROTATION:
        closes = (bundled_bars().filter((pl.col("symbol") == symbol) & (pl.col("date") < day))
                  .sort("date")["adj_close"].to_list())
        if len(closes) > lookback:
            momentum[symbol] = closes[-1] / closes[-1 - lookback] - 1.0
    ranked = sorted((s for s in momentum if momentum[s] > 0), key=lambda s: momentum[s], reverse=True)[:top]
    return {s: gross / top for s in ranked}


def fake_weights(fake, day: date = REBALANCE_DAY) -> tuple[dict[str, float], float]:
    """Position value / NAV at the fake's prices, and that NAV."""
    positions = fake.positions()
    values = {s: q * adj_close(s, day) for s, q in positions.items()}
    nav = fake.cash + sum(values.values())
    return {s: v / nav for s, v in values.items()}, nav


def new_fake(**kwargs):
    from fakes.fake_alpaca import FakeAlpaca

    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("secret_key", SECRET)
    kwargs.setdefault("bars", bundled_bars())
    kwargs.setdefault("now", lambda: OPEN_AT)
    return FakeAlpaca(**kwargs).start()


def alpaca_account(name: str, url: str, *, mode: str = "paper", key_env: str | None = None,
                   secret_env: str | None = None, models: str = "[SectorRotationModel_v1]", extra: str = "") -> str:
    lines = [f"{name}:", "  broker: alpaca", f"  mode: {mode}", "  data: alpaca", f"  base_url: {url}",
             f"  data_url: {url}", f"  models: {models}"]
    if key_env:
        lines.append(f"  api_key_env: {key_env}")
    if secret_env:
        lines.append(f"  secret_key_env: {secret_env}")
    if extra:
        lines += ["  " + line for line in textwrap.dedent(extra).strip().splitlines()]
    return "\n".join(lines)


@dataclass
class Workspace:
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def db(self) -> Path:
        return self.root / "journal.db"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def write_accounts(self, *blocks: str) -> None:
        body = "accounts:\n" + "\n".join(textwrap.indent(b, "  ") for b in blocks) + "\nhealth: {host: 127.0.0.1, port: 0}\n"
        (self.config / "accounts.yaml").write_text(body)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "botctl", "--config-dir", str(self.config), "--db", str(self.db), *args]

    def run_argv(self, *extra: str) -> list[str]:
        return self.argv("run", "--once", "--cache-dir", str(self.cache), *extra)

    def botctl(self, *args: str, timeout: float = 90, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.argv(*args), env=env or self.env, capture_output=True, text=True, timeout=timeout)
        OUTPUTS.extend([proc.stdout, proc.stderr])
        return proc

    def run_once(self, *extra: str, timeout: float = 90) -> subprocess.CompletedProcess:
        return self.botctl("run", "--once", "--cache-dir", str(self.cache), *extra, timeout=timeout)

    def spawn(self, argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def status(self) -> dict:
        proc = self.botctl("status", "--json")
        assert proc.returncode in (0, 1), proc.stderr
        return json.loads(proc.stdout)

    def query(self, sql: str, *params) -> list[tuple]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            return conn.execute(sql, params).fetchall()

    def journal_orders(self, account: str | None = None) -> list[dict]:
        sql = "SELECT client_order_id, account, symbol, side, qty, status, filled_qty, run_id FROM orders"
        rows = self.query(sql + (" WHERE account = ?" if account else "") + " ORDER BY id", *([account] if account else []))
        keys = ["client_order_id", "account", "symbol", "side", "qty", "status", "filled_qty", "run_id"]
        return [dict(zip(keys, r)) for r in rows]

    def latest_positions(self, account: str) -> dict[str, float]:
        """The positions snapshot that goes with the account's latest NAV mark."""
        nav = self.query("SELECT run_id, ts_event FROM nav WHERE account = ? ORDER BY id DESC LIMIT 1", account)
        if not nav:
            return {}
        rows = self.query("SELECT symbol, qty FROM positions WHERE account = ? AND run_id = ? AND ts_event = ?",
                          account, *nav[0])
        return {s: q for s, q in rows if q}

    def events(self, account: str | None = None) -> list[tuple[str, str, str]]:
        sql = "SELECT type, severity, message FROM events"
        return self.query(sql + (" WHERE account = ?" if account else "") + " ORDER BY id", *([account] if account else []))


def make_workspace(tmp_path: Path, **env_overrides: str | None) -> Workspace:
    ws = Workspace(tmp_path)
    ws.config.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "strategies.yaml", ws.config / "strategies.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "BOTCTL_", "APCA_"))}
    env.update(ALPACA_API_KEY=KEY, ALPACA_SECRET_KEY=SECRET, BOTCTL_HEALTH_PORT="0", BOTCTL_CLOCK=CLOCK_OPEN,
               PYTHONUNBUFFERED="1")
    for name, value in env_overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    ws.env = env
    return ws


def assert_weights_match(fake, expected: dict[str, float], *, tol: float = 0.02) -> None:
    weights, nav = fake_weights(fake)
    assert set(weights) == set(expected), f"held {sorted(weights)}, plan targets {sorted(expected)}"
    for symbol, target in expected.items():
        assert abs(weights[symbol] - target) <= tol, f"{symbol}: weight {weights[symbol]:.4f} vs target {target:.4f}"
    assert abs(sum(weights.values()) - sum(expected.values())) <= tol * len(expected)
    assert nav > 0


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float):
    """Poll `predicate` until it returns something true; fail if the bot exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"botctl exited {proc.returncode} while waiting for {what}:\n{out}\n{err}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
