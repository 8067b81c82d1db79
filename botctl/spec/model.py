"""The shape of strategies.yaml and accounts.yaml, as msgspec Structs.

Decoding is strict: unknown keys and wrong types are errors (see spec.decode, which reports
every one of them with its file position). Cross-field rules live in spec.validate.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Frequency = Literal["daily", "weekly", "monthly", "quarterly"]


class Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """msgspec passes these options on to subclasses; they repeat `frozen=True` so that type
    checkers, which do not inherit it, see them as frozen too."""


class ScheduleSpec(Spec, frozen=True):
    """When a model rebalances: the `day`-th trading day of each period, `after_open_minutes`
    after the opening bell."""

    every: Frequency = "monthly"
    day: int = 1
    after_open_minutes: int = 30


class StrategySpec(Spec, frozen=True):
    universe: str | list[str]
    rebalance: Frequency | ScheduleSpec = "monthly"
    # Each item is a one-key mapping {step_name: {params}}; spec.decode turns them into Steps.
    steps: list[Any] = []
    description: str = ""


class StrategiesFile(Spec, frozen=True):
    universes: dict[str, list[str]] = {}
    strategies: dict[str, StrategySpec] = {}
    benchmark: str = "SPY"


class ModelRef(Spec, frozen=True):
    name: str
    budget: float | None = None


class SimSpec(Spec, frozen=True):
    """Settings of the built-in simulated broker."""

    fill: Literal["open", "close"] = "open"
    commission_bps: float = 0.0
    slippage_bps: float = 0.0
    margin: float = 2.0
    borrow_rate: float = 0.0
    fractional: bool = True


class RiskSpec(Spec, frozen=True):
    """Pre-trade limits and circuit breakers (fractions of NAV unless named otherwise)."""

    max_weight: float = 1.0
    max_gross_leverage: float = 1.50
    max_order_notional: float = 1_000_000.0
    max_order_pct_nav: float = 1.0
    price_collar_pct: float = 0.10
    max_orders_per_cycle: int = 40
    max_orders_per_day: int = 80
    cooldown_minutes: int = 0
    max_data_age_days: int = 5
    max_drawdown: float = 0.35
    max_daily_loss: float = 0.08
    max_rejects: int = 5
    reject_window_minutes: int = 60
    # A plan's first cycle on an account (no paper/live order of this plan in the journal yet)
    # halts for confirmation when it would trade more than this share of NAV (a wrong
    # account, a stale journal); `run --yes` skips the check.
    max_first_cycle_turnover: float = 1.5


class AccountSpec(Spec, frozen=True):
    models: list[str | ModelRef]
    broker: Literal["sim", "alpaca"] = "sim"
    mode: Literal["paper", "live"] = "paper"
    data: Literal["file", "alpaca"] = "file"
    starting_cash: float = 100_000.0
    min_trade_value: float = 1.0
    sim: SimSpec = SimSpec()
    risk: RiskSpec = RiskSpec()
    # Names of environment variables holding the keys, never the keys themselves.
    api_key_env: str | None = None
    secret_key_env: str | None = None
    base_url: str | None = None
    data_url: str | None = None
    feed: Literal["iex", "sip"] = "iex"


class HealthSpec(Spec, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8787
    # Name of an environment variable holding a bearer token the endpoint then requires.
    token_env: str | None = None


class AccountsFile(Spec, frozen=True):
    accounts: dict[str, AccountSpec] = {}
    health: HealthSpec = HealthSpec()
