"""Compile validated specs into the immutable runtime plan: accounts -> models -> budgets ->
universes -> schedules. Pure: same inputs, same plan, same id."""

from __future__ import annotations

import hashlib

import msgspec

from botctl.errors import UsageError
from botctl.spec.load import Config
from botctl.spec.model import HealthSpec, ModelRef, RiskSpec, ScheduleSpec, SimSpec
from botctl.spec.steps import AnyStep, is_signal_book
from botctl.spec.validate import step_symbols


class ModelPlan(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    budget: float
    universe: tuple[str, ...]
    # Every symbol the model reads: its universe plus benchmarks, fallbacks and fixed weights.
    symbols: tuple[str, ...]
    schedule: ScheduleSpec
    steps: tuple[AnyStep, ...]
    description: str = ""


class AccountPlan(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    broker: str
    mode: str
    data: str
    starting_cash: float
    min_trade_value: float
    sim: SimSpec
    risk: RiskSpec
    models: tuple[ModelPlan, ...]
    symbols: tuple[str, ...]
    api_key_env: str | None = None
    secret_key_env: str | None = None
    base_url: str | None = None
    data_url: str | None = None
    feed: str = "iex"


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    plan_id: str
    benchmark: str
    health: HealthSpec
    accounts: tuple[AccountPlan, ...]

    def account(self, account_id: str) -> AccountPlan:
        for account in self.accounts:
            if account.id == account_id:
                return account
        raise KeyError(account_id)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(sorted({s for a in self.accounts for s in a.symbols} | {self.benchmark}))


def _budgets(refs: list[str | ModelRef], keep: set[str] | None) -> dict[str, float]:
    """Equal split where budgets are not given; when models are filtered out, the survivors
    share the account's whole invested budget in proportion to their own."""
    named = [(r.name, r.budget) if isinstance(r, ModelRef) else (r, None) for r in refs]
    explicit = sum(b for _, b in named if b is not None)
    missing = [n for n, b in named if b is None]
    share = (1.0 - explicit) / len(missing) if missing else 0.0
    budgets = {n: (b if b is not None else share) for n, b in named}
    if keep is None:
        return budgets
    total = sum(budgets.values())
    kept = {n: b for n, b in budgets.items() if n in keep}
    kept_total = sum(kept.values())
    return {n: b * total / kept_total for n, b in kept.items()} if kept_total > 0 else {}


def plan_id_of(plan: Plan) -> str:
    canonical = msgspec.json.encode(msgspec.structs.replace(plan, plan_id=""), order="deterministic")
    return hashlib.sha256(canonical).hexdigest()[:12]


def compile_plan(config: Config, *, models: list[str] | None = None, accounts: list[str] | None = None) -> Plan:
    strategies = config.strategies
    known_accounts = config.accounts.accounts
    for name in accounts or []:
        if name not in known_accounts:
            raise UsageError(f"unknown account '{name}' (accounts.yaml has: {', '.join(known_accounts)})")
    for name in models or []:
        if name not in strategies.strategies:
            raise UsageError(f"unknown model '{name}' (strategies.yaml has: {', '.join(strategies.strategies)})")
    keep = set(models) if models else None

    account_plans = []
    for account_id, spec in known_accounts.items():
        if accounts and account_id not in accounts:
            continue
        budgets = _budgets(spec.models, keep)
        model_plans = []
        for name, budget in budgets.items():
            strategy = strategies.strategies[name]
            universe = tuple(strategies.universes[strategy.universe] if isinstance(strategy.universe, str) else strategy.universe)
            steps = config.steps[name]
            extra = [symbol for step in steps for symbol, _ in step_symbols(step)]
            schedule = strategy.rebalance if isinstance(strategy.rebalance, ScheduleSpec) else ScheduleSpec(every=strategy.rebalance)
            if is_signal_book(steps):  # a signal book checks its exits every session
                schedule = msgspec.structs.replace(schedule, every="daily", day=1)
            model_plans.append(ModelPlan(
                name=name, budget=budget, universe=universe,
                symbols=tuple(sorted(set(universe) | set(extra))),
                schedule=schedule, steps=steps, description=strategy.description,
            ))
        if not model_plans:
            continue
        account_plans.append(AccountPlan(
            id=account_id, broker=spec.broker, mode=spec.mode, data=spec.data,
            starting_cash=spec.starting_cash, min_trade_value=spec.min_trade_value,
            sim=spec.sim, risk=spec.risk, models=tuple(model_plans),
            symbols=tuple(sorted({s for m in model_plans for s in m.symbols})),
            api_key_env=(spec.api_key_env or "ALPACA_API_KEY") if spec.broker == "alpaca" else None,
            secret_key_env=(spec.secret_key_env or "ALPACA_SECRET_KEY") if spec.broker == "alpaca" else None,
            base_url=spec.base_url, data_url=spec.data_url, feed=spec.feed,
        ))
    if not account_plans:
        raise UsageError("the selection leaves no account with a model to run")
    plan = Plan(plan_id="", benchmark=strategies.benchmark, health=config.accounts.health, accounts=tuple(account_plans))
    return msgspec.structs.replace(plan, plan_id=plan_id_of(plan))
