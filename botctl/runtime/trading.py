"""`botctl run` (paper/live) and `botctl run --once`: the live clock, the schedule, and every
account's cycle, through LiveAccount."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import msgspec

from botctl.errors import BadMarketData, BrokerError, DataError, UsageError, failure_text
from botctl.records import Control, Event, Run, RunKind, Severity, SubmitOrder
from botctl.runtime.live import NEW_YORK, FirstCycleTooLarge, LiveAccount, SuspectBars, cycle_time
from botctl.runtime.cycle import FAILED_STATUSES
from botctl.runtime.wiring import BrokerFactory, current_prices, load_market_data, make_broker
from botctl.runtime.process import STOP_SIGNALS, WallHeartbeat
from botctl.adapters.calendar import Session
from botctl.runtime.scheduler import RETRY, Slot, run_sessions
from botctl.spec.plan import Plan

if TYPE_CHECKING:
    import numpy as np

    from botctl.runtime.health import HealthServer, Telemetry
    from botctl.spec.plan import AccountPlan
    from botctl.store import Store
    from botctl.strategy.bars import Bars

    # (account, bars) -> the external signal score matrices of its signal books, or None
    ExternalScores = Callable[[AccountPlan, Bars], dict[str, np.ndarray] | None]

OWED_SCOPE = "owed"  # guard_state rows holding rebalances owed to the next session
MARK_DELAY = timedelta(minutes=5)  # NAV is marked this long after the close (the last prints are in)


def could_not_trade(outcome: str) -> bool:
    """Did `Trader.trade`'s answer say the cycle failed or the account could not trade? (A halt
    or a closed market is not a failure: nothing was meant to trade.)"""
    return outcome.startswith(("failed", "not trading"))


class LiveClock:
    """Wall-clock time, or an accelerated clock for tests and drills: BOTCTL_CLOCK set to
    `2024-03-01T14:00:00Z*600` starts at that instant and runs 600 times faster."""

    def __init__(self, spec: str | None = None) -> None:
        self.origin: datetime | None = None
        self.speed = 1.0
        if spec:
            try:
                start, speed = spec.split("*")
                self.origin = datetime.fromisoformat(start.replace("Z", "+00:00"))
                self.speed = float(speed)
            except ValueError:
                raise UsageError(f"BOTCTL_CLOCK must look like 2024-03-01T14:00:00Z*600, got {spec!r}") from None
        # Counted from the first reading (the run's start), not from when the CLI parsed it.
        self.t0: float | None = None

    def now(self) -> datetime:
        if self.origin is None:
            return datetime.now(timezone.utc)
        if self.t0 is None:
            self.t0 = time.monotonic()
        return self.origin + timedelta(seconds=(time.monotonic() - self.t0) * self.speed)

    def real_seconds(self, market_seconds: float) -> float:
        return market_seconds / self.speed


def _when(at: datetime) -> str:
    """A time for the run's log: exchange time, with its date and zone."""
    return f"{at.astimezone(NEW_YORK):%Y-%m-%d %H:%M %Z}"


def check_live_opt_in(plan: Plan, live_flag: bool) -> None:
    live = [a.id for a in plan.accounts if a.mode == "live"]
    if live and not live_flag:
        raise UsageError(f"account(s) {', '.join(live)} have mode: live in accounts.yaml; trading real money also needs "
                         "--live on the command line")
    if live_flag and not live:
        raise UsageError("--live was given but no account has mode: live in accounts.yaml")


