"""Backtests: run the plan through the engine and the SimBroker over historical bars.

Each account is one book. Each model is also run alone, in a book of its own with the whole
budget, so its figures can be compared with the account's. Only accounts are journaled.
"""

from __future__ import annotations

import bisect
import os
import time
import uuid
from datetime import date, datetime, timezone
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from botctl.engine.metrics import compute_metrics, monthly_returns
from botctl.engine.roundtrips import RoundTrip, TradeFill, round_trips, trade_stats, trip_record as round_trip_record
from botctl.errors import DataError, UsageError
from botctl.records import Run
from botctl.runtime.book import Book, BreakerTrip
from botctl.runtime.session_times import close_at, open_at
from botctl.spec.plan import AccountPlan, Plan
from botctl.strategy.bars import Bars
from botctl.strategy.signals import Signals

if TYPE_CHECKING:
    from botctl.store import Store

DEFAULT_START = date(2015, 1, 1)


class BookCurve(msgspec.Struct):
    name: str
    dates: list[date]
    nav: np.ndarray
    gross: np.ndarray
    traded_notional: float
    trades: int
    blocked: dict[str, int] = {}  # orders the risk guard blocked, by rule
    halted: str | None = None  # why the book is halted at the end, if it is
    trips: list[BreakerTrip] = []  # every circuit breaker trip, in order
    # decisions taken on a move beyond the fixed price collar that the market's move and the
    # symbol's volatility explain (guard.judge_bars): the fixed collar alone would have moved them
    collar_widened: int = 0
    round_trips: list[RoundTrip] = []  # flat-to-flat trades, closed ones first, then those open at the end
    invested: float | None = None  # the money put in (starting cash): what total return is measured from


class BacktestResult(msgspec.Struct):
    run_id: str
    start: date
    end: date
    accounts: dict[str, BookCurve]
    models: dict[str, BookCurve]
    benchmark: BookCurve
    books: list[Book]
    engine_seconds: float
    breakers: str = "halt"
    rebalancing: str = "hold"


def rows_for(bars: Bars, start: date | None, end: date | None) -> tuple[int, int]:
    start = start or DEFAULT_START
    end = end or bars.dates[-1]
    if start > end:
        raise UsageError(f"--start {start} is after --end {end}")
    first = bars.index_of(start)
    if first < 0 or bars.dates[first] < start:
        first += 1
    first = max(first, 1)  # the first traded session needs a prior close to decide on
    last = bars.index_of(end)
    if first < 1 or last < first:
        raise DataError(f"the data ({bars.dates[0]}..{bars.dates[-1]}) has no sessions with a prior close in {start}..{end}")
    return first, last


def run_book(book: Book, first: int, last: int) -> BookCurve:
    """Drive one book from bar `first` to bar `last`; the curve starts at the prior close."""
    bars = book.bars
    book.note_gaps(first, last)
    book.mark_span(first - 1, first - 1)
    minutes = min(m.schedule.after_open_minutes for m in book.account.models)
    # The first session allocates every model; after that, only scheduled sessions trade.
    scheduled = set().union(*book.rebalance_days.values())
    scheduled_rows = [r for r in range(first + 1, last + 1) if bars.dates[r] in scheduled]
    row = first
    while row <= last:
        day = bars.dates[row]
        # Fills take the session's opening price but are stamped when the order was placed.
        placed = open_at(day, minutes)
        book.rebalance(row, book.due(day, force=row == first), placed)
        book.open(row, placed)
        # Holdings stay fixed until the next scheduled session, or the next session at all
        # when a rebalance refused on suspect data is still owed.
        later = bisect.bisect_right(scheduled_rows, row)
        following = row + 1 if book.owed or book.rebalancing == "reweight" else (scheduled_rows[later] if later < len(scheduled_rows) else last + 1)
        book.mark_span(row, following - 1)
        row = following
    return BookCurve(
        name=book.account.id, dates=[bars.dates[r] for r in book.mark_rows],
        nav=np.array(book.mark_nav), gross=np.array(book.mark_gross),
        traded_notional=book.traded_notional, trades=len(book.fills),
        blocked=dict(book.blocks), halted=book.halted_at(last), trips=list(book.trips),
        collar_widened=book.collar_widened, invested=book.account.starting_cash,
    )


