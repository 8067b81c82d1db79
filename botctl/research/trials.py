"""One trial: set the parameters on the parsed config, decode and validate it, compile the
plan for one model and backtest it through the public backtest API.

A `Setup` holds everything a trial needs but its parameters (the config files' bytes, the
period, the model); together with the bars it is shipped once to each worker, which then runs
any number of trials without reading a file again.
"""

from __future__ import annotations

import copy
import time
from datetime import date
from typing import Any

import msgspec

from botctl.errors import BotctlError, failure_text
from botctl.research.deflated import return_stats
from botctl.research.grid import Params
from botctl.strategy.bars import Bars


class Setup(msgspec.Struct, frozen=True):
    strategies: bytes
    accounts: bytes
    known_symbols: frozenset[str] | None
    model: str
    account: str  # the account the model is backtested in (its risk and sim settings apply)
    start: date | None = None
    end: date | None = None
    breakers: str = "halt"
    rebalancing: str = "hold"
    risk_free: float = 0.0


class Outcome(msgspec.Struct):
    """What a trial gives back. `stats` are the per-period return statistics the deflated
    Sharpe ratio needs; `engine_seconds` the backtest engine's own time."""

    params: dict[str, Any]
    status: str  # "ok" | "failed"
    metrics: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None  # with "curve" ({dates, nav}) when the job asked for it
    reason: str | None = None
    engine_seconds: float = 0.0  # the engine loop alone (BacktestResult.engine_seconds)
    backtest_seconds: float = 0.0  # the whole run_backtest call (engine, round trips, benchmark)
    seconds: float = 0.0  # the whole trial


_PARSED: dict[tuple[bytes, bytes], tuple[Any, Any]] = {}


def _parsed(setup: Setup) -> tuple[Any, Any]:
    """Fresh copies of the two files, parsed once per process: YAML parsing was a third of a
    trial's time, and a trial changes its copy in place."""
    from botctl.spec.load import ACCOUNTS_FILE, STRATEGIES_FILE
    from botctl.spec.yamlsource import YamlSource

    key = (setup.strategies, setup.accounts)
    if key not in _PARSED:
        _PARSED.clear()
        _PARSED[key] = (YamlSource(STRATEGIES_FILE, setup.strategies), YamlSource(ACCOUNTS_FILE, setup.accounts))
    copies = []
    for source in _PARSED[key]:
        fresh = copy.copy(source)
        fresh.value, fresh.problems = copy.deepcopy(source.value), list(source.problems)
        copies.append(fresh)
    return copies[0], copies[1]


def load_trial_config(setup: Setup, params: Params):
    """The decoded, validated config with `params` set (ConfigError/UsageError when not valid)."""
    from botctl.research.params import apply
    from botctl.spec.load import load_config

    strategies, accounts = _parsed(setup)
    return load_config(strategies, accounts, known_symbols=setup.known_symbols, edit=lambda s, a: apply(params, s, a))


def trial_plan(setup: Setup, params: Params):
    from botctl.spec.plan import compile_plan

    return compile_plan(load_trial_config(setup, params), models=[setup.model], accounts=[setup.account])


def backtest_trial(setup: Setup, bars: Bars, params: Params, *, start: date | None = None, end: date | None = None):
    """The backtest result of one trial (exceptions propagate)."""
    from botctl.research.backtest_api import run_backtest

    return run_backtest(trial_plan(setup, params), bars, start=start or setup.start, end=end or setup.end,
                        breakers=setup.breakers, rebalancing=setup.rebalancing)


def run_trial(setup: Setup, bars: Bars, params: Params, *, start: date | None = None,
              end: date | None = None, keep_curve: bool = False) -> Outcome:
    """Run one trial; a trial that cannot run is an Outcome with status 'failed' and why."""
    from botctl.research.backtest_api import model_metrics, run_backtest

    clock = time.perf_counter()
    try:
        plan = trial_plan(setup, params)
        began = time.perf_counter()
        result = run_backtest(plan, bars, start=start or setup.start, end=end or setup.end, breakers=setup.breakers,
                              rebalancing=setup.rebalancing)
        backtest_seconds = time.perf_counter() - began
        curve = result.models[setup.model]
        metrics = model_metrics(result, setup.model, setup.risk_free)
        stats: dict[str, Any] = dict(return_stats(curve.nav.tolist()).as_dict())
        if keep_curve:
            stats["curve"] = {"dates": [d.isoformat() for d in curve.dates], "nav": curve.nav.tolist()}
    except BotctlError as exc:
        return Outcome(params, "failed", reason=" ".join(str(exc).split()) or type(exc).__name__,
                       seconds=time.perf_counter() - clock)
    except Exception as exc:  # noqa: BLE001 - one bad trial must not end the sweep; its reason is kept
        return Outcome(params, "failed", reason=failure_text(exc), seconds=time.perf_counter() - clock)
    return Outcome(params, "ok", metrics=metrics, stats=stats, engine_seconds=result.engine_seconds,
                   backtest_seconds=backtest_seconds, seconds=time.perf_counter() - clock)


# --- worker state: the setup and bars a pool worker received once, at its start ---------------

_WORKER: dict[str, Any] = {}


def init_worker(setup: Setup, bars: Bars) -> None:
    _WORKER["setup"], _WORKER["bars"] = setup, bars


def run_in_worker(params: Params, start: date | None = None, end: date | None = None,
                  keep_curve: bool = False) -> Outcome:
    return run_trial(_WORKER["setup"], _WORKER["bars"], params, start=start, end=end, keep_curve=keep_curve)
