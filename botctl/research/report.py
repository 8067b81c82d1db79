"""The sweep's HTML report: a heatmap of the objective over two parameters, the equity curves
of the best few trials, and every trial with its deflated Sharpe ratio given the number of
trials. Self-contained, in the style (and with the chart and writer) of the backtest report."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from botctl.research.prepare import Prepared
from botctl.research.trials import backtest_trial

BEST_CURVES = 5
TABLE_ROWS = 200
_E = html.escape


def _fmt(value: Any, pct: bool = False) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "-"
    return f"{value * 100:.2f}%" if pct else f"{value:.3f}"


def _colour(value: float | None, lo: float, hi: float) -> str:
    """Red (worst) through white to green (best)."""
    if value is None:
        return "#eeeeee"
    t = 0.5 if hi <= lo else (value - lo) / (hi - lo)
    if t < 0.5:
        k = t * 2
        return f"rgb(230,{int(120 + 135 * k)},{int(120 + 135 * k)})"
    k = (t - 0.5) * 2
    return f"rgb({int(255 - 135 * k)},{int(255 - 55 * k)},{int(255 - 135 * k)})"


def heatmap(body: dict[str, Any]) -> str:
    """The objective over the first two varied parameters: each cell the best trial with those
    two values (over the other parameters), blank where none ran."""
    axes = list(body["axes"].items())
    objective = body["objective"]
    x_path, x_values = axes[0]
    y_path, y_values = axes[1] if len(axes) > 1 else ("", [None])
    cells: dict[tuple[str, str], float] = {}
    for trial in body["trials"]:
        value = trial.get("objective")
        if trial["status"] != "ok" or value is None:
            continue
        key = (repr(trial["params"][x_path]), repr(trial["params"].get(y_path)) if y_path else "None")
        cells[key] = max(value, cells.get(key, -math.inf))
    lo, hi = (min(cells.values()), max(cells.values())) if cells else (0.0, 0.0)
    head = "".join(f"<th>{_E(str(x))}</th>" for x in x_values)
    rows = []
    for y in y_values:
        tds = []
        for x in x_values:
            value = cells.get((repr(x), repr(y)))
            tds.append(f'<td style="background:{_colour(value, lo, hi)}">{_fmt(value)}</td>')
        rows.append(f"<tr><th>{_E(str(y)) if y_path else ''}</th>{''.join(tds)}</tr>")
    caption = (f"{_E(objective)} by {_E(x_path)} (columns)" + (f" and {_E(y_path)} (rows)" if y_path else "")
               + (f"; the best over the other {len(axes) - 2} parameter(s)" if len(axes) > 2 else ""))
    return (f'<table class="heat"><caption>{caption}</caption><tr><th>{_E(y_path.split(".")[-1])}</th>'
            f"{head}</tr>{''.join(rows)}</table>")


def trials_table(body: dict[str, Any]) -> str:
    paths = list(body["axes"])
    head = "".join(f"<th>{_E(p.split('.')[-1])}</th>" for p in paths)
    rows = []
    for trial in body["trials"][:TABLE_ROWS]:
        m = trial["metrics"] or {}
        note = trial.get("reason") or "; ".join(trial.get("constraint_failures", []))
        rows.append("<tr>" + f"<td>{trial['rank'] or '-'}</td>"
                    + "".join(f"<td>{_E(str(trial['params'][p]))}</td>" for p in paths)
                    + f"<td>{_fmt(m.get('sharpe'))}</td><td>{_fmt(m.get('cagr'), True)}</td>"
                    + f"<td>{_fmt(m.get('max_drawdown'), True)}</td><td>{_fmt(m.get('calmar'))}</td>"
                    + f"<td>{_fmt(trial['deflated_sharpe'])}</td><td>{_E(trial['status'])}</td><td>{_E(note)}</td></tr>")
    more = (f"<p>{len(body['trials']) - TABLE_ROWS} more trial(s) in the journal and in --json.</p>"
            if len(body["trials"]) > TABLE_ROWS else "")
    return (f"<table><tr><th>rank</th>{head}<th>Sharpe</th><th>CAGR</th><th>max DD</th><th>Calmar</th>"
            f"<th>deflated SR</th><th>status</th><th>note</th></tr>{''.join(rows)}</table>{more}")


def best_curves(prep: Prepared, body: dict[str, Any]) -> str:
    """The best trials' equity curves, run again here (the journal keeps figures, not curves)."""
    from botctl.runtime.report import DASHES, PALETTE, _line_chart, _num_tick, _rebase

    best = [t for t in body["trials"] if t["rank"] is not None][:BEST_CURVES]
    if not best:
        return "<p>No trial met the constraints: no curves to show.</p>"
    series = []
    dates = None
    for i, trial in enumerate(best):
        result = backtest_trial(prep.setup, prep.bars, trial["params"])
        curve = result.models[prep.setup.model]
        dates = dates or curve.dates
        label = f"#{trial['rank']} " + ", ".join(f"{k.split('.')[-1]}={v}" for k, v in trial["params"].items())
        series.append((label, _rebase(np.asarray(curve.nav)), PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]))
    assert dates is not None
    return _line_chart(dates=dates, series=series, value_fmt=_num_tick, aria="equity curves of the best trials",
                       baseline=1.0, markers=())


def write_sweep_report(path: Path, prep: Prepared, body: dict[str, Any]) -> None:
    from botctl.runtime.report import _CSS, _write_atomic

    counts = body["counts"]
    constraints = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in body["constraints"].items() if v is not None)
    title = f"botctl sweep of {body['model']} {body['start']} .. {body['end']}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_E(title)}</title>",
        f"<style>{_CSS} table.heat td {{ text-align: center; min-width: 4em; }}</style></head><body>",
        f"<h1>{_E(title)}</h1>",
        f"<p>run {_E(body['run_id'])} &middot; account {_E(body['account'])} &middot; "
        f"<b>{counts['trials']} trial(s)</b> ({counts['ok']} ran, {counts['failed']} failed, "
        f"{counts['meeting_constraints']} meet the constraints{': ' + _E(constraints) if constraints else ''}) "
        f"&middot; ranked by {_E(body['objective'])}</p>",
        f"<p>The deflated Sharpe ratio (Bailey &amp; Lopez de Prado, 2014) is the probability that a trial's "
        f"true Sharpe ratio beats the best one {counts['ok']} trials would show by luck alone, given the "
        "spread of their Sharpe ratios and the skew and fat tails of each trial's daily returns. A best trial "
        "with a low one is a lucky one.</p>",
        "<h2>Objective heatmap</h2>", heatmap(body),
        f"<h2>Equity of the best {min(BEST_CURVES, counts['meeting_constraints'])} (rebased to 1.0)</h2>",
        best_curves(prep, body),
        "<h2>Trials</h2>", trials_table(body),
        "</body></html>\n",
    ]
    _write_atomic(Path(path), "\n".join(parts))