def book_round_trips(book: Book, last: int) -> list[RoundTrip]:
    """The book's fills as round trips, marked at the session `last` for those still open."""
    reasons = {o.client_order_id: o.reason for o in book.orders}
    fills = [TradeFill(f.symbol, f.side, f.qty, f.price, f.ts_event, reasons.get(f.client_order_id, "rebalance"),
                       f.commission) for f in book.fills]
    close, column = book.bars.close, book.signals.columns
    return round_trips(fills, sessions=book.bars.dates[: last + 1],
                       closes=lambda symbol, a, b: close[a: b + 1, column[symbol]],
                       last_prices=book.broker.last_price, open_reason="halt" if book.halted_at(last) else "end")


def model_account(account: AccountPlan, model_name: str) -> AccountPlan:
    model = next(m for m in account.models if m.name == model_name)
    solo = msgspec.structs.replace(model, budget=1.0)
    return msgspec.structs.replace(account, id=model_name, models=(solo,), symbols=model.symbols)


def run_backtest(plan: Plan, bars: Bars, *, start: date | None = None, end: date | None = None,
                 breakers: str = "halt", rebalancing: str = "hold",
                 external_scores: Mapping[str, np.ndarray] | None = None) -> BacktestResult:
    """`breakers` is what a tripped circuit breaker does (book.BREAKER_MODES); `rebalancing`
    what a book does between scheduled rebalances (book.REBALANCING_MODES); `external_scores`
    the signal books' external signal matrices (feeds.plan_scores)."""
    first, last = rows_for(bars, start, end)
    run_id = f"bt-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    clock = time.perf_counter()
    # One signal set for the whole plan: books that share a model share its signals.
    signals = Signals(bars, tuple(step for a in plan.accounts for m in a.models for step in m.steps), external_scores)
    books = [Book(account, bars, run_id=run_id, namespace=run_id, signals=signals, breakers=breakers,
                  rebalancing=rebalancing) for account in plan.accounts]
    accounts = {b.account.id: run_book(b, first, last) for b in books}
    solos: dict[str, Book] = {}
    models: dict[str, BookCurve] = {}
    for account in plan.accounts:
        if len(account.models) == 1 and abs(account.models[0].budget - 1.0) < 1e-12:
            # A one-model account at full budget *is* that model's solo book: reuse its curve.
            models.setdefault(account.models[0].name, accounts[account.id])
        for model in account.models:
            if model.name not in models:
                solo = Book(model_account(account, model.name), bars, run_id=run_id, namespace=run_id, signals=signals,
                            breakers=breakers, rebalancing=rebalancing)
                models[model.name] = run_book(solo, first, last)
                solos[model.name] = solo
    engine_seconds = time.perf_counter() - clock
    # Reporting, like the metrics: round trips are read off each book's fills after the run.
    for book in books:
        accounts[book.account.id].round_trips = book_round_trips(book, last)
    for name, solo in solos.items():
        models[name].round_trips = book_round_trips(solo, last)
    column = bars.symbols.index(plan.benchmark)
    bench_close = bars.close[first - 1: last + 1, column]
    base_cash = plan.accounts[0].starting_cash
    benchmark = BookCurve(name=plan.benchmark, dates=list(bars.dates[first - 1: last + 1]),
                          nav=base_cash * bench_close / bench_close[0], gross=np.full(len(bench_close), base_cash),
                          traded_notional=0.0, trades=0, invested=base_cash)
    return BacktestResult(run_id, bars.dates[first], bars.dates[last], accounts, models, benchmark, books, engine_seconds,
                          breakers, rebalancing)


def curve_metrics(curve: BookCurve, benchmark: BookCurve | None, risk_free: float) -> dict[str, Any]:
    gross = curve.gross if benchmark is not None else None
    # Traded notional counts both legs; turnover is reported one-way (a full switch = 100%).
    metrics: dict[str, Any] = compute_metrics(curve.dates, curve.nav, benchmark_nav=benchmark.nav if benchmark else None,
                              risk_free=risk_free, turnover_notional=curve.traded_notional / 2, trades=curve.trades,
                              gross_exposure=gross, invested=curve.invested)
    if benchmark is not None:
        metrics["blocked"] = dict(sorted(curve.blocked.items()))
        metrics["halted"] = curve.halted
        metrics["collar_widened"] = curve.collar_widened
        metrics["breaker_trips"] = [trip_record(t, curve.dates[-1]) for t in curve.trips]
        metrics["trade_stats"] = trade_stats(curve.round_trips)
        metrics["round_trips"] = [round_trip_record(t) for t in curve.round_trips]
    return metrics


