"""The round trip of external signals: they arrive by webhook while the paper loop trades a
signal book on the loopback fake Alpaca (real alpaca-py, a jumping clock, the feeds on the
run's clock), and `botctl backtest` over that period with a `journal` source on the paper
run's journal places the paper run's orders exactly, at its prices.

The signals are sent in the evenings, between a session's marks and the next open: there
the paper rule (known before the cycle) and the backtest's (known before the open its
simulated order fills at) agree, which is the claim under test; a signal sent between an open
and the cycle would be traded a session earlier by the paper loop, by design (docs/feeds.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from test_parity_paper import ACCOUNT, KEY, SECRET, JumpClock, accounts_yaml, assert_same_orders_and_fills, query

from tests.feeds.feeds_support import SECRET as HOOK_SECRET
from tests.feeds.feeds_support import Sender

START, END = date(2020, 1, 2), date(2020, 3, 31)
UNIVERSE = ["XLK", "XLF", "XLE", "XLV"]
STRATEGIES = f"""\
benchmark: SPY
universes:
  u: [{", ".join(UNIVERSE)}]
strategies:
  FlowBook:
    universe: u
    steps:
      - score_signal: {{kind: flow, weight: 1.0}}
      - select_top_scores: {{min_score: 0.5, max_positions: 2}}
      - weigh_slots: {{}}
      - exit_score_below: {{level: 0.5}}
      - exit_time: {{sessions: 8}}
"""
PAPER_FEEDS = """\
kinds: {flow: {weight: 1.0}}
sources:
  hook: {type: webhook, port: 0, secret_env: PARITY_HOOK_SECRET}
"""
BACKTEST_FEEDS = """\
kinds: {flow: {weight: 1.0}}
sources:
  recorded: {type: journal, path: PAPER_DB}
