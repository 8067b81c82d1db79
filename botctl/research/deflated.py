"""The deflated Sharpe ratio (Bailey & Lopez de Prado, 2014): the probability that a trial's
true Sharpe ratio is above the best one expected from luck alone among N trials.

All Sharpe ratios here are per period (daily, not annualised), as the paper's formulas need.
Pure: the standard library's NormalDist and numpy are its only dependencies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def expected_max_sharpe(sharpe_variance: float, trials: int) -> float:
    """E[max SR] of `trials` independent trials whose Sharpe ratios have this variance and a
    true Sharpe of zero: sqrt(V) * ((1 - g) Z^-1(1 - 1/N) + g Z^-1(1 - 1/(N e)))."""
    if trials < 2 or sharpe_variance <= 0:
        return 0.0
    z = _NORMAL.inv_cdf
    return math.sqrt(sharpe_variance) * ((1 - EULER_GAMMA) * z(1 - 1 / trials)
                                         + EULER_GAMMA * z(1 - 1 / (trials * math.e)))


def probabilistic_sharpe(sharpe: float, benchmark: float, observations: int, skew: float, kurtosis: float) -> float:
    """P(true SR > benchmark) given an observed per-period SR over `observations` returns with
    this skew and (raw, normal = 3) kurtosis."""
    if observations < 2:
        return float("nan")
    spread = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe * sharpe
    if spread <= 0:
        return float("nan")
    return _NORMAL.cdf((sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(spread))


def deflated_sharpe(sharpe: float, observations: int, skew: float, kurtosis: float, *,
                    sharpe_variance: float, trials: int) -> float:
    return probabilistic_sharpe(sharpe, expected_max_sharpe(sharpe_variance, trials), observations, skew, kurtosis)


class ReturnStats:
    """Per-period Sharpe, skew, raw kurtosis and count of a return series."""

    __slots__ = ("sharpe", "skew", "kurtosis", "observations")

    def __init__(self, sharpe: float, skew: float, kurtosis: float, observations: int) -> None:
        self.sharpe, self.skew, self.kurtosis, self.observations = sharpe, skew, kurtosis, observations

    def as_dict(self) -> dict[str, float]:
        return {"sharpe": self.sharpe, "skew": self.skew, "kurtosis": self.kurtosis, "observations": self.observations}


def return_stats(nav: Sequence[float]) -> ReturnStats:
    """Stats of the simple returns of a NAV curve (sample std for the Sharpe ratio, population
    moments for skew and kurtosis). A flat curve has Sharpe 0, skew 0 and kurtosis 3."""
    values = np.asarray(nav, dtype=float)
    prior = values[:-1]
    returns = values[1:][prior > 0] / prior[prior > 0] - 1
    n = int(returns.size)
    if n < 2:
        return ReturnStats(0.0, 0.0, 3.0, n)
    centred = returns - returns.mean()
    m2 = float(np.mean(centred ** 2))
    if m2 <= 1e-30:
        return ReturnStats(0.0, 0.0, 3.0, n)
    m3, m4 = float(np.mean(centred ** 3)), float(np.mean(centred ** 4))
    sample_std = math.sqrt(m2 * n / (n - 1))
    return ReturnStats(float(returns.mean()) / sample_std, m3 / m2 ** 1.5, m4 / m2 ** 2, n)


def variance(values: Sequence[float]) -> float:
    """Sample variance (0 for fewer than two values)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return sum((v - mean) ** 2 for v in values) / (n - 1)