def trip_record(trip: BreakerTrip, end: date) -> dict:
    """A breaker trip as `backtest --json` gives it: the session it tripped at, the rule, the
    numbers compared, when trading resumed (None: halted to the end) and the rebalances skipped."""
    resumed = trip.resumed_at if trip.resumed_at is not None and trip.resumed_at <= end else None
    return {"rule": trip.rule, "at": trip.at.date().isoformat(), "value": trip.value, "limit": trip.limit,
            "resumed_at": resumed.isoformat() if resumed else None, "reason": trip.reason,
            "skipped_rebalances": [d.isoformat() for d in trip.skipped]}


def summary(result: BacktestResult, *, risk_free: float = 0.0) -> dict:
    """The `backtest --json` object."""
    bench = curve_metrics(result.benchmark, None, risk_free)
    bench.pop("trades", None)
    bench.pop("turnover", None)
    # A one-model account shares its curve with its model (run_backtest): measured once.
    measured: dict[int, dict] = {}

    def metrics(curve: BookCurve) -> dict:
        found = measured.get(id(curve))
        if found is None:
            found = measured[id(curve)] = curve_metrics(curve, result.benchmark, risk_free)
        return dict(found)  # each entry its own mapping; the figures are the same objects

    return {
        "run_id": result.run_id,
        "start": result.start.isoformat(),
        "end": result.end.isoformat(),
        "breakers": result.breakers,
        "rebalancing": result.rebalancing,
        "models": {n: metrics(c) for n, c in result.models.items()},
        "accounts": {n: metrics(c) for n, c in result.accounts.items()},
        "benchmark": {"symbol": result.benchmark.name, **bench},
    }


def journal_backtest(store: Store, plan: Plan, result: BacktestResult) -> None:
    """Write the run, its final orders, fills, daily NAV, events and closing positions."""
    now = datetime.now(timezone.utc)
    run = Run(run_id=result.run_id, kind="backtest", plan_id=plan.plan_id, started_at=now, status="finished",
              pid=os.getpid(), ended_at=now, period_start=result.start.isoformat(), period_end=result.end.isoformat())
    with store.transaction():
        store.upsert_run(run)
        for book in result.books:
            final = {o.client_order_id: o for o in book.orders}  # each order's last state
            store.insert_many(final.values())
            store.insert_many(book.fills)
            closes = [close_at(book.bars.dates[r]) for r in book.mark_rows]
            store.insert_many(book.snapshot(i, ts) for i, ts in enumerate(closes))
            store.insert_many(book.events)
            store.insert_many(book.positions(closes[-1]))


def monthly_tables(result: BacktestResult) -> dict:
    """Monthly returns per curve, named as the report names them, the benchmark last."""
    curves = {**{f"account {n}": c for n, c in result.accounts.items()},
              **{f"model {n}": c for n, c in result.models.items()}, result.benchmark.name: result.benchmark}
    return {name: monthly_returns(c.dates, c.nav) for name, c in curves.items()}


def step_text(step) -> str:
    """A strategy step with its parameters, as written in strategies.yaml."""
    fields = msgspec.to_builtins(step)
    name = fields.pop("step")
    return f"{name}: {{{', '.join(f'{k}: {v}' for k, v in fields.items())}}}"


def report_context(plan: Plan, result: BacktestResult, body: dict, *, data_source: str) -> dict:
    """What the HTML report says about the run beyond the curves: ids, data, models, round trips."""
    models: dict[str, dict[str, object]] = {}
    for account in plan.accounts:
        for model in account.models:
            schedule = model.schedule
            models.setdefault(model.name, {
                "description": model.description, "universe": ", ".join(model.universe),
                "schedule": f"{schedule.every}, session {schedule.day} of the period, "
                            f"{schedule.after_open_minutes} min after the open",
                "steps": [step_text(step) for step in model.steps],
            })
    trips = {**{f"account {n}": m["round_trips"] for n, m in body["accounts"].items()},
             **{f"model {n}": m["round_trips"] for n, m in body["models"].items()}}
    return {"run_id": result.run_id, "plan_id": plan.plan_id, "data_source": data_source,
            "breakers": result.breakers, "rebalancing": result.rebalancing, "models": models, "round_trips": trips}
