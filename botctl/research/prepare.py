"""From the command line to a runnable research setup: read the config files once, check the
varied paths and values against them, pick the model and account, and load the bars once."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import msgspec

from botctl.errors import UsageError
from botctl.research.grid import Grid, axes_from_file, check_size
from botctl.research.params import parse_vary
from botctl.research.sweep import Constraints, check_axes, choose_account, choose_model
from botctl.research.trials import Setup
from botctl.strategy.bars import Bars


class SweepFile(msgspec.Struct, forbid_unknown_fields=True):
    """A sweep file (YAML): the same as the command-line options, which win when both are given."""

    vary: dict[str, Any] = {}
    model: str | None = None
    objective: str | None = None
    samples: int | None = None
    seed: int | None = None
    constraints: Constraints = Constraints()


def read_sweep_file(path: Path) -> tuple[SweepFile, list]:
    import yaml

    from botctl.config_files import read_config_file
    from botctl.errors import ConfigError

    try:
        data = read_config_file(path)
    except ConfigError as exc:
        raise UsageError(f"--file {path}: {exc.problems[0].message}") from None
    try:
        value = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise UsageError(f"--file {path}: invalid YAML: {' '.join(str(exc).split())[:200]}") from None
    try:
        spec = msgspec.convert(value if value is not None else {}, SweepFile)
    except msgspec.ValidationError as exc:
        raise UsageError(f"--file {path}: {exc}") from None
    return spec, axes_from_file(spec.vary, str(path)) if spec.vary else []


class Prepared(msgspec.Struct):
    setup: Setup
    bars: Bars
    grid: Grid
    plan_id: str
    strategies_value: Any  # the parsed files, for the shipped values and --propose
    accounts_value: Any


def prepare(config_dir: Path, data: Path | None, vary: list[str], file_axes: list, *, model: str | None,
            start: date | None, end: date | None, breakers: str = "halt", rebalancing: str = "hold",
            risk_free: float = 0.0, samples: int | None = None, yes: bool = False) -> Prepared:
    from botctl.adapters.file_data import available_symbols, scan_bars
    from botctl.config_files import read_config_pair
    from botctl.spec.load import ACCOUNTS_FILE, STRATEGIES_FILE, load_config
    from botctl.spec.plan import compile_plan
    from botctl.spec.yamlsource import YamlSource
    from botctl.strategy.bars import bars_from_frame

    axes = list(file_axes)
    given = {path for path, _ in axes}
    for option in vary:
        path, values = parse_vary(option)
        if path in given:
            raise UsageError(f"--vary {path} is given twice (on the command line or in the sweep file)")
        given.add(path)
        axes.append((path, values))
    grid = Grid(axes)
    check_size(grid, samples, yes=yes)  # before anything is read: a refusal costs nothing
    strategies_bytes, accounts_bytes = read_config_pair(config_dir)
    known = available_symbols(data)
    baseline = load_config(strategies_bytes, accounts_bytes, known_symbols=known)  # the shipped files must be valid
    s_value = YamlSource(STRATEGIES_FILE, strategies_bytes).value or {}
    a_value = YamlSource(ACCOUNTS_FILE, accounts_bytes).value or {}
    strategies, accounts = s_value.get("strategies") or {}, a_value.get("accounts") or {}
    paths = [path for path, _ in grid.axes]
    from botctl.research.params import parse_path

    for path in paths:
        parse_path(path, strategies, accounts)
    chosen = choose_model(paths, model, strategies)
    account = choose_account(paths, chosen, accounts)
    setup = Setup(strategies=strategies_bytes, accounts=accounts_bytes, known_symbols=known, model=chosen,
                  account=account, start=start, end=end, breakers=breakers, rebalancing=rebalancing,
                  risk_free=risk_free)
    check_axes(setup, grid, strategies, accounts)
    from botctl.research.backtest_api import session_rows

    plan = compile_plan(baseline, models=[chosen], accounts=[account])
    # Symbols a trial may add (a fallback or a benchmark given as a value) are loaded too.
    extra = {v for _, values in grid.axes for v in values if isinstance(v, str) and v in known}
    bars = bars_from_frame(scan_bars(data), tuple(sorted(set(plan.symbols) | extra)))
    session_rows(bars, start, end)  # a period the data cannot serve is refused before any trial runs
    return Prepared(setup, bars, grid, plan.plan_id, s_value, a_value)
