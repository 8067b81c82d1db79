"""The deflated Sharpe ratio against values worked out by hand from Bailey & Lopez de Prado
(2014), eqs. for E[max SR] and the probabilistic Sharpe ratio."""

from __future__ import annotations

import math

import pytest

from botctl.research.deflated import (deflated_sharpe, expected_max_sharpe, probabilistic_sharpe, return_stats,
                                      variance)


def test_probabilistic_sharpe_of_normal_returns():
    # SR 0.1 per day over 253 returns, skew 0, kurtosis 3:
    # z = 0.1 * sqrt(252) / sqrt(1 + (3 - 1) / 4 * 0.01) = 1.587401 / 1.002497 = 1.583447
    # Phi(1.583447) = 0.943346
    assert probabilistic_sharpe(0.1, 0.0, 253, 0.0, 3.0) == pytest.approx(0.943346, abs=1e-6)


def test_expected_max_sharpe_of_ten_trials():
    # sqrt(0.0025) * ((1 - 0.577216) * Z^-1(0.9) + 0.577216 * Z^-1(1 - 1/(10 e)))
    # = 0.05 * (0.422784 * 1.281552 + 0.577216 * 1.789242) = 0.05 * 1.574598 = 0.078730
    assert expected_max_sharpe(0.0025, 10) == pytest.approx(0.078730, abs=1e-6)


def test_deflated_sharpe_of_the_best_of_ten():
    # z = (0.1 - 0.078730) * sqrt(252) / 1.002497 = 0.336816 -> Phi = 0.631870
    assert deflated_sharpe(0.1, 253, 0.0, 3.0, sharpe_variance=0.0025, trials=10) == pytest.approx(0.631870, abs=1e-4)


def test_fat_tails_and_negative_skew_lower_it():
    normal = deflated_sharpe(0.1, 253, 0.0, 3.0, sharpe_variance=0.0025, trials=10)
    assert deflated_sharpe(0.1, 253, -0.5, 6.0, sharpe_variance=0.0025, trials=10) < normal


def test_more_trials_deflate_more():
    few = deflated_sharpe(0.05, 1000, 0.0, 3.0, sharpe_variance=0.0004, trials=2)
    many = deflated_sharpe(0.05, 1000, 0.0, 3.0, sharpe_variance=0.0004, trials=1000)
    assert many < few


def test_one_trial_is_the_probabilistic_sharpe_against_zero():
    assert expected_max_sharpe(0.01, 1) == 0.0
    assert deflated_sharpe(0.1, 253, 0.0, 3.0, sharpe_variance=0.01, trials=1) == probabilistic_sharpe(0.1, 0, 253, 0, 3)


def test_return_stats_by_hand():
    # returns +10%, -10%, +10%, -10%: mean 0 -> Sharpe 0, skew 0, kurtosis 1 (two-point distribution)
    nav = [100.0, 110.0, 99.0, 108.9, 98.01]
    stats = return_stats(nav)
    assert stats.observations == 4
    assert stats.sharpe == pytest.approx(0.0, abs=1e-12)
    assert stats.skew == pytest.approx(0.0, abs=1e-9)
    assert stats.kurtosis == pytest.approx(1.0)
    # returns 1%, 2%, 3%: mean 2%, sample std 1% -> Sharpe 2
    assert return_stats([100.0, 101.0, 103.02, 106.1106]).sharpe == pytest.approx(2.0)


def test_flat_curve_and_variance():
    assert return_stats([1.0, 1.0, 1.0]).sharpe == 0.0
    assert variance([1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert variance([5.0]) == 0.0
    assert math.isnan(probabilistic_sharpe(0.1, 0.0, 1, 0.0, 3.0))
