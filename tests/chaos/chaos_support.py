"""Shared machinery of the chaos suite (tests/chaos) and of its long version
(scripts/chaos_long.py): everything is seeded, so a failing round can be replayed exactly.

Built on the existing test material, not beside it:
- tests/fakes/fake_alpaca.FakeAlpaca, extended here by `ChaosAlpaca` with faults drawn at a
  configured *rate* (the stock fake takes counted rules) and with day orders that expire at
  the close, as they do at Alpaca;
- tests/live/live_support: the workspace, accounts.yaml writer, subprocess runners, journal
  queries and the independently computed rotation targets.

Two ways of driving the bot:
- as a real `botctl` subprocess (crash rounds: SIGKILL needs a process), and
- in-process through `botctl.runtime.trading.run_trading` with a `SkipClock`, a virtual clock
  that stands still while the bot works and jumps to the bot's next wake-up when it sleeps, so
  the real scheduled loop (`botctl run`) crosses days of market time in seconds, and the fake's
  clock is the very same object.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
for _p in (TESTS,):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from botctl.records import OPEN_ORDER_STATUSES  # noqa: E402
from fakes.fake_alpaca import OPEN_STATUSES as FAKE_OPEN_STATUSES  # noqa: E402
from fakes.fake_alpaca import FakeAlpaca  # noqa: E402
from live.live_support import (  # noqa: E402
    KEY,
    REPO,
    SECRET,
    WRONG_KEY,
    WRONG_SECRET,
    Workspace,
    adj_close,
    alpaca_account,
    bundled_bars,
    expected_weights,
    make_workspace,
)

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
# Hypothesis examples (and their time limits) of the bad-input properties are multiplied by this.
FUZZ_SCALE = float(os.environ.get("BOTCTL_CHAOS_FUZZ_SCALE", "1"))
SECRETS = (KEY, SECRET, WRONG_KEY, WRONG_SECRET)

# The kinds of broker fault drawn at a rate (what FakeAlpaca can do, minus auth/forbidden,
# which stop an account on purpose and are tested on their own).
TRADING_PATHS = ("/v2/orders", "/v2/account", "/v2/positions", "/v2/clock")
DATA_PATHS = ("/v2/stocks",)
RATE_FAULTS = ("429", "500", "503", "504_after_accept", "timeout", "timeout_after_accept", "drop",
               "partial_fill", "reject")

# Risk limits the fault runs are checked against: tight enough to bind (the plan holds three
# names at 1.25/3 = 41.7% each, gross 1.25x), loose enough for the plan to reach its targets.
TIGHT_RISK = {
    "max_weight": 0.45,
    "max_gross_leverage": 1.30,
    "max_order_notional": 60000,
    "max_order_pct_nav": 0.50,
    "max_orders_per_cycle": 8,
    "max_orders_per_day": 12,
    "max_rejects": 50,
    "reject_window_minutes": 60,
}


def risk_block(limits: dict[str, float] = TIGHT_RISK) -> str:
    return "risk: {" + ", ".join(f"{k}: {v}" for k, v in limits.items()) + "}"


def daily_strategies(folder: Path) -> None:
    """The shipped strategies.yaml with SectorRotationModel_v1 rebalancing every session, so
    every trading day has orders (the 126-day momentum ranks, and the weights drift)."""
    text = (REPO / "strategies.yaml").read_text()
    marker = "rebalance: monthly            # first trading day of the month, 30 minutes after the open"
    assert marker in text, "the shipped strategies.yaml changed: update chaos_support.daily_strategies"
    (folder / "strategies.yaml").write_text(text.replace(marker, "rebalance: daily", 1))


def sessions_from(first: date, count: int) -> list:
    """`count` XNYS sessions from `first` on (botctl's own calendar adapter)."""
    from botctl.adapters.calendar import sessions

    out = [s for s in sessions(first, first + timedelta(days=count * 2 + 20)) if s.day >= first]
    assert len(out) >= count
    return out[:count]


def ny(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=NY).astimezone(UTC)


def cycle_lines(echoed: list[str]) -> list[str]:
    """The loop's one line per account cycle ("SESSION ACCOUNT: outcome"), without its
    wake-up and after-the-close lines."""
    import re

    return [line for line in echoed if re.match(r"\d{4}-\d{2}-\d{2} [^ ]+: ", line)]


def clock_spec(at: datetime, speed: float = 1.0) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}*{speed:g}"


# --- the fake, with faults at a rate --------------------------------------------------------------


