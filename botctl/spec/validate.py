"""Rules that span fields and files: references, ranges, budgets, symbols, schedules.

Every rule reports through the file's YamlSource, so each problem names FILE:LINE:COL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, cast

from botctl.errors import ConfigProblem
from botctl.spec import steps as st
from botctl.spec.model import AccountSpec, ModelRef, RiskSpec, ScheduleSpec

if TYPE_CHECKING:
    from botctl.spec.load import Config
    from botctl.spec.yamlsource import Path as ConfigPath
    from botctl.spec.yamlsource import YamlSource

    Report = Callable[[ConfigPath, str], None]  # where a problem is, what it is

MAX_LEVERAGE = 4.0
SESSION_MINUTES = 390  # 09:30-16:00 ET; a rebalance must be scheduled before the close
# The fewest trading sessions a period can have; a `day` beyond it cannot happen every period.
MIN_SESSIONS = {"daily": 1, "weekly": 3, "monthly": 18, "quarterly": 60}
MAX_LOOKBACK = 2520  # ten years of sessions
# Account, strategy and universe names are printed by every command, written into order ids and
# matched by --account: plain characters only (no spaces, no terminal escapes, no `*`, which
# the journal's control table uses for "every account").
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
NAME_RULE = "1-64 characters from A-Z a-z 0-9 . _ -"


def step_symbols(step: st.Step) -> list[tuple[str, tuple[str, ...]]]:
    """Symbols a step reads besides the universe (benchmarks, fallbacks, fixed weights), each
    with the key path, under the step, where it is written."""
    if isinstance(step, (st.WhenRegime, st.ScaleByRegime)):
        return [(step.benchmark, ("benchmark",))]
    if isinstance(step, st.Fallback) and step.to != "cash":
        return [(step.to, ("to",))]
    if isinstance(step, st.WeighFixed):
        return [(symbol, ("weights", symbol)) for symbol in step.weights]
    return []


def _listed(symbols: frozenset[str], most: int = 20) -> str:
    names = sorted(symbols)
    return ", ".join(names) if len(names) <= most else ", ".join(names[:most]) + f", ... ({len(names)} in all)"


class _Rules:
    def __init__(self, config: Config, known_symbols: frozenset[str] | None) -> None:
        self.config = config
        self.known = known_symbols
        self.problems: list[ConfigProblem] = []

    def s(self, path: ConfigPath, message: str) -> None:
        self.problems.append(self.config.strategies_source.problem(path, message))

    def a(self, path: ConfigPath, message: str) -> None:
        self.problems.append(self.config.accounts_source.problem(path, message))

    @staticmethod
    def parsed(source: YamlSource) -> bool:
        """A file that failed to parse says nothing about what it defines: checks that need
        its contents (emptiness, references into it) are skipped rather than cascading."""
        return source.parsed

    def symbol(self, symbol: str, path: ConfigPath) -> None:
        if self.known is not None and symbol not in self.known:
            self.s(path, f"unknown symbol '{symbol}' (not in the available market data, which holds: "
                         f"{_listed(self.known)})")

    def leverage(self, value: float, path: ConfigPath, report: Report) -> None:
        if not 0 < value <= MAX_LEVERAGE:
            report(path, f"leverage must be in (0, {MAX_LEVERAGE:g}], got {value:g}")

    def fraction(self, value: float, path: ConfigPath, report: Report, *, upper: float = 1.0) -> None:
        if not 0 < value <= upper:
            report(path, f"must be in (0, {upper:g}], got {value:g}")

    def names(self, kind: str, names: Iterable[str], path: ConfigPath, report: Report) -> None:
        for name in names:
            if not NAME.fullmatch(name):
                shown = name if len(name) <= 40 else f"{name[:40]}... ({len(name)} characters)"
                report((*path, name), f"{kind} names are {NAME_RULE}, got {shown!r}")

    # strategies.yaml -------------------------------------------------------------------------

    def strategies(self) -> None:
        spec = self.config.strategies
        self.names("strategy", _raw_keys(self.config.strategies_source, "strategies"), ("strategies",), self.s)
        self.names("universe", _raw_keys(self.config.strategies_source, "universes"), ("universes",), self.s)
        if not spec.strategies and not self.config.broken and self.parsed(self.config.strategies_source):
            self.s(("strategies",), "no strategies defined")
        self.symbol(spec.benchmark, ("benchmark",))
        for name, symbols in spec.universes.items():
            self.universe(symbols, ("universes", name))
        for name, strategy in spec.strategies.items():
            base = ("strategies", name)
            if isinstance(strategy.universe, str):
                if strategy.universe not in spec.universes and strategy.universe not in self.config.broken:
                    known = ", ".join(sorted(spec.universes)) or "none defined"
                    self.s((*base, "universe"), f"unknown universe '{strategy.universe}' (known: {known})")
            else:
                self.universe(strategy.universe, (*base, "universe"))
            if isinstance(strategy.rebalance, ScheduleSpec):
                self.schedule(strategy.rebalance, (*base, "rebalance"))
            every = strategy.rebalance.every if isinstance(strategy.rebalance, ScheduleSpec) else strategy.rebalance
            if st.is_signal_book(self.config.steps.get(name, ())) and every != "daily" and \
                    "rebalance" in _raw_keys(self.config.strategies_source, "strategies", name):
                self.s((*base, "rebalance"), f"a signal book checks its exits every session: its schedule is daily "
                                             f"(give only after_open_minutes, or leave rebalance out), got {every}")
            if not strategy.steps:
                self.s((*base, "steps"), "a strategy needs steps (at least one select_* step or weigh_fixed)")
        for name, steps in self.config.steps.items():
            self.steps(steps, ("strategies", name))

    def universe(self, symbols: list[str], path: ConfigPath) -> None:
        if not symbols:
            self.s(path, "a universe needs at least one symbol")
        seen: set[str] = set()
        for i, symbol in enumerate(symbols):
            if symbol in seen:
                self.s((*path, i), f"duplicate symbol '{symbol}'")
            seen.add(symbol)
            self.symbol(symbol, (*path, i))

    def schedule(self, schedule: ScheduleSpec, path: ConfigPath) -> None:
        limit = MIN_SESSIONS[schedule.every]
        if not 1 <= schedule.day <= limit:
            self.s((*path, "day"), f"a {schedule.every} schedule's day must be 1..{limit} "
                                   f"(a period can have as few as {limit} sessions), got {schedule.day}")
        if not 0 <= schedule.after_open_minutes < SESSION_MINUTES:
            self.s((*path, "after_open_minutes"),
                   f"must be 0..{SESSION_MINUTES - 1}: the regular session lasts {SESSION_MINUTES} minutes, "
                   f"got {schedule.after_open_minutes}")

    def steps(self, steps: tuple[st.Step, ...], base: ConfigPath) -> None:
        if st.is_signal_book(steps):
            self.book(steps, base)
        elif steps and not any(isinstance(x, (st.SelectMomentum, st.SelectThreshold, st.SelectAll, st.WeighFixed)) for x in steps):
            self.s((*base, "steps"), "no selection: add a select_* step (or weigh_fixed)")
        for i, step in enumerate(steps):
            self.step(step, (*base, "steps", i, cast(str, step.__struct_config__.tag)))  # every step class has one

    def book(self, steps: tuple[st.Step, ...], base: ConfigPath) -> None:
        """Rules of a signal book as a whole: what it needs once, what it cannot mix with."""
        where = (*base, "steps")
        if not any(isinstance(x, st.SCORE_STEPS) for x in steps):
            self.s(where, "a signal book needs a score_* step (score_breakout, score_momentum, ...)")
        if sum(isinstance(x, st.SelectTopScores) for x in steps) != 1:
            self.s(where, "a signal book needs exactly one select_top_scores step (min_score, max_positions)")
        if sum(isinstance(x, st.SIZING_STEPS) for x in steps) > 1:
            self.s(where, "a signal book takes at most one of weigh_slots, weigh_fraction, weigh_by_score")
        for i, step in enumerate(steps):
            tag = cast(str, step.__struct_config__.tag)
            if isinstance(step, st.ROTATION_ONLY):
                self.s((*where, i, tag), f"{tag} is a rebalancer's step: a signal book (a strategy with "
                                         "score_* steps) holds positions, not target weights")
            if isinstance(step, st.ExitRegime) and not any(isinstance(x, st.WhenRegime) for x in steps):
                self.s((*where, i, tag), "exit_regime closes positions when a when_regime gate closes: add a when_regime step")

    def step(self, step: st.Step, path: ConfigPath) -> None:
        for symbol, where in step_symbols(step):
            self.symbol(symbol, (*path, *where))
        for field in ("lookback_days", "sma_days"):
            days = getattr(step, field, None)
            if days is not None and not (2 if field == "sma_days" else 1) <= days <= MAX_LOOKBACK:
                self.s((*path, field), f"must be {(2 if field == 'sma_days' else 1)}..{MAX_LOOKBACK} trading days, got {days}")
        if isinstance(step, st.BOOK_STEPS):
            self.book_step(step, path)
        if isinstance(step, st.SelectMomentum) and step.top < 1:
            self.s((*path, "top"), f"must be at least 1, got {step.top}")
        if isinstance(step, st.WeighEqually) and step.slots is not None and step.slots < 1:
            self.s((*path, "slots"), f"must be at least 1, got {step.slots}")
        if isinstance(step, (st.ScaleLeverage, st.LimitLeverage)):
            self.leverage(step.gross, (*path, "gross"), self.s)
        if isinstance(step, st.ScaleByRegime):
            for field in ("above", "below"):
                value = getattr(step, field)
                if not 0 <= value <= MAX_LEVERAGE:
                    self.s((*path, field), f"leverage must be in [0, {MAX_LEVERAGE:g}], got {value:g}")
        if isinstance(step, st.LimitWeight):
            self.fraction(step.max, (*path, "max"), self.s, upper=MAX_LEVERAGE)
        if isinstance(step, st.Fallback):
            self.fraction(step.weight, (*path, "weight"), self.s, upper=MAX_LEVERAGE)
        if isinstance(step, st.WeighFixed):
            if not step.weights:
                self.s((*path, "weights"), "needs at least one symbol: weight")
            for symbol, weight in step.weights.items():
                if weight < 0:
                    self.s((*path, "weights", symbol), f"weights cannot be negative (no short selling), got {weight:g}")
            self.leverage(sum(step.weights.values()) or 1.0, (*path, "weights"), self.s)

    def book_step(self, step: st.Step, path: ConfigPath) -> None:
        """Ranges of one signal-book step's settings."""
        for field in ("days", "sessions", "min_sessions", "cooldown_sessions"):
            value = getattr(step, field, None)
            low = 0 if field in ("min_sessions", "cooldown_sessions") or isinstance(step, st.WhenCooldown) else 1
            if field == "days" and value is not None and not 2 <= value <= MAX_LOOKBACK:
                self.s((*path, field), f"must be 2..{MAX_LOOKBACK} sessions, got {value}")
            elif field != "days" and value is not None and not low <= value <= MAX_LOOKBACK:
                self.s((*path, field), f"must be {low}..{MAX_LOOKBACK} sessions, got {value}")
        weight = getattr(step, "weight", None)
        if weight is not None and (weight == 0 or not math.isfinite(weight)):
            self.s((*path, "weight"), f"a score weight must be a non-zero number, got {weight:g}")
        if isinstance(step, st.ScoreSignal) and not NAME.fullmatch(step.kind):
            self.s((*path, "kind"), f"signal kinds are {NAME_RULE}, got {step.kind[:40]!r}")
        if isinstance(step, st.SelectTopScores):
            if step.max_positions < 1:
                self.s((*path, "max_positions"), f"must be at least 1, got {step.max_positions}")
            if not math.isfinite(step.min_score):
                self.s((*path, "min_score"), f"must be a finite number, got {step.min_score:g}")
        if isinstance(step, (st.ExitStopLoss, st.ExitTrailingStop)) and not 0 < step.pct < 1:
            self.s((*path, "pct"), f"a stop is a fall in (0, 1) (0.05 = 5%), got {step.pct:g}")
        if isinstance(step, st.ExitTime) and step.band is not None and not 0 < step.band < 1:
            self.s((*path, "band"), f"must be in (0, 1) (0.01 = +/-1%), got {step.band:g}")
        if isinstance(step, st.WeighFraction):
            self.fraction(step.fraction, (*path, "fraction"), self.s)
        if isinstance(step, st.WeighByScore):
            self.fraction(step.per_point, (*path, "per_point"), self.s)
            self.fraction(step.max, (*path, "max"), self.s)
        if isinstance(step, st.DisplaceWeakest):
            if not 0 <= step.margin < math.inf:
                self.s((*path, "margin"), f"must be a number >= 0, got {step.margin:g}")
            if not 0 <= step.pnl_band < 1:
                self.s((*path, "pnl_band"), f"must be in [0, 1) (0.01 = +/-1%), got {step.pnl_band:g}")
        if isinstance(step, st.ExitTakeProfit):
            self.ladder(step, path)

    def ladder(self, step: st.ExitTakeProfit, path: ConfigPath) -> None:
        if not step.ladder:
            self.s((*path, "ladder"), "needs at least one rung {at: GAIN, sell: FRACTION}")
        previous = 0.0
        for i, rung in enumerate(step.ladder):
            if not 0 < rung.at < MAX_LEVERAGE * 10 or rung.at <= previous:
                self.s((*path, "ladder", i, "at"), f"gains must be positive and rising rung by rung, got {rung.at:g}"
                                                  + (f" after {previous:g}" if previous else ""))
            previous = max(previous, rung.at)
            if not 0 < rung.sell <= 1:
                self.s((*path, "ladder", i, "sell"), f"must be a fraction in (0, 1] of the entered quantity, got {rung.sell:g}")
        total = sum(r.sell for r in step.ladder)
        if total > 1 + 1e-9:
            self.s((*path, "ladder"), f"the rungs sell {total:.1%} of the position, more than 100%")

    # accounts.yaml ---------------------------------------------------------------------------

    def accounts(self) -> None:
        spec = self.config.accounts
        self.names("account", _raw_keys(self.config.accounts_source, "accounts"), ("accounts",), self.a)
        if not spec.accounts and not self.config.broken_accounts and self.parsed(self.config.accounts_source):
            self.a(("accounts",), "no accounts defined")
        if not 0 <= spec.health.port <= 65535:
            self.a(("health", "port"), f"must be 0..65535 (0 disables the endpoint), got {spec.health.port}")
        for name, account in spec.accounts.items():
            self.account(name, account)

    def account(self, name: str, account: AccountSpec) -> None:
        base = ("accounts", name)
        if account.broker == "sim" and account.mode == "live":
            self.a((*base, "mode"), "the simulated broker has no live mode; use mode: paper or broker: alpaca")
        if account.starting_cash <= 0:
            self.a((*base, "starting_cash"), f"must be positive, got {account.starting_cash:g}")
        if account.min_trade_value < 0:
            self.a((*base, "min_trade_value"), f"cannot be negative, got {account.min_trade_value:g}")
        for field in ("base_url", "data_url"):
            url = getattr(account, field)
            if url is not None and not url.startswith(("http://", "https://")):
                self.a((*base, field), "must be an http:// or https:// URL")
        sim = account.sim
        if not 1.0 <= sim.margin <= MAX_LEVERAGE:
            self.a((*base, "sim", "margin"), f"must be 1..{MAX_LEVERAGE:g}, got {sim.margin:g}")
        for field in ("commission_bps", "slippage_bps"):
            value = getattr(sim, field)
            if not 0 <= value <= 1000:
                self.a((*base, "sim", field), f"must be 0..1000 basis points, got {value:g}")
        if not 0 <= sim.borrow_rate <= 1:
            self.a((*base, "sim", "borrow_rate"), f"must be an annual fraction 0..1, got {sim.borrow_rate:g}")
        self.risk(account.risk, (*base, "risk"))
        self.models(account.models, (*base, "models"))

    def risk(self, risk: RiskSpec, path: ConfigPath) -> None:
        self.leverage(risk.max_gross_leverage, (*path, "max_gross_leverage"), self.a)
        self.fraction(risk.max_weight, (*path, "max_weight"), self.a, upper=MAX_LEVERAGE)
        self.fraction(risk.max_first_cycle_turnover, (*path, "max_first_cycle_turnover"), self.a, upper=2 * MAX_LEVERAGE)
        for field in ("max_order_pct_nav", "price_collar_pct", "max_drawdown", "max_daily_loss"):
            self.fraction(getattr(risk, field), (*path, field), self.a, upper=MAX_LEVERAGE if field == "max_order_pct_nav" else 1.0)
        if risk.max_order_notional <= 0:
            self.a((*path, "max_order_notional"), f"must be positive, got {risk.max_order_notional:g}")
        for field in ("max_orders_per_cycle", "max_orders_per_day", "max_data_age_days", "max_rejects", "reject_window_minutes"):
            if getattr(risk, field) < 1:
                self.a((*path, field), f"must be at least 1, got {getattr(risk, field)}")
        if risk.cooldown_minutes < 0:
            self.a((*path, "cooldown_minutes"), f"cannot be negative, got {risk.cooldown_minutes}")

    def models(self, models: list[str | ModelRef], path: ConfigPath) -> None:
        if not models:
            self.a(path, "an account needs at least one model")
        known = self.config.strategies.strategies
        seen: set[str] = set()
        total = 0.0
        unbudgeted = 0
        for i, ref in enumerate(models):
            name = ref.name if isinstance(ref, ModelRef) else ref
            if name in seen:
                self.a((*path, i), f"model '{name}' is listed twice")
            seen.add(name)
            if name not in known and name not in self.config.broken and self.parsed(self.config.strategies_source):
                self.a((*path, i), f"unknown model '{name}' (defined in strategies.yaml: {', '.join(sorted(known)) or 'none'})")
            budget = ref.budget if isinstance(ref, ModelRef) else None
            if budget is None:
                unbudgeted += 1
            elif not 0 < budget <= 1:
                self.a((*path, i, "budget"), f"a budget is a fraction of the account in (0, 1], got {budget:g}")
            else:
                total += budget
        if total > 1 + 1e-9:
            self.a(path, f"budgets add up to {total:.0%}, over 100% of the account")
        elif unbudgeted and total >= 1 - 1e-9:
            self.a(path, "budgets already add up to 100%, leaving nothing for the models without one")


def _raw_keys(source: YamlSource, section: str, *within: str) -> list[str]:
    """The names written under `section` (and the keys `within` it), including entries that
    failed to decode."""
    value = source.value.get(section) if isinstance(source.value, dict) else None
    for key in within:
        value = value.get(key) if isinstance(value, dict) else None
    return list(value) if isinstance(value, dict) else []


def validate(config: Config, known_symbols: frozenset[str] | None) -> list[ConfigProblem]:
    rules = _Rules(config, known_symbols)
    rules.strategies()
    rules.accounts()
    return rules.problems