"""


def evenings() -> list[tuple[datetime, dict]]:
    """(when to send, the signal): every other session at 23:00 UTC (after the close and its
    mark, before the next open), a symbol in turn, most strong and some weak (an exit)."""
    from botctl.adapters.calendar import sessions

    out = []
    for i, session in enumerate(s for s in sessions(START, END - timedelta(days=3)) if s.day >= START):
        if i % 2:
            continue
        at = datetime.combine(session.day, datetime.min.time(), timezone.utc) + timedelta(hours=23)
        n = i // 2
        out.append((at, {"id": f"s{n}", "ts_event": (at - timedelta(minutes=1)).isoformat(), "kind": "flow",
                         "symbol": UNIVERSE[n % len(UNIVERSE)], "score": 0.3 if n % 3 == 2 else 0.9}))
    return out


class SendingClock(JumpClock):
    """A JumpClock that, on its way to the instant slept to, stops at each signal's send time
    and posts it to the run's webhook (the trading thread waits for the 200, which comes once
    the signal is journaled), so each signal is received at its own moment of the run."""

    def __init__(self, start: datetime, end: datetime, plan: list[tuple[datetime, dict]]) -> None:
        super().__init__(start, end)
        self.plan = sorted(plan, key=lambda item: item[0])
        self.sender: Sender | None = None
        self.answers: list[int] = []

    def real_seconds(self, market_seconds: float) -> float:
        target = self.t + timedelta(seconds=market_seconds)
        while self.plan and self.plan[0][0] <= target and self.sender is not None:
            at, body = self.plan.pop(0)
            if at > self.t:
                self.t = at
            self.answers.append(self.sender.post(body, body["id"]).status_code)
        return super().real_seconds((target - self.t).total_seconds())


def paper_run(root: Path, frame: pl.DataFrame) -> tuple[list[str], list[int]]:
    from fakes.fake_alpaca import FakeAlpaca

    from botctl.cli.common import Globals, load_plan
    from botctl.feeds.plan_scores import LiveScores
    from botctl.feeds.runner import feeds_for_run
    from botctl.runtime.trading import run_trading
    from botctl.store import Store

    start = datetime.combine(START, datetime.min.time(), timezone.utc) + timedelta(hours=13)
    end = datetime.combine(END + timedelta(days=1), datetime.min.time(), timezone.utc) + timedelta(hours=1)
    clock = SendingClock(start, end, evenings())
    fake = FakeAlpaca(api_key=KEY, secret_key=SECRET, bars=frame, now=clock.now, fill_model="open").start()
    config = root / "paper-config"
    config.mkdir()
    (config / "strategies.yaml").write_text(STRATEGIES)
    (config / "feeds.yaml").write_text(PAPER_FEEDS)
    (config / "accounts.yaml").write_text(accounts_yaml(
        f"    broker: alpaca\n    data: alpaca\n    base_url: {fake.url}\n    data_url: {fake.url}\n"
        "    api_key_env: PARITY_KEY\n    secret_key_env: PARITY_SECRET", "[FlowBook]"))
    mp = pytest.MonkeyPatch()
    for name, value in (("PARITY_KEY", KEY), ("PARITY_SECRET", SECRET), ("PARITY_HOOK_SECRET", HOOK_SECRET)):
        mp.setenv(name, value)
    lines: list[str] = []
    try:
        plan = load_plan(Globals(config, root / "paper.db", None))
        with Store.open(root / "paper.db", trading=True) as store, \
                feeds_for_run(config, store, plan.symbols, echo=lines.append, clock=clock) as feeds:
            assert feeds is not None
            host, port = feeds.webhooks["hook"].address
            clock.sender = Sender(f"http://{host}:{port}/signals")

            def started(trader) -> None:
                clock.trader = trader
                feeds.attach_run(trader.run.run_id)

            try:
                outcome = run_trading(plan, store, once=False, data_path=None, cache_dir=root / "cache",
                                      confirm_first_cycle=True, echo=lines.append, clock=clock, started=started,
                                      external_scores=LiveScores(plan, config, store, stale=feeds.stale_since,
                                                                 now=clock.now))
            finally:
                clock.sender.close()
        assert outcome["status"] == "stopped", lines
    finally:
        mp.undo()
        fake.stop()
    return lines, clock.answers


def backtest(root: Path, data: Path) -> str:
    config = root / "bt-config"
    config.mkdir()
    (config / "strategies.yaml").write_text(STRATEGIES)
    (config / "feeds.yaml").write_text(BACKTEST_FEEDS.replace("PAPER_DB", str(root / "paper.db")))
    (config / "accounts.yaml").write_text(accounts_yaml("    broker: sim", "[FlowBook]"))
    done = subprocess.run([sys.executable, "-m", "botctl", "--config-dir", str(config), "--db", str(root / "bt.db"),
                           "--data", str(data), "backtest", "--start", str(START), "--end", str(END), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["run_id"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from botctl.adapters.file_data import load_bars

    root = tmp_path_factory.mktemp("signal-round-trip")
    frame = load_bars().filter((pl.col("date") >= date(2018, 1, 1)) & (pl.col("date") <= END))
    data = root / "bars.parquet"
    frame.write_parquet(data)
    lines, answers = paper_run(root, frame)
    bt_run = backtest(root, data)
    return {"bt": root / "bt-backtests.db", "bt_run": bt_run, "paper": root / "paper.db", "lines": lines,
            "answers": answers}


def test_a_backtest_of_the_journaled_webhook_signals_places_the_paper_runs_orders(runs):
    sent = evenings()
    assert runs["answers"] == [200] * len(sent)  # every signal was journaled during the paper run
    received = query(runs["paper"], "SELECT signal_id, ts_received FROM signals ORDER BY ts_received")
    assert [r[0] for r in received] == [body["id"] for _, body in sent]
    # each was received at its own moment of the run (the run's clock), not the wall clock's
    assert [r[1][:16] for r in received] == [f"{at:%Y-%m-%dT%H:%M}" for at, _ in sent]
    assert_same_orders_and_fills(runs)
    reasons = {r[0] for r in query(runs["paper"], "SELECT reason FROM orders WHERE account = ?", ACCOUNT)}
    assert {"entry", "score_below"} <= reasons, reasons  # the signals drove entries and exits
