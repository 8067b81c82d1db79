"""One account's trouble is that account's: auth failure, a broker that never answers, a clock
that jumps, a market holiday and a half day.

Two Alpaca accounts, each on its own fake, run by the real scheduled loop (`run_trading`) in
this process on a SkipClock (market time that jumps to the bot's next wake-up, shared with both
fakes). The account in trouble stops or waits, with an event that says why; the other one
trades every session as if nothing happened.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from chaos_support import (
    KEY,
    SECRET,
    SkipClock,
    alpaca_account,
    daily_strategies,
    environ,
    ledger,
    make_workspace,
    new_chaos_fake,
    ny,
    quick_broker,
    run_loop,
    sessions_from,
    target_error,
)

UTC = timezone.utc
FIRST = date(2024, 3, 4)
TIMEOUT = 0.5  # AlpacaBroker's per-call timeout in these tests (10 s in production)


class Pair:
    """Accounts `good` and `bad` on two fakes sharing one SkipClock."""

    def __init__(self, tmp_path, clock: SkipClock, *, plan_daily: bool = True) -> None:
        self.clock = clock
        self.good = new_chaos_fake(now=clock.now)
        self.bad = new_chaos_fake(now=clock.now)
        self.ws = make_workspace(tmp_path)
        if plan_daily:
            daily_strategies(self.ws.config)
        self.ws.write_accounts(alpaca_account("good", self.good.url), alpaca_account("bad", self.bad.url))

    def at(self, when: datetime, action) -> None:
        def hook(old, new):
            if old < when <= new:
                action()
        self.clock.hooks.append(hook)

    def run(self, *, once: bool = False) -> dict:
        with environ(ALPACA_API_KEY=KEY, ALPACA_SECRET_KEY=SECRET), quick_broker(timeout=TIMEOUT):
            return run_loop(self.ws, self.clock, once=once)

    def order_days(self, fake) -> set[str]:
        return {o["created_at"][:10] for o in fake.orders()}

    def events(self, account: str, severity=("WARN", "ERROR", "CRITICAL")) -> list[tuple[str, str, str]]:
        return [e for e in self.ws.events(account) if e[1] in severity]

    def close(self) -> None:
        self.good.stop()
        self.bad.stop()


@pytest.fixture
def week():
    return sessions_from(FIRST, 3)


def loop_clock(days, **kwargs) -> SkipClock:
    return SkipClock(ny(days[0].day, 9, 0), days[-1].close + timedelta(minutes=30), **kwargs)


@pytest.mark.timeout(90)
def test_keys_revoked_mid_run_stop_that_account_with_an_auth_error_and_the_other_goes_on(tmp_path, week):
    pair = Pair(tmp_path, loop_clock(week))
    try:
        pair.at(ny(week[1].day, 9, 0), lambda: setattr(pair.bad, "api_key", "PKREVOKED00000000000"))
        loop = pair.run()
        assert loop["status"] == "stopped", loop
        assert pair.order_days(pair.good) == {str(s.day) for s in week}  # every session
        assert pair.order_days(pair.bad) == {str(week[0].day)}  # only before the revocation
        errors = pair.events("bad", ("ERROR", "CRITICAL"))
        auth = [e for e in errors if "401" in e[2] and "not authorized" in e[2]]
        assert len({e[0] for e in auth}) >= 1 and len(auth) >= 2, errors  # every cycle and mark after
        assert pair.events("good", ("ERROR", "CRITICAL")) == []
        assert ledger(pair.ws, pair.good, "good").ok()
        assert target_error(pair.good, week[-1].day) == []
        status = pair.ws.status()["accounts"]
        assert "401" in status["bad"]["last_error"] and status["good"]["last_error"] is None
    finally:
        pair.close()


@pytest.mark.timeout(120)
def test_a_broker_that_stops_answering_fails_that_account_s_cycle_and_it_trades_again_when_back(tmp_path, week):
    pair = Pair(tmp_path, loop_clock(week))
    try:
        hang = lambda: pair.bad.inject("timeout", method="*", path="/v2/", count=None, seconds=3)  # noqa: E731
        pair.at(ny(week[1].day, 9, 0), hang)
        pair.at(ny(week[2].day, 9, 0), pair.bad.clear_faults)
        loop = pair.run()
        assert loop["status"] == "stopped", loop
        assert pair.order_days(pair.good) == {str(s.day) for s in week}
        assert pair.order_days(pair.bad) == {str(week[0].day), str(week[2].day)}
        failed = [e for e in pair.events("bad", ("ERROR",)) if e[0] in ("cycle.failed", "mark.failed")]
        assert failed and all("no answer from the broker" in e[2] for e in failed), failed
        assert pair.events("good", ("ERROR", "CRITICAL")) == []
        pair.clock = SkipClock(ny(week[-1].day, 15, 0), week[-1].close)
        pair.run(once=True)  # a restart resolves what the hung sends left open
        for account, fake in (("good", pair.good), ("bad", pair.bad)):
            assert ledger(pair.ws, fake, account).ok(), account
            assert target_error(fake, week[-1].day) == [], account
    finally:
        pair.close()


@pytest.mark.timeout(60)
def test_a_broker_that_never_answers_at_startup_does_not_trade_and_says_why_the_other_trades(tmp_path, week):
    pair = Pair(tmp_path, SkipClock(ny(week[0].day, 10, 30), week[0].close))
    try:
        pair.bad.inject("timeout", method="*", path="/v2/", count=None, seconds=3)
        started = datetime.now(UTC)
        outcome = pair.run(once=True)
        took = (datetime.now(UTC) - started).total_seconds()
        assert outcome["accounts"]["bad"].startswith("not trading: reconciliation failed"), outcome
        assert "order(s) sent" in outcome["accounts"]["good"], outcome
        assert pair.bad.orders() == [] and target_error(pair.good, week[0].day) == []
        failed = [e for e in pair.events("bad", ("ERROR",)) if e[0] == "reconcile.failed"]
        assert failed and "no answer from the broker" in failed[0][2] and "will not trade" in failed[0][2], failed
        assert took < 5 * (TIMEOUT + 1) + 10  # bounded: retries x timeout, not forever
        status = pair.ws.status()["accounts"]
        assert "reconciliation failed" in status["bad"]["last_error"]
    finally:
        pair.close()


@pytest.mark.timeout(90)
def test_an_account_whose_broker_was_down_at_startup_trades_once_the_broker_is_back(tmp_path, week):
    pair = Pair(tmp_path, loop_clock(week[:2]))
    try:
        pair.bad.inject("timeout", method="*", path="/v2/", count=None, seconds=3)
        pair.at(ny(week[0].day, 12, 0), pair.bad.clear_faults)
        loop = pair.run()
        assert loop["status"] == "stopped"
        assert pair.order_days(pair.good) == {str(week[0].day), str(week[1].day)}
        # the failed cycle is tried again later in the session, and trades once the broker is back
        assert pair.order_days(pair.bad) == {str(week[0].day), str(week[1].day)}, loop["echo"]
        first_day = [line for line in loop["echo"] if line.startswith(f"{week[0].day} bad:")]
        assert len(first_day) >= 2 and first_day[0].startswith(f"{week[0].day} bad: not trading"), first_day
        assert "order(s) sent" in first_day[-1], first_day
    finally:
        pair.close()


# --- clocks that jump -------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_a_clock_that_jumps_forward_skips_the_lost_sessions_and_trades_the_next_once(tmp_path):
    days = sessions_from(FIRST, 5)  # Mon 4 .. Fri 8 March 2024
    # A suspend: asleep during the nap after Tuesday's cycle, awake two days later.
    clock = loop_clock(days, jumps=[(ny(days[1].day, 11, 0), timedelta(days=2))])
    pair = Pair(tmp_path, clock)
    try:
        loop = pair.run()
        assert loop["status"] == "stopped" and clock.stepped, loop
        for fake, account in ((pair.good, "good"), (pair.bad, "bad")):
            # Wed 6 and Thu 7 were slept through: no late, catch-up or repeated trading
            assert pair.order_days(fake) == {str(days[0].day), str(days[1].day), str(days[4].day)}, account
            book = ledger(pair.ws, fake, account)
            assert book.duplicates == 0 and book.fill_mismatches == 0, book
            assert target_error(fake, days[4].day) == [], account
            cycles = {o["client_order_id"].rsplit("-", 2)[0][-13:] for o in fake.orders()}
            assert cycles == {f"{s.day:%Y%m%d}T1500" for s in (days[0], days[1])} | {f"{days[4].day:%Y%m%d}T1500"}
    finally:
        pair.close()


@pytest.mark.timeout(90)
def test_a_clock_stepped_back_after_the_close_re_runs_nothing(tmp_path):
    days = sessions_from(FIRST, 3)
    # Stepped back 7 hours just as the bot marks Monday's close: Monday "comes again".
    clock = loop_clock(days, steps=[(days[0].close + timedelta(minutes=5), timedelta(hours=-7), 1)])
    pair = Pair(tmp_path, clock)
    try:
        loop = pair.run()
        assert loop["status"] == "stopped" and clock.stepped, loop
        for fake, account in ((pair.good, "good"), (pair.bad, "bad")):
            book = ledger(pair.ws, fake, account)
            assert book.duplicates == 0 and book.lost == 0 and book.position_mismatches == 0, book
            assert pair.order_days(fake) == {str(s.day) for s in days}
            assert target_error(fake, days[-1].day) == [], account
        assert [e[1] for e in pair.ws.events() if e[0] == "clock.jumped" and "went back" in e[2]] == ["WARN"]
    finally:
        pair.close()


@pytest.mark.timeout(90)
def test_a_clock_jump_is_reported_by_an_event(tmp_path):
    days = sessions_from(FIRST, 3)
    clock = loop_clock(days, jumps=[(ny(days[0].day, 11, 0), timedelta(days=1))])
    pair = Pair(tmp_path, clock)
    try:
        assert pair.run()["status"] == "stopped"
        warned = [e for e in pair.ws.events() if e[0] == "clock.jumped"]
        assert len(warned) == 1 and warned[0][1] == "WARN" and "forward" in warned[0][2], pair.ws.events()
    finally:
        pair.close()


# --- holidays and half days ---------------------------------------------------------------------


JULY = [date(2024, 7, d) for d in (1, 2, 3, 5)]  # sessions; Wed 3 closes at 13:00; Thu 4 is a holiday


@pytest.mark.timeout(90)
def test_the_loop_waits_through_a_holiday_and_marks_a_half_day_at_its_early_close(tmp_path):
    days = sessions_from(JULY[0], 4)
    assert [s.day for s in days] == JULY
    assert days[2].close == datetime(2024, 7, 3, 17, 0, tzinfo=UTC)  # 13:00 New York
    pair = Pair(tmp_path, loop_clock(days))
    try:
        loop = pair.run()
        assert loop["status"] == "stopped", loop
        for fake, account in ((pair.good, "good"), (pair.bad, "bad")):
            assert pair.order_days(fake) == {str(d) for d in JULY}, account  # none on the 4th
            assert ledger(pair.ws, fake, account).ok(), account
            marks = [r[0] for r in pair.ws.query("SELECT ts_event FROM nav WHERE account = ? ORDER BY id", account)]
            assert {m[:10] for m in marks} == {str(d) for d in JULY}, marks  # nothing on the 4th
            closing = [m for m in marks if m[11:16] >= "17:00"]  # after each cycle, and after the close
            assert [m[:16] for m in closing] == ["2024-07-01T20:05", "2024-07-02T20:05", "2024-07-03T17:05",
                                                 "2024-07-05T20:05"], marks  # the 3rd at 13:05 New York
            assert not any("2024-07-04" in o["created_at"] for o in fake.orders())
    finally:
        pair.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("when", [ny(date(2024, 7, 4), 10, 30), ny(date(2024, 7, 3), 14, 0)],
                         ids=["holiday", "after-half-day-close"])
def test_run_once_when_the_market_is_shut_places_nothing_and_says_so(tmp_path, when):
    pair = Pair(tmp_path, SkipClock(when, when + timedelta(hours=1)))
    try:
        outcome = pair.run(once=True)
        assert outcome["accounts"] == {"good": "market closed", "bad": "market closed"}, outcome
        assert pair.good.orders() == [] and pair.bad.orders() == []
        closed = [e for e in pair.ws.events() if e[0] == "market.closed"]
        assert len(closed) == 2 and all("closed" in e[2] and "no rebalance" in e[2] for e in closed), closed
    finally:
        pair.close()


@pytest.mark.timeout(60)
def test_run_once_on_a_holiday_does_not_trade_a_sim_account_either(tmp_path):
    when = ny(date(2024, 7, 4), 10, 30)
    ws = make_workspace(tmp_path)
    ws.write_accounts("paper-sim:\n  broker: sim\n  models: [SectorRotationModel_v1]")
    outcome = run_loop(ws, SkipClock(when, when + timedelta(hours=1)), once=True)
    assert ws.journal_orders() == [], outcome
    assert outcome["accounts"]["paper-sim"] == "market closed", outcome
    assert any(e[0] == "market.closed" for e in ws.events("paper-sim"))