class ChaosAlpaca(FakeAlpaca):
    """FakeAlpaca plus faults drawn at random with probability `rate` on each matching request
    (a seeded RNG, so a run replays exactly), counted by kind in `.injected`.

    Explicit `inject()` rules still come first. `expire_day_orders()` ends the day of every open
    order, as Alpaca does at the close (the stock fake keeps them open forever)."""

    def __init__(self, *, seed: int = 0, rate: float = 0.0, kinds: tuple[str, ...] = RATE_FAULTS,
                 paths: tuple[str, ...] = ("/v2/",), timeout_seconds: float = 0.3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rng = random.Random(seed)
        self.rate = rate
        self.kinds = kinds
        self.paths = paths
        self.timeout_seconds = timeout_seconds
        self.injected: Counter[str] = Counter()

    def _take_fault(self, method: str, path: str) -> dict | None:  # under self._lock
        rule = super()._take_fault(method, path)
        if rule is not None:
            self.injected[rule["kind"]] += 1
            return rule
        if self.rate <= 0 or not path.startswith(self.paths) or self.rng.random() >= self.rate:
            return None
        orders_post = method == "POST" and path == "/v2/orders"
        # partial fills and rejections only mean something for a new order
        choices = [k for k in self.kinds if orders_post or k not in ("partial_fill", "reject")]
        if not choices:
            return None
        kind = self.rng.choice(choices)
        self.injected[kind] += 1
        params = {"seconds": self.timeout_seconds} if kind.startswith("timeout") else {}
        if kind == "partial_fill":
            params["fraction"] = round(self.rng.uniform(0.2, 0.8), 2)
        if kind == "reject":
            params["message"] = "insufficient buying power (chaos)"
        return {"kind": kind, "method": method, "path": path, "left": 1, "params": params}

    # Alpaca answers a new market order "accepted" and fills it a moment later; the stock fake
    # fills it inside the POST. fill_on_submit=False gives the real sequence: the order is
    # accepted, and fills on the next request the fake receives while the market is open.
    fill_on_submit = True
    _holding = False

    def _submit(self, body, now, fraction=None):  # under self._lock
        if self.fill_on_submit:
            return super()._submit(body, now, fraction)
        self._holding = True
        try:
            return super()._submit(body, now, fraction)
        finally:
            self._holding = False

    def _try_fill(self, order, now):
        return False if self._holding else super()._try_fill(order, now)

    def expire_day_orders(self) -> int:
        """Every open order's day ends (status expired): what Alpaca does at the close."""
        from fakes.fake_alpaca import _iso

        with self._lock:
            stamp = _iso(self._utcnow())
            count = 0
            for order in self._orders.values():
                if order["status"] in FAKE_OPEN_STATUSES:
                    order.update(status="expired", expired_at=stamp, updated_at=stamp)
                    count += 1
            return count


def new_chaos_fake(now: Callable[[], datetime], **kwargs) -> ChaosAlpaca:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("secret_key", SECRET)
    kwargs.setdefault("bars", bundled_bars())
    fake = ChaosAlpaca(now=now, **kwargs).start()
    # a client SIGKILLed mid-request resets its connection: expected here, not worth a traceback
    fake._server.handle_error = lambda request, client_address: None
    return fake


# --- a virtual clock for the in-process scheduled loop ----------------------------------------------


class SkipClock:
    """Market time that stands still while the bot works and jumps to the bot's next wake-up
    when it sleeps (Trader.sleep_until asks `real_seconds(remaining)` before each nap).

    Clock steps, like a wall clock stepped by NTP or a machine resumed from suspend:
    - `jumps`: (at, delta): when a nap would reach `at`, the clock lands `delta` further
      (a suspend while the bot sleeps: the nap ends late);
    - `steps`: (at, delta, calls): once time has reached `at`, the clock moves by `delta`
      after `calls` more readings (a step at an arbitrary instant of the bot's work, e.g.
      while it marks the close; delta may be negative).
    `hooks`: callables(old, new) run on every move (the tests expire day orders at the close,
    switch faults on and off, revoke keys...). The clock stops the bot at `end`."""

    TICK = timedelta(microseconds=50)

    def __init__(self, start: datetime, end: datetime, *, jumps: list[tuple[datetime, timedelta]] = (),
                 steps: list[tuple[datetime, timedelta, int]] = ()) -> None:
        self.t = start
        self.end = end
        self.jumps = sorted(jumps)
        self.steps = [list(s) for s in sorted(steps)]
        self.hooks: list[Callable[[datetime, datetime], None]] = []
        self.trader = None
        self.moves: list[tuple[datetime, datetime]] = []
        self.stepped: list[tuple[datetime, datetime]] = []

    def now(self) -> datetime:
        self.t += self.TICK  # time passes while the bot works, a little
        if self.steps and self.t >= self.steps[0][0]:
            if self.steps[0][2] <= 0:
                _, delta, _ = self.steps.pop(0)
                self.stepped.append((self.t, self.t + delta))
                self._move(self.t + delta)
            else:
                self.steps[0][2] -= 1
        return self.t

    def real_seconds(self, market_seconds: float) -> float:
        self.advance(timedelta(seconds=max(market_seconds, 0.0)))
        return 0.0

    def advance(self, delta: timedelta) -> None:
        new = self.t + delta
        while self.jumps and self.jumps[0][0] <= new:
            _, jump = self.jumps.pop(0)
            self.stepped.append((new, new + jump))
            new = new + jump
        self._move(new)

    def _move(self, new: datetime) -> None:
        old, self.t = self.t, new
        self.moves.append((old, new))
        for hook in self.hooks:
            hook(old, new)
        if new >= self.end and self.trader is not None:
            self.trader.stop = True


# What quick_broker() asks of the Alpaca adapter, passed to run_loop's broker factory.
_ALPACA_OPTIONS: dict[str, float] = {}


@contextlib.contextmanager
def quick_broker(timeout: float | None = None, backoff: float = 0.01) -> Iterator[None]:
    """For run_loop inside it: AlpacaBroker's backoff between retries (and optionally its
    per-call timeout) made short, through the broker factory run_trading is given, so a test
    of a never-answering broker takes seconds, not minutes. The retry logic is unchanged."""
    saved = dict(_ALPACA_OPTIONS)
    _ALPACA_OPTIONS["backoff"] = backoff
    if timeout is not None:
        _ALPACA_OPTIONS["timeout"] = timeout
    try:
        yield
    finally:
        _ALPACA_OPTIONS.clear()
        _ALPACA_OPTIONS.update(saved)


@contextlib.contextmanager
def environ(**values: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_plan(ws: Workspace, data_path: Path | None = None, accounts: list[str] | None = None):
    from botctl.cli.common import Globals
    from botctl.cli.common import load_plan as _load_plan

    return _load_plan(Globals(config_dir=ws.config, db=ws.db, data=data_path), accounts=accounts)


def run_loop(ws: Workspace, clock: SkipClock, *, once: bool = False, confirm: bool = True,
             data_path: Path | None = None, accounts: list[str] | None = None) -> dict:
    """`botctl run` (or `run --once`) in this process, on `clock`: the production entry point
    `run_trading`, given the clock and a broker factory. Keys come from os.environ, as in production."""
    from functools import partial

    from botctl.runtime import trading
    from botctl.runtime.wiring import make_broker
    from botctl.store import Store

    plan = load_plan(ws, data_path, accounts)
    echoed: list[str] = []

    def started(trader) -> None:  # the clock stops the loop at its end
        clock.trader = trader

    with Store.open(ws.db) as store:
        outcome = trading.run_trading(plan, store, once=once, data_path=data_path, cache_dir=ws.cache,
                                      confirm_first_cycle=confirm, echo=echoed.append, clock=clock,
                                      broker_factory=partial(make_broker, alpaca_options=dict(_ALPACA_OPTIONS)),
                                      started=started)
    outcome["echo"] = echoed
    return outcome


# --- what the journal and the broker must agree on ---------------------------------------------------


@dataclass
class Ledger:
    """The invariants of a run, as figures (all must be 0 but `broker_orders`)."""

    broker_orders: int = 0
    duplicates: int = 0  # the same (cycle, symbol, side), or the same client id, placed twice
    lost: int = 0  # at the broker and not in the journal, or journaled and never resolved
    fill_mismatches: int = 0  # journal filled qty / fills table vs the broker's filled qty
    position_mismatches: int = 0  # journal's latest positions vs the broker's
    problems: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return not (self.duplicates or self.lost or self.fill_mismatches or self.position_mismatches)


def ledger(ws: Workspace, fake: FakeAlpaca, account: str) -> Ledger:
    out = Ledger()
    at_broker = [o for o in fake.orders() if f"-{account}-" in o["client_order_id"]]
    out.broker_orders = len(at_broker)
    ids = Counter(o["client_order_id"] for o in at_broker)
    cycles = Counter((o["client_order_id"].rsplit("-", 2)[0], o["symbol"], o["side"]) for o in at_broker)
    dup_ids = [i for i, n in ids.items() if n > 1]
    dup_cycles = [k for k, n in cycles.items() if n > 1]
    out.duplicates = len(dup_ids) + len(dup_cycles)
    if out.duplicates:
        out.problems.append(f"placed twice: {dup_ids} {dup_cycles}")
    journal = {o["client_order_id"]: o for o in ws.journal_orders(account)} if ws.db.exists() else {}
    broker_ids = set(ids)
    missing = sorted(broker_ids - set(journal))
    unresolved = sorted(c for c, o in journal.items() if o["status"] in OPEN_ORDER_STATUSES)
    out.lost = len(missing) + len(unresolved)
    if missing:
        out.problems.append(f"at the broker, not in the journal: {missing}")
    if unresolved:
        out.problems.append(f"journaled and never resolved: {[(c, journal[c]['status']) for c in unresolved]}")
    fills = dict(ws.query("SELECT client_order_id, SUM(qty) FROM fills WHERE account = ? GROUP BY client_order_id",
                          account)) if journal else {}
    for order in at_broker:
        row = journal.get(order["client_order_id"])
        if row is None:
            continue
        filled = float(order["filled_qty"])
        if not (math.isclose(row["filled_qty"], filled, rel_tol=1e-9, abs_tol=1e-9)
                and math.isclose(fills.get(order["client_order_id"]) or 0.0, filled, rel_tol=1e-9, abs_tol=1e-9)):
            out.fill_mismatches += 1
            out.problems.append(f"{order['client_order_id']}: broker filled {filled}, journal {row['filled_qty']}, "
                                f"fills {fills.get(order['client_order_id'])}")
    broker_pos = {s: q for s, q in fake.positions().items()}
    journal_pos = ws.latest_positions(account) if journal or ws.db.exists() else {}
    for symbol in set(broker_pos) | set(journal_pos):
        if not math.isclose(broker_pos.get(symbol, 0.0), journal_pos.get(symbol, 0.0), rel_tol=1e-9, abs_tol=1e-6):
            out.position_mismatches += 1
            out.problems.append(f"{symbol}: broker {broker_pos.get(symbol)} journal {journal_pos.get(symbol)}")
    return out


def weights_at(fake: FakeAlpaca, day: date) -> tuple[dict[str, float], float]:
    """Position value / NAV at the fake's prices on `day` (its latest adjusted close)."""
    positions = fake.positions()
    values = {s: q * adj_close(s, day) for s, q in positions.items()}
    nav = fake.cash + sum(values.values())
    return {s: v / nav for s, v in values.items()}, nav


def target_error(fake: FakeAlpaca, day: date, tol: float = 0.02) -> list[str]:
    """What keeps the account off SectorRotationModel_v1's targets for `day` (empty: on them).
    The targets are computed by live_support.expected_weights, independently of botctl."""
    expected = expected_weights(day)
    weights, _ = weights_at(fake, day)
    problems = []
    if set(weights) != set(expected):
        problems.append(f"holds {sorted(weights)}, targets {sorted(expected)}")
    for symbol, target in expected.items():
        if abs(weights.get(symbol, 0.0) - target) > tol:
            problems.append(f"{symbol}: weight {weights.get(symbol, 0.0):.4f} vs target {target:.4f}")
    return problems


def limit_breaches(ws: Workspace, fake: FakeAlpaca, account: str, limits: dict[str, float] = TIGHT_RISK,
                   *, drift: float = 0.04) -> list[str]:
    """Every order the broker holds for `account`, checked against the account's limits at the
    prices the bot decided on (the journal's ref_price); positions checked after the fact at
    the fake's prices, allowing `drift` for the market's move since the decision."""
    breaches = []
    journal = {r[0]: r for r in ws.query(
        "SELECT client_order_id, ref_price, ts_init FROM orders WHERE account = ?", account)}
    per_cycle: Counter[str] = Counter()
    per_day: Counter[str] = Counter()
    navs = {r[0][:10]: r[1] for r in ws.query("SELECT ts_event, nav FROM nav WHERE account = ? ORDER BY id", account)}
    for order in fake.orders():
        cid = order["client_order_id"]
        if f"-{account}-" not in cid:
            continue
        row = journal.get(cid)
        ref = row[1] if row and row[1] else float(order["filled_avg_price"] or 0)
        notional = float(order["qty"]) * ref
        if notional > limits["max_order_notional"] * (1 + 1e-9):
            breaches.append(f"{cid}: notional {notional:,.0f} > max_order_notional {limits['max_order_notional']}")
        per_cycle[cid.rsplit("-", 2)[0]] += 1
        per_day[order["created_at"][:10]] += 1
        if order["side"] == "sell" and float(order["filled_qty"]) > float(order["qty"]) + 1e-9:
            breaches.append(f"{cid}: sold more than ordered")
        nav = max((v for d, v in navs.items() if d < order["created_at"][:10]), default=100_000.0)
        if order["side"] == "buy" and notional / nav > limits["max_order_pct_nav"] * (1 + drift):
            breaches.append(f"{cid}: {notional / nav:.1%} of NAV > max_order_pct_nav")
    for cycle, n in per_cycle.items():
        if n > limits["max_orders_per_cycle"]:
            breaches.append(f"{cycle}: {n} orders > max_orders_per_cycle")
    for day, n in per_day.items():
        if n > limits["max_orders_per_day"]:
            breaches.append(f"{day}: {n} orders > max_orders_per_day")
    return breaches


def exposure_breach(fake: FakeAlpaca, day: date, limits: dict[str, float] = TIGHT_RISK, *,
                    drift: float = 0.04) -> list[str]:
    """Weights and gross leverage at the fake right now, against the limits (+ drift)."""
    weights, nav = weights_at(fake, day)
    out = [f"{s} weight {w:.3f} > {limits['max_weight']}" for s, w in weights.items()
           if w > limits["max_weight"] * (1 + drift)]
    gross = sum(abs(w) for w in weights.values())
    if gross > limits["max_gross_leverage"] * (1 + drift):
        out.append(f"gross {gross:.3f} > {limits['max_gross_leverage']}")
    if any(q < -1e-9 for q in fake.positions().values()):
        out.append(f"short position: {fake.positions()}")
    return out


# --- crash rounds: SIGKILL `botctl run --once` mid-cycle, restart, check -----------------------------


@dataclass
class CrashFigures:
    rounds: int = 0
    kills: int = 0  # rounds whose process was SIGKILLed (the others finished first)
    kills_mid_send: int = 0  # killed after at least one order reached the broker this round
    loop_rounds: int = 0  # rounds whose killed process was the scheduled loop (`botctl run`)
    left_open: int = 0  # orders a killed process left pending/unknown/accepted in the journal
    restarts_ok: int = 0  # restarts that exited 0
    broker_orders: int = 0
    duplicates: int = 0
    lost: int = 0
    fill_mismatches: int = 0
    position_mismatches: int = 0
    off_target: int = 0  # rounds that did not end on the plan's targets after the restart
    elapsed_s: float = 0.0
    log: list[str] = field(default_factory=list)

    def failures(self) -> int:
        return (self.duplicates + self.lost + self.fill_mismatches + self.position_mismatches + self.off_target
                + (self.rounds - self.restarts_ok))


def _wait_for_post(fake: FakeAlpaca, since: int, proc: subprocess.Popen, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if any(m == "POST" and p == "/v2/orders" for m, p, _, _ in fake.requests[since:]):
            return True
        time.sleep(0.01)
    return False


def crash_rounds(ws: Workspace, fake: ChaosAlpaca, clock: dict, *, rounds: int, seed: int,
                 first_day: date = date(2024, 3, 4), account: str = "alp",
                 progress: Callable[[str], None] | None = None) -> CrashFigures:
    """One XNYS session per round, at 10:30 New York. Each round: a `botctl run --once`
    subprocess is SIGKILLed at a seeded random moment (half the time shortly after its first
    order reached the broker, with that send made slow or ambiguous), then restarted to
    completion; then the journal and the broker are compared (Ledger) and the account's
    weights checked against the plan's targets for that day.

    `clock` is the dict the fake's `now` reads ({"now": datetime})."""
    rng = random.Random(seed)
    figures = CrashFigures()
    started = time.monotonic()
    for index, session in enumerate(sessions_from(first_day, rounds)):
        at = ny(session.day, 10, 30)
        clock["now"] = at
        ws.env["BOTCTL_CLOCK"] = clock_spec(at)
        # `botctl run --once`, or the scheduled loop `botctl run` started just before the
        # session's 10:00 cycle on a clock running 30x; killed shortly after its first order
        # reached the broker, or at a random moment (startup, reconciliation, data, sends).
        program = rng.choice(["once", "once", "loop"])
        mode = rng.choice(["after_first_post", "after_first_post", "random"])
        fault = rng.choice(["timeout_after_accept", "504_after_accept", "timeout", "drop", "slow_lookup", "none"])
        seconds = round(rng.uniform(0.3, 1.5), 2)
        if fault in ("timeout_after_accept", "timeout"):
            fake.inject(fault, count=rng.randint(1, 2), seconds=seconds)
        elif fault == "slow_lookup":
            fake.inject("timeout_after_accept", method="GET", path="/v2/orders", count=2, seconds=seconds)
        elif fault != "none":
            fake.inject(fault)
        since = len(fake.requests)
        if program == "loop":
            ws.env["BOTCTL_CLOCK"] = clock_spec(ny(session.day, 9, 59, 30), 30)
            proc = ws.spawn(ws.argv("run", "--cache-dir", str(ws.cache)))
        else:
            proc = ws.spawn(ws.run_argv())
        ws.env["BOTCTL_CLOCK"] = clock_spec(at)
        try:
            if mode == "after_first_post":
                _wait_for_post(fake, since, proc, 20)
                delay = rng.uniform(0.0, 0.4)
            else:
                delay = rng.uniform(0.2, 3.0)
            try:
                proc.wait(timeout=delay)
                outcome = f"exited {proc.returncode}"
            except subprocess.TimeoutExpired:
                posted = any(m == "POST" and p == "/v2/orders" for m, p, _, _ in fake.requests[since:])
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                figures.kills += 1
                figures.kills_mid_send += posted
                outcome = "killed" + (" mid-send" if posted else "")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        fake.clear_faults()
        if ws.db.exists():  # orders the dead process left open (pending/unknown/accepted)
            with contextlib.suppress(sqlite3.Error):
                figures.left_open += ws.query(
                    "SELECT COUNT(*) FROM orders WHERE account = ? AND client_order_id LIKE ? AND status IN "
                    f"({', '.join('?' * len(OPEN_ORDER_STATUSES))})", account,
                    f"%-{account}-{session.day:%Y%m%d}T%", *OPEN_ORDER_STATUSES)[0][0]
        restart = ws.run_once(timeout=180)
        figures.rounds += 1
        figures.loop_rounds += program == "loop"
        figures.restarts_ok += restart.returncode == 0
        book = ledger(ws, fake, account)
        off = target_error(fake, session.day)
        figures.duplicates = book.duplicates  # cumulative by construction (the whole broker history)
        figures.lost = book.lost
        figures.fill_mismatches = book.fill_mismatches
        figures.position_mismatches = book.position_mismatches
        figures.broker_orders = book.broker_orders
        figures.off_target += bool(off)
        line = (f"round {index} {session.day}: {program}/{mode}/{fault}({seconds}s) -> {outcome}; restart exit "
                f"{restart.returncode}; broker orders {book.broker_orders}"
                + ("" if book.ok() and not off else f"; PROBLEMS {book.problems} {off}"))
        if restart.returncode != 0:
            line += f"\n  restart stderr: {restart.stderr.strip()[-500:]}"
        figures.log.append(line)
        if progress:
            progress(line)
    figures.elapsed_s = time.monotonic() - started
    return figures


def crash_workspace(root: Path, fake_url: str, account: str = "alp") -> Workspace:
    ws = make_workspace(root)
    daily_strategies(ws.config)
    ws.write_accounts(alpaca_account(account, fake_url))
    return ws


# --- crash rounds for a signal book on the simulated broker ---------------------------------------

BOOK_ACCOUNT = "signals-sim"  # the shipped account of the shipped signal book, SectorBreakoutBook_v1


def book_workspace(root: Path) -> Workspace:
    """The shipped strategies.yaml and accounts.yaml; runs trade only BOOK_ACCOUNT, whose
    simulated broker keeps its cash and positions in the journal (wiring.journal_sim_broker)."""
    ws = make_workspace(root)
    shutil.copy(REPO / "accounts.yaml", ws.config / "accounts.yaml")
    return ws


def book_run_here(ws: Workspace, at: datetime) -> str:
    """`botctl run --once --account signals-sim` at `at`, in this process (the CLI itself,
    through typer's runner: a second faster than a subprocess); what it printed."""
    from typer.testing import CliRunner

    from botctl.cli.app import app

    done = CliRunner().invoke(app, ws.argv("run", "--once", "--account", BOOK_ACCOUNT, "--cache-dir", str(ws.cache))[3:],
                              env={"BOTCTL_CLOCK": clock_spec(at)})
    assert done.exit_code == 0, done.output
    return done.output


def _cycle_rows(conn: sqlite3.Connection, day: date) -> tuple[int, int]:
    """(orders, fills) journaled so far for the signal book's cycle of `day`."""
    like = f"%-{BOOK_ACCOUNT}-{day:%Y%m%d}T%"
    orders = conn.execute("SELECT COUNT(*) FROM orders WHERE client_order_id LIKE ?", (like,)).fetchone()[0]
    fills = conn.execute("SELECT COUNT(*) FROM fills WHERE client_order_id LIKE ?", (like,)).fetchone()[0]
    return orders, fills


def book_kill_mid_cycle(ws: Workspace, at: datetime, fills_first: int, pause: float, limit: float = 60) -> str:
    """`botctl run --once` as a subprocess at `at`, SIGKILLed inside its cycle: once the
    cycle's orders are committed and `fills_first` of them filled, the test takes the
    journal's priority turnstile (what `botctl kill` takes), so the bot stops before its next
    write transaction, and kills it there after `pause` seconds. What was committed by then."""
    from botctl.store.writer_lock import Turnstile

    day = at.astimezone(NY).date()
    ws.env["BOTCTL_CLOCK"] = clock_spec(at)
    proc = ws.spawn(ws.run_argv("--account", BOOK_ACCOUNT))
    seen = (0, 0)
    try:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and proc.poll() is None:
            if ws.db.exists():
                try:
                    with contextlib.closing(sqlite3.connect(f"file:{ws.db}?mode=ro", uri=True, timeout=5)) as conn:
                        seen = _cycle_rows(conn, day)
                except sqlite3.OperationalError:
                    seen = (0, 0)  # the journal is being created
                if seen[0] and seen[1] >= fills_first:
                    break
            time.sleep(0.001)
        else:
            proc.communicate(timeout=30)
            return f"exited {proc.returncode} before the trigger (orders, fills {seen})"
        with Turnstile(ws.db):
            time.sleep(pause)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    with contextlib.closing(sqlite3.connect(f"file:{ws.db}?mode=ro", uri=True, timeout=5)) as conn:
        orders, fills = _cycle_rows(conn, day)
        marks = conn.execute("SELECT COUNT(*) FROM nav WHERE account = ? AND ts_event >= ?",
                             (BOOK_ACCOUNT, f"{at:%Y-%m-%dT%H:%M}")).fetchone()[0]
    return f"killed after {orders} order(s), {fills} fill(s), {marks} mark(s) of the cycle were committed"


def book_journal(db: Path) -> dict:
    """What a signal book's paper journal holds that must not depend on crashes: its orders,
    fills, per-position state, book events and each session's last NAV mark (ids, times and
    fill ids aside: those are a run's own). Rows in journal order."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        def rows(sql: str) -> list[tuple]:
            return conn.execute(sql, (BOOK_ACCOUNT,)).fetchall()

        marks: dict[str, tuple] = {}
        for ts, nav, cash, gross in rows("SELECT ts_event, nav, cash, gross_exposure FROM nav WHERE account = ? ORDER BY id"):
            at = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(NY)
            marks[at.date().isoformat()] = (nav, cash, gross)
        return {
            "orders": rows("SELECT client_order_id, symbol, side, qty, status, filled_qty, reason, ref_price FROM orders "
                           "WHERE account = ? ORDER BY client_order_id"),
            "fills": rows("SELECT client_order_id, symbol, side, qty, price, commission, as_traded_price FROM fills "
                          "WHERE account = ? ORDER BY client_order_id, id"),
            "position_state": {model: json.loads(state) for model, state in
                               rows("SELECT model, state FROM position_state WHERE account = ? AND scope = 'live'")},
            "book_events": [(t, sym, msg, json.loads(d)) for t, sym, msg, d in
                            rows("SELECT type, symbol, message, details FROM events WHERE account = ? "
                                 "AND subsystem = 'book' ORDER BY id")],
            "nav": marks,
            "warnings": rows("SELECT type, message FROM events WHERE account = ? AND severity != 'INFO' ORDER BY id"),
        }


def differences(a: object, b: object, where: str = "", rel: float = 1e-9) -> list[str]:
    """Where two journal extracts differ (floats within `rel`: a restart sums a NAV's holdings
    in another order)."""
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=rel, abs_tol=1e-9) else [f"{where}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(set(a) ^ set(b))} in one only"]
        return [d for k in a for d in differences(a[k], b[k], f"{where}.{k}", rel)]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: {len(a)} != {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]", rel)]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


# --- the scheduled loop under broker faults at a rate ---------------------------------------------


CLIENT_TIMEOUT = 0.8  # AlpacaBroker's per-call timeout in the faulted loop (10 s in production)


def faulted_loop(root: Path, seed: int, *, sessions: int, rate: float, paths: tuple[str, ...],
                 first: date = date(2024, 3, 4), outage: int | None = None, **fake_kwargs) -> dict:
    """The real scheduled loop (in this process, on a SkipClock) over `sessions` faulted XNYS
    sessions and one clean one, then a restart (`run --once`, in this process) so that every
    order left open is looked up. Day orders expire at each close; exposures are checked at
    each close. `outage`: the index of a session during which every request to `paths`
    answers 500 (retries cannot help). Returns what the checks need; the caller stops
    result["fake"]."""
    days = sessions_from(first, sessions + 1)
    clock = SkipClock(ny(days[0].day, 9, 0), days[-1].close + timedelta(minutes=30))
    # Slow answers outlast the client's timeout, so "timeout" faults are real client-side
    # timeouts (a read that gives up; after acceptance, an order whose fate is unknown).
    fake_kwargs.setdefault("timeout_seconds", CLIENT_TIMEOUT + 0.4)
    fake = new_chaos_fake(now=clock.now, seed=seed, rate=rate, paths=paths, **fake_kwargs)
    exposures: list[str] = []

    def at_close(old, new):
        for index, session in enumerate(days):
            if index == outage and old < ny(session.day, 9, 0) <= new:
                for path in paths:
                    fake.inject("500", method="*", path=path, count=None)
            if index == outage and old < session.close <= new:
                fake.clear_faults()
            if old < session.close <= new:
                exposures.extend(f"{session.day}: {b}" for b in exposure_breach(fake, session.day))
                fake.expire_day_orders()
                if index == len(days) - 2:
                    fake.rate = 0.0  # the faults stop before the last session

    clock.hooks.append(at_close)
    ws = make_workspace(root)
    daily_strategies(ws.config)
    ws.write_accounts(alpaca_account("alp", fake.url, extra=risk_block()))
    started = time.monotonic()
    with environ(ALPACA_API_KEY=KEY, ALPACA_SECRET_KEY=SECRET), quick_broker(timeout=CLIENT_TIMEOUT):
        loop = run_loop(ws, clock)
        injected = dict(fake.injected)
        restart = run_loop(ws, SkipClock(ny(days[-1].day, 15, 0), days[-1].close), once=True)
    return {"ws": ws, "fake": fake, "days": days, "loop": loop, "restart": restart, "injected": injected,
            "exposures": exposures, "elapsed_s": time.monotonic() - started,
            "outage": str(days[outage].day) if outage is not None else None}


# --- signals while a replay writes the journal -----------------------------------------------------


def spawn_replay(db: Path, config: Path = REPO, span: str = "2015-01-01:2024-12-31", *extra: str,
                 **kwargs) -> subprocess.Popen:
    kwargs.setdefault("env", clean_env())
    return subprocess.Popen(botctl_argv("--config-dir", str(config), "--db", str(db), "run", "--replay", span, *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@contextlib.contextmanager
def killed_on_failure(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """The body signals and waits for `proc`; whatever happens, it is not left running."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def wait_for_rows(db: Path, proc: subprocess.Popen, table: str, at_least: int, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"exited {proc.returncode} before writing {table}: {err[-500:]}")
        if db.exists():
            try:
                with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
                    if conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] >= at_least:
                        return
            except sqlite3.OperationalError:
                pass  # the journal is being created
        time.sleep(0.02)
    raise AssertionError(f"no {at_least} rows in {table} after {limit}s")


@dataclass
class ReplayKill:
    signal: str
    returncode: int
    delay: float
    stderr: str
    integrity: str
    problems: list[str]
    lost: dict[str, int]  # committed rows (seen before the signal) missing afterwards, per table
    run_status: str | None


def replay_kill(db: Path, sig: int, rng: random.Random) -> ReplayKill:
    """`run --replay` over ten years, signalled at a random moment after its first order is
    committed; then the journal is checked against what was committed before the signal."""
    proc = spawn_replay(db)
    with killed_on_failure(proc):
        wait_for_rows(db, proc, "orders", 1)
        delay = rng.uniform(0.05, 0.8)
        time.sleep(delay)
        before = snapshot_ids(db)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    after = snapshot_ids(db)
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        row = conn.execute("SELECT status FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()
    return ReplayKill(signal=signal.Signals(sig).name, returncode=proc.returncode, delay=delay, stderr=out + err,
                      integrity=integrity(db), problems=consistency(db),
                      lost={t: len(ids - after[t]) for t, ids in before.items() if ids - after[t]},
                      run_status=row[0] if row else None)


# --- the journal after a fault --------------------------------------------------------------------


def integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def snapshot_ids(db: Path) -> dict[str, set]:
    """The natural keys of every committed record, per table (read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return {
            "orders": {r[0] for r in conn.execute("SELECT client_order_id FROM orders")},
            "fills": {r[0] for r in conn.execute("SELECT fill_id FROM fills")},
            "nav": {r[0] for r in conn.execute("SELECT id FROM nav")},
            "events": {r[0] for r in conn.execute("SELECT id FROM events")},
            "runs": {r[0] for r in conn.execute("SELECT run_id FROM runs")},
        }


def consistency(db: Path) -> list[str]:
    """What a consistent journal guarantees: every fill has its order, every NAV mark of a
    replay or trading run has its positions snapshot (they are written in one transaction),
    no order is filled beyond its quantity or without its fills, and a backtest is journaled
    whole or not at all."""
    problems = []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        orphans = conn.execute("SELECT COUNT(*) FROM fills f LEFT JOIN orders o USING (client_order_id) "
                               "WHERE o.client_order_id IS NULL").fetchone()[0]
        if orphans:
            problems.append(f"{orphans} fill(s) without their order")
        bad = conn.execute(
            "SELECT o.client_order_id, o.filled_qty, COALESCE(SUM(f.qty), 0) FROM orders o "
            "LEFT JOIN fills f USING (client_order_id) GROUP BY o.client_order_id "
            "HAVING ABS(o.filled_qty - COALESCE(SUM(f.qty), 0)) > 1e-6 OR o.filled_qty > o.qty + 1e-6").fetchall()
        if bad:
            problems.append(f"{len(bad)} order(s) whose fills disagree with filled_qty: {bad[:3]}")
        naked = conn.execute(  # backtests journal daily NAV but positions only at the end: not them
            "SELECT n.run_id, n.account, n.ts_event FROM nav n JOIN runs r USING (run_id) "
            "WHERE r.kind != 'backtest' AND n.gross_exposure > 0 AND NOT EXISTS "
            "(SELECT 1 FROM positions p WHERE p.run_id = n.run_id AND p.account = n.account "
            "AND p.ts_event = n.ts_event)").fetchall()
        if naked:
            problems.append(f"{len(naked)} NAV mark(s) without their positions: {naked[:3]}")
        partial = conn.execute("SELECT run_id, status FROM runs r WHERE kind = 'backtest' AND (status != 'finished' "
                               "OR NOT EXISTS (SELECT 1 FROM nav n WHERE n.run_id = r.run_id))").fetchall()
        if partial:
            problems.append(f"backtest(s) journaled in part: {partial}")
    return problems


def scan_for_secrets(blob: bytes | str, where: str, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    data = blob.encode("utf-8", "surrogateescape") if isinstance(blob, str) else blob
    found = []
    for secret in secrets:
        for form in {secret.encode(), secret.encode("utf-16-le"), secret[: len(secret) // 2 + 4].encode()}:
            if form in data:
                found.append(f"{secret[:6]}... in {where}")
    return found


def botctl_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "botctl", *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "BOTCTL_", "APCA_"))}
    env.update(BOTCTL_HEALTH_PORT="0", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def no_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" not in text and "internal error" not in text


__all__ = [name for name in dir() if not name.startswith("_")]