class Trader:
    """Every account of the plan, run in one process."""

    def __init__(self, plan: Plan, store: Store, *, data_path: Path | None, cache_dir: Path, clock: LiveClock,
                 kind: RunKind, confirm_first_cycle: bool, echo: Callable[[str], None],
                 broker_factory: BrokerFactory = make_broker) -> None:
        self.plan = plan
        self.broker_factory = broker_factory
        self.external_scores: ExternalScores | None = None  # signal books' external signals, per account
        self.store = store
        self.data_path = data_path
        self.cache_dir = cache_dir
        self.clock = clock
        self.confirm = confirm_first_cycle
        self.echo = echo
        now = clock.now()
        self.run = Run(run_id=f"{kind}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", kind=kind, plan_id=plan.plan_id,
                       started_at=datetime.now(timezone.utc), pid=os.getpid(), heartbeat_at=datetime.now(timezone.utc))
        store.upsert_run(self.run)
        self.accounts: dict[str, LiveAccount] = {}
        self.cycled: set[str] = set()  # accounts that have had their first cycle in this run
        self.stop = False
        self._seen_halted: set[str] = set()  # accounts this process has seen halted
        # account -> models whose rebalance failed all of its session: kept in the journal's
        # guard_state table (scope "owed"), so a restart between sessions still owes them
        self.owed: dict[str, list[str]] = {}
        for account in plan.accounts:
            raw = store.guard_state(OWED_SCOPE, account.id)
            if raw and (models := msgspec.json.decode(raw)):
                names = {m.name for m in account.models}
                self.owed[account.id] = [m for m in models if m in names]  # models since removed are not owed
        self._clock_seen: datetime | None = None
        # on real time, whatever BOTCTL_CLOCK says: an accelerated drill must not look dead
        self.beat_if_due = WallHeartbeat(lambda at: store.heartbeat(self.run.run_id, at))
        self.telemetry: Telemetry | None = None  # when the health endpoint is served

    def event(self, type_: str, message: str, *, account: str | None = None, severity: Severity = "INFO",
              symbol: str | None = None, details: dict[str, object] | None = None) -> None:
        self.store.insert(Event(ts_event=self.clock.now(), subsystem="runtime", type=type_, severity=severity,
                                run_id=self.run.run_id, account=account, symbol=symbol, message=message,
                                details=details or {}))

    def start(self) -> None:
        """Startup is recovery: connect and reconcile every account before any trading."""
        now = self.clock.now()
        for account in self.plan.accounts:
            try:
                broker = self.broker_factory(account, self.store)
            except BrokerError as exc:
                self.event("broker.unavailable", f"{exc}; this account will not trade", account=account.id, severity="ERROR")
                continue
            live = LiveAccount(account, broker, self.store, plan_id=self.plan.plan_id, run_id=self.run.run_id)
            live.reconcile(now)
            self.accounts[account.id] = live

    def halted(self, account_id: str) -> Control | None:
        control = self.store.controls().get(account_id)
        if control is not None and control.halted:
            self._seen_halted.add(account_id)
            return control
        if account_id in self._seen_halted:  # resumed while this process ran: say so, as a replay does
            from botctl.runtime.control import halt_cleared_event

            self._seen_halted.discard(account_id)
            self.store.insert(halt_cleared_event(self.run.run_id, account_id, self.clock.now()))
        return None

    def trade(self, account_id: str, *, due: list[str] | None = None, check_open: bool = True) -> str:
        """One cycle for one account; returns what happened, in a few words."""
        outcome = self._trade(account_id, due=due, check_open=check_open)
        self.beat_if_due()
        if self.telemetry is not None:
            live = self.accounts.get(account_id)
            self.telemetry.cycled(self.clock.now())
            if account_id in self.telemetry.accounts:
                self.telemetry.account_state(account_id, halted=self.halted(account_id) is not None,
                                             broker_connected=bool(live and live.ready))
            if could_not_trade(outcome):
                self.telemetry.problem("runtime", "ERROR")
        return outcome

    def _trade(self, account_id: str, *, due: list[str] | None = None, check_open: bool = True) -> str:
        live = self.accounts.get(account_id)
        if live is not None and not live.ready and (live.failed_at is None or self.clock.now() - live.failed_at >= RETRY):
            live.reconcile(self.clock.now())  # the broker may be back (not asked again right after it failed)
        if live is None or not live.ready:
            return "not trading: " + ((live.problem or "not reconciled") if live else "broker unavailable")
        control = self.halted(account_id)
        if control is not None:
            self._act_on_halt(live, control)
            return f"halted ({control.reason}): reconciled, not trading"
        now = self.clock.now()
        account = live.account
        try:
            if check_open and not live.broker.is_open(now):
                self.event("market.closed", "the market is closed: no rebalance", account=account_id)
                return "market closed"
            today = now.astimezone(NEW_YORK).date()
            from botctl.engine.engine import account_signals
            from botctl.strategy.bars import bars_from_frame

            def cache_warning(symbol: str, message: str) -> None:
                self.event("data.cache_damaged", message, account=account_id, severity="WARN", symbol=symbol)

            frame = load_market_data(account, self.data_path, self.cache_dir, today, warn=cache_warning)
            bars = bars_from_frame(frame, account.symbols)
            signals = account_signals(account, bars,
                                      self.external_scores(account, bars) if self.external_scores is not None else None)
            first = account_id not in self.cycled
            # The turnover check guards a plan's first trades on an account (a wrong account, a
            # stale journal), not every restart: a daily rotation may legitimately trade more.
            unproven = first and not self.confirm and not self.store.has_traded(account_id, self.plan.plan_id)
            limit = account.risk.max_first_cycle_turnover if unproven else None
            market = current_prices(account, bars, self.cache_dir)
            prices = market.latest_prices(account.symbols, now)
            sent = live.cycle(bars, signals, due or [m.name for m in account.models], cycle_time(today, account), now,
                              prices=prices, max_turnover=limit, announce=self._announce if first and account.mode == "live" else None)
            self.cycled.add(account_id)
            row = bars.index_of(today - timedelta(days=1))
            closes = {s: float(bars.close[row, bars.symbols.index(s)]) for s in account.symbols}
            nav = live.mark(self.clock.now(), closes).nav
            blocked = live.blocked
            if not sent and blocked:  # it meant to trade and could not: stale data, a limit
                return (f"not trading: all {len(blocked)} order(s) blocked by the risk guard ({blocked[0].message}); "
                        f"NAV ${nav:,.2f}")
            counts: dict[str, int] = {}
            for order in sent:
                counts[order.status] = counts.get(order.status, 0) + 1
            if sent and all(o.status in FAILED_STATUSES for o in sent):  # it meant to trade; the broker took nothing
                return (f"failed: {len(sent)} order(s) sent, none taken by the broker"
                        + "".join(f", {n} {status}" for status, n in sorted(counts.items()))
                        + f", {len(blocked)} blocked; NAV ${nav:,.2f}")
            return (f"{len(sent)} order(s) sent" + "".join(f", {n} {status}" for status, n in sorted(counts.items()))
                    + f", {len(blocked)} blocked; NAV ${nav:,.2f}")
        except FirstCycleTooLarge as exc:
            reason = f"{exc}; check the plan and the account, then `botctl resume` and run with --yes"
            self.store.set_control(Control(account=account_id, halted=True, reason=reason, since=now, who="first-cycle check"))
            self.event("first_cycle.halted", reason, account=account_id, severity="CRITICAL")
            return "halted: " + reason
        except SuspectBars as exc:  # the account cycle recorded its data.rejected
            return f"failed: {exc}"
        except BadMarketData as exc:
            self.event("data.rejected", f"{exc}; no trade on this data, tried again later", account=account_id,
                       severity="WARN", symbol=exc.symbols[0] if exc.symbols else None,
                       details={"symbols": exc.symbols})
            return f"failed: {exc}"
        except (BrokerError, DataError) as exc:
            self.event("cycle.failed", f"{exc}; nothing more is sent this cycle", account=account_id, severity="ERROR")
            return f"failed: {exc}"

    def _announce(self, account_id: str, orders: list[SubmitOrder]) -> None:
        lines = [f"{o.side} {o.qty:g} {o.symbol} (~${o.qty * o.ref_price:,.0f})" for o in orders]
        self.echo(f"LIVE {account_id}: first orders of this run: " + ("; ".join(lines) or "none"))
        self.event("live.first_orders", "; ".join(lines) or "none", account=account_id, severity="WARN")

    def _act_on_halt(self, live: LiveAccount, control: Control) -> None:
        if control.acked_at is not None:
            return
        from botctl.runtime.control import carry_out_halt

        now = self.clock.now()
        carry_out_halt(self.store, live.broker, live.account.id, self.run.run_id, control, now)
        if control.flatten:
            try:
                live.mark(now)  # the book as it is now (the simulator's sells fill at once)
            except BrokerError as exc:
                self.event("mark.failed", str(exc), account=live.account.id, severity="ERROR")
        self.store.set_control(msgspec.structs.replace(control, acked_at=datetime.now(timezone.utc)))

    def heartbeat(self) -> None:
        self.beat_if_due.now()

    def finish(self, status: str, why: str | None = None) -> None:
        self.store.end_run(self.run, status, why or f"{len(self.accounts)} account(s)", datetime.now(timezone.utc))

    # --- the schedule -------------------------------------------------------------------------

    def forever(self) -> str:
        """Sleep while the market is closed; rebalance at each account's scheduled time; mark
        NAV after the close; heartbeat; act on halts within a second; stop cleanly on signal.
        The session walk is runtime.scheduler's, the one `run --replay` uses too."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            run_sessions(_TraderSteps(self), mark_delay=MARK_DELAY, retry=True,
                         ready=lambda a: a in self.accounts and self.accounts[a].ready,
                         before=lambda at, what: self.echo(f"next wake-up {_when(at)}: {what}"))
            return "stopped"
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def mark_after_close(self, session: Session) -> None:
        marks = []
        for account_id, live in self.accounts.items():
            if live.ready:
                try:
                    # Orders answered 'accepted' fill later: look them up before marking.
                    for order in self.store.open_orders(account_id):
                        live._resolve(order, self.clock.now())
                    marks.append(f"{account_id} NAV ${live.mark(self.clock.now()).nav:,.2f}")
                except BrokerError as exc:
                    self.event("mark.failed", str(exc), account=account_id, severity="ERROR")
                    marks.append(f"{account_id} mark failed")
            else:
                marks.append(f"{account_id} not trading ({live.problem})")
        self.echo(f"{session.day} after the close ({_when(self.clock.now())}): " + ("; ".join(marks) or "no account trades"))
        self.heartbeat()

    def _watch_clock(self, now: datetime, expected: datetime | None = None) -> None:
        """Record a clock that jumps (a suspend, an NTP step, a changed system time). The
        schedule copes by itself, since cycles have fixed identities and sessions passed
        are not traded late, but the operator should know why a session was skipped."""
        tolerance = timedelta(seconds=max(120.0, 2.0 * getattr(self.clock, "speed", 1.0)))
        seen, self._clock_seen = self._clock_seen, now
        if seen is not None and now < seen - tolerance:
            self.event("clock.jumped", f"the clock went back {seen - now} (from {seen:%Y-%m-%d %H:%M} to "
                       f"{now:%Y-%m-%d %H:%M} UTC); cycles already run are not run again", severity="WARN")
        elif expected is not None and now > expected + tolerance:
            self.event("clock.jumped", f"the clock jumped {now - expected} forward (woke at {now:%Y-%m-%d %H:%M} UTC "
                       f"instead of {expected:%Y-%m-%d %H:%M}: a suspend or a clock step); sessions passed meanwhile "
                       "are not traded late", severity="WARN")

    def _on_signal(self, signum, frame) -> None:
        self.stop = True

    def sleep_until(self, when: datetime) -> bool:
        """Sleep in short real-time slices, heartbeating and acting on halts; False if stopped."""
        while not self.stop:
            before = self.clock.now()
            self._watch_clock(before)
            remaining = (when - before).total_seconds()
            if remaining <= 0:
                return True
            asked = self.clock.real_seconds(remaining)
            started = time.monotonic()
            time.sleep(min(asked, 0.5))
            # How far the clock may honestly have moved: the real time slept at its speed (a
            # clock that moves itself when asked how long to sleep answers 0: all of it).
            slept = (time.monotonic() - started) * getattr(self.clock, "speed", 1.0) if asked > 0 else remaining
            self._watch_clock(self.clock.now(), before + timedelta(seconds=slept))
            for account_id, live in self.accounts.items():
                control = self.halted(account_id)
                if control is not None and live.ready:
                    self._act_on_halt(live, control)
            self.beat_if_due()
        return False


class _TraderSteps:
    """The scheduler's steps for paper and live: the XNYS calendar around the clock's now,
    each account's cycle through Trader.trade, a failed session's rebalance owed."""

    def __init__(self, trader: Trader) -> None:
        self.trader = trader

    def now(self) -> datetime:
        return self.trader.clock.now()

    def sleep_until(self, when: datetime) -> bool:
        return self.trader.sleep_until(when)

    def next_session(self, now: datetime) -> Session:
        from botctl.adapters.calendar import sessions

        self.trader._watch_clock(now)
        today = now.astimezone(NEW_YORK).date()
        calendar = sessions(today - timedelta(days=120), today + timedelta(days=30))
        upcoming = [s for s in calendar if s.close + MARK_DELAY > now]
        if not upcoming:
            raise DataError("the exchange calendar has no upcoming session")
        self.days = [s.day for s in calendar]
        return upcoming[0]

    def slots(self, session: Session, now: datetime) -> list[Slot]:
        from botctl.strategy.schedule import rebalance_sessions

        trader, out = self.trader, []
        for account_id, live in trader.accounts.items():
            due = [m.name for m in live.account.models if session.day in rebalance_sessions(self.days, m.schedule)]
            due += [name for name in trader.owed.get(account_id, ()) if name not in due]
            # A restart later on a rebalance day re-runs that day's cycle: its client ids are
            # the same, so it finishes what was started and duplicates nothing.
            if due and now <= session.close:
                out.append(Slot(account_id, cycle_time(session.day, live.account), due))
        return out

    def trade(self, session: Session, slot: Slot) -> bool:
        trader = self.trader
        outcome = trader.trade(slot.account, due=slot.due)
        trader.echo(f"{session.day} {slot.account}: {outcome}")
        if could_not_trade(outcome):
            return False
        if trader.owed.pop(slot.account, None):
            trader.store.put_guard_state(OWED_SCOPE, slot.account, b"[]", trader.clock.now())
        return True

    def gave_up(self, session: Session, slot: Slot) -> None:
        trader = self.trader
        trader.owed[slot.account] = slot.due
        trader.store.put_guard_state(OWED_SCOPE, slot.account, msgspec.json.encode(slot.due), trader.clock.now())
        trader.event("cycle.owed", f"the rebalance of {', '.join(slot.due)} failed all session; it is tried again at the "
                     "next session", account=slot.account, severity="WARN")

    def mark(self, session: Session) -> None:
        self.trader.mark_after_close(session)


class TradingOutcome(TypedDict):
    run_id: str
    status: str
    accounts: dict[str, str]  # account -> what its --once cycle did (empty for a long run)


def run_trading(plan: Plan, store: Store, *, once: bool, data_path: Path | None, cache_dir: Path, confirm_first_cycle: bool,
                echo: Callable[[str], None], clock: LiveClock, broker_factory: BrokerFactory = make_broker,
                telemetry: Telemetry | None = None, health: HealthServer | None = None,
                started: Callable[[Trader], None] | None = None,
                external_scores: ExternalScores | None = None) -> TradingOutcome:
    """`run` / `run --once` on `clock` (the CLI builds it from BOTCTL_CLOCK), connecting each
    account with `broker_factory`. `started(trader)` hears of the trader before it starts;
    `external_scores(account, bars)` gives signal books their external signals (feeds.plan_scores)."""
    kind: RunKind = "live" if any(a.mode == "live" for a in plan.accounts) else "paper"
    trader = Trader(plan, store, data_path=data_path, cache_dir=cache_dir, clock=clock, kind=kind,
                    confirm_first_cycle=confirm_first_cycle, echo=echo, broker_factory=broker_factory)
    trader.telemetry = telemetry
    trader.external_scores = external_scores
    if started is not None:
        started(trader)
    if health is not None:
        from botctl.runtime.health import record_address

        record_address(store, trader.run.run_id, health, clock.now())
    status = "finished"
    try:
        trader.start()
        if once:
            ready_first = sorted(plan.accounts, key=lambda a: not (a.id in trader.accounts and trader.accounts[a.id].ready))
            done = {a.id: trader.trade(a.id) for a in ready_first}
            outcome = {a.id: done[a.id] for a in plan.accounts}
        else:
            status = trader.forever()
            outcome = {}
    except BaseException as exc:
        trader.finish("failed", failure_text(exc))
        raise
    trader.finish(status)
    return {"run_id": trader.run.run_id, "status": status, "accounts": outcome}


__all__ = ["LiveClock", "Trader", "check_live_opt_in", "could_not_trade", "run_trading"]
