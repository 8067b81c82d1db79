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


# Signal-book steps ------------------------------------------------------------------------
# A strategy with a `score_*` step is a signal book: it scores candidates from bar signals
# (or external feeds), enters the best into `max_positions` slots through gates, and manages
# each open position with its own exits. docs/strategies.md ("Signal books") documents them.


class ScoreBreakout(Step, frozen=True, tag="score_breakout"):
    """Component: close over the highest close of the previous `lookback_days` sessions, less 1
    (positive on a new N-day high)."""

    lookback_days: int = 20
    weight: float = 1.0


class ScoreMomentum(Step, frozen=True, tag="score_momentum"):
    """Component: total return over `lookback_days` sessions."""

    lookback_days: int = 63
    weight: float = 1.0


class ScoreSmaDistance(Step, frozen=True, tag="score_sma_distance"):
    """Component: close over its `sma_days`-session average, less 1."""

    sma_days: int = 50
    weight: float = 1.0


class ScoreRsi(Step, frozen=True, tag="score_rsi"):
    """Component: (RSI over `days` sessions - 50) / 50, so -1..1 with 0 at neutral."""

    days: int = 14
    weight: float = 1.0


class ScoreSignal(Step, frozen=True, tag="score_signal"):
    """Component from an external signal feed of `kind` (a point-in-time score matrix). With
    `optional: true` a missing score counts as 0; otherwise the symbol has no score."""

    kind: str
    weight: float = 1.0
    optional: bool = False


class SelectTopScores(Step, frozen=True, tag="select_top_scores"):
    """Enter the best-scored candidates whose score is at least `min_score` into at most
    `max_positions` open positions."""

    min_score: float = 0.0
    max_positions: int = 16


class WeighSlots(Step, frozen=True, tag="weigh_slots"):
    """Each entry gets 1/max_positions of the model's budget (the default sizing)."""


class WeighFraction(Step, frozen=True, tag="weigh_fraction"):
    """Each entry gets `fraction` of the model's budget."""

    fraction: float = 0.0625


class WeighByScore(Step, frozen=True, tag="weigh_by_score"):
    """Each entry gets `per_point` x its score of the budget, at most `max`."""

    per_point: float = 0.05
    max: float = 0.125


class WhenCooldown(Step, frozen=True, tag="when_cooldown"):
    """Gate per symbol: no re-entry for `sessions` sessions after an exit (`after: stop` only
    after a stop-loss or trailing-stop exit)."""

    sessions: int = 5
    after: Literal["any", "stop"] = "any"


class ExitStopLoss(Step, frozen=True, tag="exit_stop_loss"):
    """Sell all when the close is at or below entry x (1 - pct)."""

    pct: float = 0.05


class ExitTrailingStop(Step, frozen=True, tag="exit_trailing_stop"):
    """Sell all when the close is at or below the highest close since entry x (1 - pct)."""

    pct: float = 0.02


class ExitTime(Step, frozen=True, tag="exit_time"):
    """Sell all after `sessions` sessions held; with `band`, only while the gain since entry is
    within +/- band (a stale position)."""

    sessions: int = 14
    band: float | None = None


class Rung(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One take-profit rung: sell `sell` of the entered quantity once the gain reaches `at`."""

    at: float
    sell: float


class ExitTakeProfit(Step, frozen=True, tag="exit_take_profit"):
    """Scale out along a ladder of (gain, fraction) rungs, each sold once."""

    ladder: list[Rung] = []


class ExitScoreBelow(Step, frozen=True, tag="exit_score_below"):
    """Sell all when the position's score falls below `level`."""

    level: float = 0.0


class ExitSignalReverses(Step, frozen=True, tag="exit_signal_reverses"):
    """Sell all when the score's sign is the opposite of the entry score's."""


class ExitRegime(Step, frozen=True, tag="exit_regime"):
    """Sell every position when one of the model's when_regime gates closes."""


class DisplaceWeakest(Step, frozen=True, tag="displace_weakest"):
    """With every slot full, close the weakest-scored holding for a candidate scoring more than
    `margin` above it, if the holding is at least `min_sessions` old and its gain is within
    +/- `pnl_band`; then no other displacement for `cooldown_sessions` sessions."""

    margin: float = 0.5
    min_sessions: int = 1
    pnl_band: float = 0.01
    cooldown_sessions: int = 1


SCORE_STEPS = (ScoreBreakout, ScoreMomentum, ScoreSmaDistance, ScoreRsi, ScoreSignal)
SIZING_STEPS = (WeighSlots, WeighFraction, WeighByScore)
EXIT_STEPS = (ExitStopLoss, ExitTrailingStop, ExitTime, ExitTakeProfit, ExitScoreBelow, ExitSignalReverses, ExitRegime)
BOOK_STEPS = (*SCORE_STEPS, *SIZING_STEPS, *EXIT_STEPS, SelectTopScores, WhenCooldown, DisplaceWeakest)
# Rotation steps a signal book has no use for (it holds positions, not target weights).
ROTATION_ONLY = (SelectMomentum, SelectThreshold, SelectAll, Fallback, WeighEqually, WeighInverseVolatility,
                 WeighFixed, LimitWeight, ScaleLeverage, ScaleByRegime)


def is_signal_book(steps: tuple[Step, ...]) -> bool:
    return any(isinstance(s, BOOK_STEPS) for s in steps)


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
    ScoreBreakout,
    ScoreMomentum,
    ScoreSmaDistance,
    ScoreRsi,
    ScoreSignal,
    SelectTopScores,
    WeighSlots,
    WeighFraction,
    WeighByScore,
    WhenCooldown,
    ExitStopLoss,
    ExitTrailingStop,
    ExitTime,
    ExitTakeProfit,
    ExitScoreBelow,
    ExitSignalReverses,
    ExitRegime,
    DisplaceWeakest,
]
STEP_CLASSES: tuple[type[AnyStep], ...] = get_args(AnyStep)
STEP_TYPES: dict[str, type[AnyStep]] = {t.__struct_config__.tag: t for t in STEP_CLASSES}  # type: ignore[misc]
