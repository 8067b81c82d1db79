"""Parameter paths on the parsed config, and the grid/sample of trials."""

from __future__ import annotations

import pytest

from botctl.errors import ConfigError, UsageError
from botctl.research.grid import Grid, axes_from_file, check_size, trial_key
from botctl.research.params import apply, parse_path, parse_vary, shipped_value
from botctl.spec.load import load_config
from botctl.spec.yamlsource import YamlSource
from tests.conftest import REPO_ROOT

STRATEGIES = (REPO_ROOT / "strategies.yaml").read_bytes()
ACCOUNTS = (REPO_ROOT / "accounts.yaml").read_bytes()


def parsed():
    return YamlSource("strategies.yaml", STRATEGIES).value, YamlSource("accounts.yaml", ACCOUNTS).value


def test_vary_parses_values_as_yaml():
    path, values = parse_vary("M.select_momentum.min_return=0, 0.5 ,cash,true")
    assert path == "M.select_momentum.min_return"
    assert values == [0, 0.5, "cash", True]


@pytest.mark.parametrize("option", ["nopath", "=1,2", "M.s.p=", "M.s.p=,,", "M.s.p=1,1", "M.s.p=.inf",
                                    "M.s.p=.nan", "M.s.p=2020-01-01", "M.s.p=[1]", "M.s.p={a: 1}"])
def test_bad_vary_options(option):
    with pytest.raises(UsageError):
        parse_vary(option)


@pytest.mark.parametrize("path, message", [
    ("Nope_v1.select_momentum.top", "no model or account 'Nope_v1'"),
    ("SectorRotationModel_v1.when_regime.sma_days", "has no when_regime step"),
    ("SectorRotationModel_v1.select_momentum.topp", "has no parameter 'topp'"),
    ("SectorRotationModel_v1.bogus_step.x", "is not a step name"),
    ("rotation-sim.risk.max_nothing", "risk has no setting 'max_nothing'"),
    ("SectorRotationModel_v1.select_momentum", "expected MODEL.STEP.PARAM"),
    ("SectorRotationModel_v1.select_momentum#2.top", "has only 1"),
])
def test_unknown_paths_are_named(path, message):
    s, a = parsed()
    with pytest.raises(UsageError, match=message):
        parse_path(path, s["strategies"], a["accounts"])


def test_apply_sets_step_and_risk_values_that_decode_and_validate():
    def edit(s, a):
        apply({"SectorRotationModel_v1.select_momentum.lookback_days": 63,
               "SectorRotationModel_v1.weigh_equally.slots": 2,
               "rotation-sim.risk.max_gross_leverage": 1.0}, s, a)

    config = load_config(STRATEGIES, ACCOUNTS, edit=edit)
    steps = config.steps["SectorRotationModel_v1"]
    assert steps[0].lookback_days == 63 and steps[0].top == 3  # the other parameters kept
    assert steps[1].slots == 2
    assert config.accounts.accounts["rotation-sim"].risk.max_gross_leverage == 1.0
    assert config.steps["SectorRotationBull_v1"][1].lookback_days == 126  # other models untouched


def test_out_of_range_value_fails_the_config_checks_naming_the_key():
    with pytest.raises(ConfigError, match=r"strategies\.yaml:\d+:\d+: .*select_momentum\.lookback_days"):
        load_config(STRATEGIES, ACCOUNTS,
                    edit=lambda s, a: apply({"SectorRotationModel_v1.select_momentum.lookback_days": -1}, s, a))


def test_shipped_values_and_defaults():
    s, a = parsed()
    assert shipped_value("SectorRotationModel_v1.select_momentum.lookback_days", s, a) == 126
    assert shipped_value("rotation-sim.risk.max_gross_leverage", s, a) == 1.5
    assert shipped_value("adaptive-sim.risk.max_gross_leverage", s, a) == 1.5  # not written: the default


def test_grid_order_size_and_samples():
    grid = Grid([("a", [1, 2, 3]), ("b", ["x", "y"])])
    assert grid.size == 6
    assert list(grid.combinations()) == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"},
                                         {"a": 2, "b": "y"}, {"a": 3, "b": "x"}, {"a": 3, "b": "y"}]
    sample = list(grid.combinations(samples=3, seed=7))
    assert sample == list(grid.combinations(samples=3, seed=7))  # the seed decides
    assert len({trial_key(p) for p in sample}) == 3
    assert all(p in list(grid.combinations()) for p in sample)


def test_huge_grid_refused_without_yes_but_sampled_is_fine():
    grid = Grid([(f"p{i}", list(range(10))) for i in range(8)])  # 100 million
    with pytest.raises(UsageError, match="add --yes"):
        check_size(grid, None, yes=False)
    assert check_size(grid, None, yes=True) == 100_000_000
    assert check_size(grid, 50, yes=False) == 50
    assert len(list(grid.combinations(samples=5, seed=1))) == 5  # drawn without building the grid


def test_empty_grids_refused():
    with pytest.raises(UsageError):
        Grid([])
    with pytest.raises(UsageError):
        Grid([("a", [])])


def test_sweep_file_axes():
    axes = axes_from_file({"M.s.p": [1, 2], "M.s.q": {"from": 20, "to": 60, "step": 20}}, "sweep.yaml")
    assert axes == [("M.s.p", [1, 2]), ("M.s.q", [20, 40, 60])]
    from datetime import date

    with pytest.raises(UsageError, match="values are numbers"):
        axes_from_file({"M.s.p": [date(2020, 1, 1)]}, "sweep.yaml")
    with pytest.raises(UsageError, match="range is empty"):
        axes_from_file({"M.s.q": {"from": 5, "to": 1}}, "sweep.yaml")
