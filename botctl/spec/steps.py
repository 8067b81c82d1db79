"""The declarative step vocabulary of a strategy, as data.

A strategy's `steps:` list is read top to bottom like bt's algo stacks: gates (`when_*`) decide
whether the model is active, selectors (`select_*`) pick symbols, weighers (`weigh_*`) size
them, limits and scalers (`limit_*`, `scale_*`) shape the result, and `fallback` says what to
hold when a gate is closed or nothing is selected. What each step does is implemented in
botctl.strategy; docs/strategies.md documents every parameter.
"""

from __future__ import annotations

from typing import Literal, Union

import msgspec


class Step(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="step"):
    pass


class WhenRegime(Step, tag="when_regime"):
    """Gate: the model is active only while `benchmark` closes above/below its N-day average."""

    benchmark: str = "SPY"
    sma_days: int = 200
    is_: Literal["above", "below"] = msgspec.field(name="is", default="above")


class SelectMomentum(Step, tag="select_momentum"):
    """Rank the universe by total return over `lookback_days` and keep the best `top`."""

    lookback_days: int = 126
    top: int = 3
    min_return: float | None = 0.0


class SelectThreshold(Step, tag="select_threshold"):
    """Keep every symbol whose return over `lookback_days` exceeds `min_return`."""

    lookback_days: int = 126
    min_return: float = 0.0


class SelectAll(Step, tag="select_all"):
    """Keep the whole universe."""


class Fallback(Step, tag="fallback"):
    """What to hold when a gate is closed or nothing is selected: a symbol, or `cash`."""

    to: str = "cash"
    weight: float = 1.0


class WeighEqually(Step, tag="weigh_equally"):
    """Equal weights; with `slots: N` each pick gets 1/N and unfilled slots stay in cash."""

    slots: int | None = None


class WeighInverseVolatility(Step, tag="weigh_inverse_volatility"):
    """Weights proportional to 1 / (std of daily returns over `lookback_days`)."""

    lookback_days: int = 63


class WeighFixed(Step, tag="weigh_fixed"):
    """Fixed weights for named symbols; selected symbols not named get 0."""

    weights: dict[str, float] = {}


class LimitWeight(Step, tag="limit_weight"):
    """Cap each symbol's weight; the excess goes to cash."""

    max: float = 1.0


class ScaleLeverage(Step, tag="scale_leverage"):
    """Multiply every weight by `gross`: a fully invested book (weights summing to 1) becomes
    `gross` x invested (1.25 = 125%); unfilled slots stay in cash."""

    gross: float = 1.0


class LimitLeverage(Step, tag="limit_leverage"):
    """Scale the weights down when their gross sum exceeds `gross`."""

    gross: float = 1.0


class ScaleByRegime(Step, tag="scale_by_regime"):
    """Multiply the weights by `above` or `below` depending on benchmark vs its N-day average."""

    benchmark: str = "SPY"
    sma_days: int = 200
    above: float = 1.0
    below: float = 1.0


STEP_CLASSES = (
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
)
AnyStep = Union[STEP_CLASSES]  # the tagged union a plan's steps decode as
STEP_TYPES: dict[str, type[Step]] = {t.__struct_config__.tag: t for t in STEP_CLASSES}  # type: ignore[misc]
