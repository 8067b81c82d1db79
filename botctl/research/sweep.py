"""A sweep: check every varied value before anything runs, name the sweep by what it computes
(so running it again resumes it), and rank the finished trials by an objective under
constraints, each with its deflated Sharpe ratio given the number of trials."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import msgspec
import numpy as np

from botctl.errors import ConfigError, UsageError
from botctl.research.deflated import deflated_sharpe, variance
from botctl.research.grid import Grid, Params, trial_key
from botctl.research.params import ACCOUNT_SECTIONS, Value, owners, parse_path
from botctl.research.trials import Outcome, Setup, load_trial_config
from botctl.strategy.bars import Bars

# Higher is better for each of them (a drawdown is negative: -0.1 beats -0.3).
OBJECTIVES = ("sharpe", "sortino", "cagr", "calmar", "total_return", "alpha", "max_drawdown", "deflated_sharpe")


class Constraints(msgspec.Struct, frozen=True):
    max_drawdown: float | None = None  # the worst drawdown allowed, e.g. -0.25
    min_round_trips: int | None = None

    def failures(self, metrics: dict[str, Any]) -> list[str]:
        out = []
        drawdown = metrics.get("max_drawdown")
        if self.max_drawdown is not None and (drawdown is None or drawdown < self.max_drawdown):
            out.append(f"max drawdown {drawdown:.1%} below {self.max_drawdown:.1%}" if drawdown is not None
                       else "no max drawdown")
        trips = (metrics.get("trade_stats") or {}).get("round_trips") or 0
        if self.min_round_trips is not None and trips < self.min_round_trips:
            out.append(f"{trips} round trips, fewer than {self.min_round_trips}")
        return out


def choose_model(paths: list[str], model: str | None, strategies: dict[str, Any]) -> str:
    """The model whose figures are the trials' metrics: --model, or the one the paths name."""
    if model is not None:
        if model not in strategies:
            raise UsageError(f"unknown model {model!r} (strategies.yaml has: {', '.join(strategies)})")
        other = owners(paths) - {model}
        if other:
            raise UsageError(f"--vary names model(s) {', '.join(sorted(other))} but --model is {model}")
        return model
    named = owners(paths)
    if len(named) == 1:
        return named.pop()
    if len(strategies) == 1:
        return next(iter(strategies))
    raise UsageError("which model do the trials measure? name it with --model NAME "
                     f"(strategies.yaml has: {', '.join(strategies)})")


def choose_account(paths: list[str], model: str, accounts: dict[str, Any]) -> str:
    """The account the model runs in: the one whose risk/sim settings are varied, else the
    first account that lists the model."""
    varied = {p.split(".")[0] for p in paths if p.split(".")[1:2] and p.split(".")[1] in ACCOUNT_SECTIONS}
    listing = [name for name, spec in accounts.items() if model in _model_names(spec)]
    if len(varied) > 1:
        raise UsageError(f"--vary sets risk/sim of several accounts ({', '.join(sorted(varied))}); a sweep "
                         "backtests one model in one account")
    if varied:
        (account,) = varied
        if account not in listing:
            raise UsageError(f"--vary sets {account}'s settings but {account} does not trade {model}")
        return account
    if not listing:
        raise UsageError(f"no account in accounts.yaml trades model {model}")
    return listing[0]


def _model_names(spec: Any) -> list[str]:
    models = spec.get("models", []) if isinstance(spec, dict) else []
    return [str(m if isinstance(m, str) else m.get("name")) for m in models if isinstance(m, (str, dict))]


def check_axes(setup: Setup, grid: Grid, strategies: dict[str, Any], accounts: dict[str, Any]) -> None:
    """Every path must exist and every value pass the config checks on its own (the others at
    their shipped values): one line naming the path and value, before any trial runs."""
    for path, values in grid.axes:
        parse_path(path, strategies, accounts)
        for value in values:
            try:
                load_trial_config(setup, {path: value})
            except ConfigError as exc:
                raise ConfigError([_with_vary(exc.problems[0], path, value)]) from None


def _with_vary(problem: Any, path: str, value: Value) -> Any:
    from botctl.errors import ConfigProblem

    return ConfigProblem(problem.file, problem.line, problem.col, problem.path,
                         f"{problem.message} (from --vary {path}={value})")


def bars_fingerprint(bars: Bars) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([d.isoformat() for d in (bars.dates[0], bars.dates[-1])]).encode())
    digest.update(",".join(bars.symbols).encode())
    digest.update(np.ascontiguousarray(bars.open).tobytes())
    digest.update(np.ascontiguousarray(bars.close).tobytes())
    return digest.hexdigest()


def identity(kind: str, setup: Setup, bars: Bars, trials: list[Params], extra: dict[str, Any] | None = None) -> str:
    """A run id that names what the run computes: the config files, the data, the period, the
    model and the trials. The same command over the same inputs gets the same id and resumes."""
    digest = hashlib.sha256(msgspec.json.encode(setup, order="deterministic"))
    digest.update(bars_fingerprint(bars).encode())
    digest.update("\n".join(sorted(trial_key(t) for t in trials)).encode())
    digest.update(json.dumps(extra or {}, sort_keys=True, default=str).encode())
    return f"{kind}-{digest.hexdigest()[:12]}"


def objective_value(outcome: Outcome, objective: str, deflated: float | None) -> float | None:
    if outcome.status != "ok" or outcome.metrics is None:
        return None
    value = deflated if objective == "deflated_sharpe" else outcome.metrics.get(objective)
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def deflated_all(outcomes: list[Outcome]) -> list[float | None]:
    """Each trial's deflated Sharpe ratio given the number of trials that ran and the variance
    of their (per-period) Sharpe ratios."""
    ok = [o for o in outcomes if o.status == "ok" and o.stats]
    sharpes = [o.stats["sharpe"] for o in ok if o.stats]
    spread, count = variance(sharpes), len(ok)
    out: list[float | None] = []
    for o in outcomes:
        if o.status != "ok" or not o.stats:
            out.append(None)
            continue
        value = deflated_sharpe(o.stats["sharpe"], int(o.stats["observations"]), o.stats["skew"], o.stats["kurtosis"],
                                sharpe_variance=spread, trials=count)
        out.append(value if math.isfinite(value) else None)
    return out


def ranked(outcomes: list[Outcome], objective: str, constraints: Constraints) -> list[dict[str, Any]]:
    """The trials as `sweep --json` gives them: those meeting the constraints best first, then
    the others by objective, then the failed ones."""
    deflated = deflated_all(outcomes)
    rows = []
    for index, (outcome, dsr) in enumerate(zip(outcomes, deflated)):
        row: dict[str, Any] = {"params": outcome.params, "metrics": outcome.metrics, "deflated_sharpe": dsr,
                               "status": outcome.status}
        if outcome.status == "ok":
            misses = constraints.failures(outcome.metrics or {})
            row["meets_constraints"] = not misses
            if misses:
                row["constraint_failures"] = misses
            row["objective"] = objective_value(outcome, objective, dsr)
        else:
            row["reason"] = outcome.reason
        rows.append((index, row))

    def order(item: tuple[int, dict]) -> tuple:
        index, row = item
        if row["status"] != "ok":
            return (3, 0.0, index)
        value = row["objective"]
        return (0 if row["meets_constraints"] else 1) + (0 if value is not None else 1), -(value or 0.0), index

    out = [row for _, row in sorted(rows, key=order)]
    rank = 0
    for row in out:
        if row["status"] == "ok" and row["meets_constraints"] and row["objective"] is not None:
            rank += 1
            row["rank"] = rank
        else:
            row["rank"] = None
    return out
