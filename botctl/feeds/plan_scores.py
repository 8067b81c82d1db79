"""External signal scores for a plan's signal books: where backtest, replay and live trading
turn signals into the score matrices `strategy.signals.Signals` takes (`score_signal` steps).

A plan that names no signal kind reads nothing. Backtests and replays read feeds.yaml's file
and journal sources (`feeds.runner.load_signals`: declared latency for files, the recorded
receipt time for journaled signals); paper and live read what this run's own journal holds,
on the recorded rule. Either way a signal counts only from the first decision after it could
have been known (`feeds.pointintime`) at the time the order it leads to can fill
(`decision_times_for`): a simulated fill at the open or close cannot use a signal that came
later, even though the cycle itself runs after the open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from botctl.errors import ConfigError, ConfigProblem
from botctl.spec.plan import AccountPlan, Plan
from botctl.spec.steps import ScoreSignal
from botctl.strategy.bars import Bars

if TYPE_CHECKING:
    from botctl.feeds.runner import Rejection
    from botctl.spec.feeds import FeedsConfig
    from botctl.store import Store

Scores = dict[str, np.ndarray]


def signal_kinds(accounts: Iterable[AccountPlan]) -> frozenset[str]:
    """Every signal kind a `score_signal` step of these accounts reads."""
    return frozenset(step.kind for a in accounts for m in a.models for step in m.steps if isinstance(step, ScoreSignal))


def _reads_signals(account: AccountPlan) -> bool:
    return any(isinstance(step, ScoreSignal) for m in account.models for step in m.steps)


def decision_times_for(accounts: Iterable[AccountPlan], dates: list[date], *, simulated: bool) -> list[datetime]:
    """When the decision on each bar's row must have known its signals: no later than the
    order it leads to can fill. A simulated fill is at a past price, so a signal counts only if
    it was known by then: the next session's open (`fill: open`), or the bar's own close
    (`fill: close`). A real broker fills after the cycle, so live orders may use what arrived
    up to the cycle's time (the next session's open plus the schedule's minutes). Of several
    accounts (a backtest computes one set of scores), the earliest rule."""
    readers = [a for a in accounts if _reads_signals(a)]
    if not dates or not readers:
        return []
    from botctl.feeds.timing import decision_times

    if any(a.sim.fill == "close" for a in readers if simulated or a.broker == "sim"):
        from botctl.adapters.calendar import sessions

        closes = {s.day: s.close for s in sessions(dates[0], dates[-1])}
        # a bar's date is a session, its close the fill; a date the calendar lacks: the next open
        return [closes.get(day) or decision_times([day], 0)[0] for day in dates]
    minutes = 0 if simulated or any(a.broker == "sim" for a in readers) else \
        min(m.schedule.after_open_minutes for a in readers for m in a.models)
    return decision_times(dates, minutes)


def _feeds(kinds: frozenset[str], config_dir: Path, symbols: Iterable[str]) -> FeedsConfig:
    from botctl.feeds.runner import read_feeds

    config = read_feeds(config_dir, environ=None, known_symbols=frozenset(symbols))
    if config is None:
        raise ConfigError([ConfigProblem("strategies.yaml", 1, 1, "", (
            f"score_signal steps read signal kind(s) {', '.join(sorted(kinds))}, but {config_dir} has no "
            "feeds.yaml declaring them (docs/feeds.md)"))])
    missing = sorted(kinds - set(config.kinds))
    if missing:
        raise ConfigError([ConfigProblem("feeds.yaml", 1, 1, "kinds", (
            f"no kind {', '.join(missing)}, which strategies.yaml's score_signal steps read (declared: "
            f"{', '.join(sorted(config.kinds)) or 'none'})"))])
    return config


def scores_for_history(plan: Plan, bars: Bars, config_dir: Path, db_path: Path | None
                       ) -> tuple[Scores | None, list[tuple[str, Rejection]]]:
    """A backtest's or replay's score matrices (None when no model reads a signal), with the
    rows the sources refused (source, why), for the caller to report."""
    kinds = signal_kinds(plan.accounts)
    if not kinds or not bars.dates:
        return None, []
    from botctl.feeds.pointintime import external_scores
    from botctl.feeds.runner import load_signals

    config = _feeds(kinds, config_dir, plan.symbols)
    signals, modes, refused = load_signals(config, config_dir, db_path, known_symbols=frozenset(plan.symbols))
    times = decision_times_for(plan.accounts, list(bars.dates), simulated=True)
    return external_scores(signals, times, bars.symbols, config.kinds, mode=modes), refused


class LiveScores:
    """Paper and live: the score matrices from the signals this journal holds (written there
    by the run's feeds before anything reads them), on the recorded rule.

    `stale(now)` answers the sources that are stale at the run's `now()` with when each went
    stale (`FeedRunner.stale_since`): their scores count as missing from then on, and in the
    decision being taken (the last row decided by `now`), so a quiet feed makes no new entry
    and no score-based exit; a position is not sold because its feed stopped answering."""

    def __init__(self, plan: Plan, config_dir: Path, store: Store, *,
                 stale: Callable[[datetime], Mapping[str, datetime]] | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        self.kinds = signal_kinds(plan.accounts)
        self.store = store
        self.config = _feeds(self.kinds, config_dir, plan.symbols) if self.kinds else None
        self.stale = stale
        self.now = now or (lambda: datetime.now(timezone.utc))

    def __call__(self, account: AccountPlan, bars: Bars) -> Scores | None:
        kinds = signal_kinds([account])
        if not kinds or self.config is None or not bars.dates:
            return None
        from botctl.feeds.pointintime import external_scores

        since = datetime.combine(bars.dates[0], datetime.min.time(), timezone.utc) - timedelta(days=1)
        signals = self.store.signals(kind=sorted(kinds), symbol=list(account.symbols), since=since)
        times = decision_times_for([account], list(bars.dates), simulated=False)
        return external_scores(signals, times, bars.symbols, self.config.kinds, mode="recorded",
                               missing=self._missing(times))

    def _missing(self, times: list[datetime]) -> dict[str, datetime] | None:
        if self.stale is None:
            return None
        now = self.now()
        stale = self.stale(now)
        if not stale:
            return None
        # The decision being taken is the last one due by now (a retried cycle runs after it).
        deciding = max((t for t in times if t <= now), default=now)
        return {source: min(since, deciding) for source, since in stale.items()}


def refused_lines(refused: list[tuple[str, Rejection]], *, most: int = 5) -> list[str]:
    """One warning line per refused signal row (the first `most`, then a count)."""
    lines = [f"warning: signal source {source}: {r.reason}: {r.detail}" for source, r in refused[:most]]
    if len(refused) > most:
        lines.append(f"warning: {len(refused) - most} more signal row(s) refused (see `botctl feeds check`)")
    return lines
