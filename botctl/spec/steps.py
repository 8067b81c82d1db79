"""The declarative step vocabulary of a strategy, as data.

A strategy's `steps:` list is read top to bottom like bt's algo stacks: gates (`when_*`) decide
whether the model is active, selectors (`select_*`) pick symbols, weighers (`weigh_*`) size
them, limits and scalers (`limit_*`, `scale_*`) shape the result, and `fallback` says what to
hold when a gate is closed or nothing is selected. What each step does is implemented in
botctl.strategy; docs/strategies.md documents every parameter.
"""

from __future__ import annotations

from typing import Literal, Union, get_args

import msgspec


class Step(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="step"):
    """Base of every step. msgspec passes its options on to subclasses; they repeat
    `frozen=True` so that type checkers, which do not inherit it, see them as frozen too."""


class WhenRegime(Step, frozen=True, tag="when_regime"):
    """Gate: the model is active only while `benchmark` closes above/below its N-day average."""

    benchmark: str = "SPY"
    sma_days: int = 200
    is_: Literal["above", "below"] = msgspec.field(name="is", default="above")


class SelectMomentum(Step, frozen=True, tag="select_momentum"):
    """Rank the universe by total return over `lookback_days` and keep the best `top`."""

    lookback_days: int = 126
    top: int = 3
    min_return: float | None = 0.0


class SelectThreshold(Step, frozen=True, tag="select_threshold"):
    """Keep every symbol whose return over `lookback_days` exceeds `min_return`."""

    lookback_days: int = 126
    min_return: float = 0.0


class SelectAll(Step, frozen=True, tag="select_all"):
    """Keep the whole universe."""


class Fallback(Step, frozen=True, tag="fallback"):
    """What to hold when a gate is closed or nothing is selected: a symbol, or `cash`."""

    to: str = "cash"
    weight: float = 1.0


class WeighEqually(Step, frozen=True, tag="weigh_equally"):
    """Equal weights; with `slots: N` each pick gets 1/N and unfilled slots stay in cash."""

    slots: int | None = None


class WeighInverseVolatility(Step, frozen=True, tag="weigh_inverse_volatility"):
    """Weights proportional to 1 / (std of daily returns over `lookback_days`)."""

    lookback_days: int = 63


class WeighFixed(Step, frozen=True, tag="weigh_fixed"):
    """Fixed weights for named symbols; selected symbols not named get 0."""

    weights: dict[str, float] = {}


class LimitWeight(Step, frozen=True, tag="limit_weight"):
    """Cap each symbol's weight; the excess goes to cash."""

    max: float = 1.0


class ScaleLeverage(Step, frozen=True, tag="scale_leverage"):
    """Multiply every weight by `gross`: a fully invested book (weights summing to 1) becomes
    `gross` x invested (1.25 = 125%); unfilled slots stay in cash."""

    gross: float = 1.0


class LimitLeverage(Step, frozen=True, tag="limit_leverage"):
    """Scale the weights down when their gross sum exceeds `gross`."""

    gross: float = 1.0


class ScaleByRegime(Step, frozen=True, tag="scale_by_regime"):
    """Multiply the weights by `above` or `below` depending on benchmark vs its N-day average."""

    benchmark: str = "SPY"
    sma_days: int = 200
    above: float = 1.0
    below: float = 1.0


# The tagged union a plan's steps decode as.
AnyStep = Union[
    WhenRegime,
    SelectMomentum,
    SelectThreshold,
    SelectAll,
    Fallback,
    WeighEqually,
    WeighInverseVolatility,
    WeighFixed,
    LimitWeight,
    ScaleLeverage,
    LimitLeverage,
    ScaleByRegime,
]
STEP_CLASSES: tuple[type[AnyStep], ...] = get_args(AnyStep)
STEP_TYPES: dict[str, type[AnyStep]] = {t.__struct_config__.tag: t for t in STEP_CLASSES}  # type: ignore[misc]
