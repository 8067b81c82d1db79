"""A self-contained HTML backtest report.

One file, no external JavaScript, CSS, fonts or images, nothing fetched from the
network: the charts are inline SVG drawn here, the styles an inline ``<style>``.
Every piece of text that comes from the caller (title, curve names, metric keys)
goes through :func:`html.escape`. The file is written atomically (a temporary
file in the same directory, then :func:`os.replace`), so a reader never sees a
half-written report.
"""

from __future__ import annotations

import datetime
import html
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypedDict, cast

import numpy as np

from botctl.engine.metrics import as_date, compute_metrics, drawdown_series

__all__ = ["write_html_report"]

MAX_POINTS = 1500
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#393b79",
)
BENCHMARK_COLOR = "#555555"

# Metric keys whose values are fractions, shown as percentages.
PERCENT_KEYS = frozenset(
    {"total_return", "cagr", "volatility", "max_drawdown", "turnover", "exposure", "alpha"}
)
INT_KEYS = frozenset({"trades", "max_drawdown_days"})
LABELS = {
    "total_return": "Total return",
    "cagr": "CAGR",
    "volatility": "Volatility",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "max_drawdown": "Max drawdown",
    "max_drawdown_days": "Max DD days",
    "calmar": "Calmar",
    "turnover": "Turnover / yr",
    "trades": "Trades",
    "exposure": "Exposure",
    "alpha": "Alpha",
    "beta": "Beta",
    "correlation": "Correlation",
}

# The metrics tables' columns: (key, header, kind). Trade statistics live under
# "trade_stats" (round trips, engine.roundtrips); "blocked" and "breaker_trips" become text.
RETURN_COLUMNS = (
    ("total_return", "Total return", "pct"), ("cagr", "CAGR", "pct"), ("volatility", "Volatility", "pct"),
    ("sharpe", "Sharpe", "num"), ("sortino", "Sortino", "num"), ("max_drawdown", "Max drawdown", "pct"),
    ("max_drawdown_days", "Max DD days", "int"), ("calmar", "Calmar", "num"), ("alpha", "Alpha", "pct"),
    ("beta", "Beta", "num"), ("correlation", "Correlation", "num"),
)
TRADING_COLUMNS = (
    ("trades", "Fills", "int"), ("round_trips", "Round trips", "int"), ("win_rate", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "num"), ("expectancy", "Expectancy / trip", "money"),
    ("avg_sessions_held", "Avg sessions held", "num"), ("turnover", "Turnover / yr", "pct"),
    ("exposure", "Exposure", "pct"), ("blocked", "Orders blocked", "blocked"),
    ("breaker_trips", "Circuit breakers", "trips"),
)
TRADE_STAT_KEYS = frozenset({"round_trips", "win_rate", "profit_factor", "expectancy", "avg_sessions_held"})
# Dash patterns that tell overlapping curves apart where colours alone would hide one.
DASHES = ("", "9 3", "3 3", "12 3 3 3", "6 2", "1 3", "14 4", "4 2 1 2")
BENCHMARK_DASH = "6 4"

_E = html.escape

_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;
margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 16px}
h2{font-size:17px;margin:28px 0 8px}
h3{font-size:14px;margin:18px 0 6px}
table{border-collapse:collapse;font-size:12px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f4f4f4}
td.name,th.name{text-align:left}
tr.benchmark td{color:#555;font-style:italic}
td.pos{color:#11712b}
td.neg{color:#c0211f}
td.na{color:#aaa}
td.year{font-weight:600}
svg{display:block;width:100%;height:auto}
svg text{font-size:11px;fill:#333}
.wrap{overflow-x:auto}
table.metrics{width:100%}
table.metrics td.name{white-space:normal;min-width:12em}
td.note{text-align:left;white-space:normal}
p.meta{color:#444;font-size:13px;line-height:1.5}
ul.steps{margin:4px 0 10px 18px;padding:0;font-size:13px}
ul.steps code{background:#f4f4f4;padding:0 3px}
.scale input{margin:0 4px 0 12px}
.scale .log{display:none}
#scale-log:checked ~ .log{display:block}
#scale-log:checked ~ .lin{display:none}
details{margin:6px 0}
summary{cursor:pointer;font-size:14px}
"""


# ---------------------------------------------------------------------------
# formatting


def _is_num(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _fmt_metric(key: str, value: object) -> tuple[str, str]:
    """(text, css class) of one metric cell."""
    if value is None or (_is_num(value) and not math.isfinite(float(value))):  # type: ignore[arg-type]
        return "—", "na"
    if isinstance(value, bool) or not _is_num(value):
        return _E(str(value)), ""
    v = float(value)  # type: ignore[arg-type]
    if key in INT_KEYS:
        return f"{int(round(v)):,}", ""
    if key in PERCENT_KEYS:
        return f"{v * 100:,.2f}%", ""
    return f"{v:.2f}", ""


def _fmt_pct(value: float | None) -> tuple[str, str]:
    if value is None or not math.isfinite(value):
        return "—", "na"
    text = f"{value * 100:.1f}%"
    if text in ("0.0%", "-0.0%"):
        return "0.0%", ""
    return text, ("pos" if value > 0 else "neg")


# ---------------------------------------------------------------------------
# SVG helpers


def _downsample(y: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices to draw: all of them, or per bucket the first/min/max/last, keeping the extremes."""
    n = y.size
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, max_points // 4)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep: list[int] = [0, n - 1]
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        if b <= a:
            continue
        keep.append(a)
        keep.append(b - 1)
        seg = y[a:b]
        finite = np.isfinite(seg)
        if finite.any():
            masked_lo = np.where(finite, seg, np.inf)
            masked_hi = np.where(finite, seg, -np.inf)
            keep.append(a + int(np.argmin(masked_lo)))
            keep.append(a + int(np.argmax(masked_hi)))
    return np.unique(np.asarray(keep, dtype=np.int64))


def _nice_step(span: float, target: int) -> float:
    """The 1/2/2.5/5 x 10^k step nearest (in log terms) to span / target."""
    raw = span / max(1, target)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    mag = 10.0 ** math.floor(math.log10(raw))
    return min((m * mag for m in (1.0, 2.0, 2.5, 5.0, 10.0)), key=lambda s: abs(math.log(s / raw)))


def _value_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    step = _nice_step(hi - lo, target)
    k0 = math.ceil(lo / step - 1e-9)
    ticks: list[float] = []
    for k in range(k0, k0 + 50):
        t = k * step
        if t > hi + step * 1e-9:
            break
        ticks.append(round(t, 12) + 0.0)
    return ticks


def _date_ticks(d0: datetime.date, d1: datetime.date) -> list[tuple[datetime.date, str]]:
    span = (d1 - d0).days
    ticks: list[tuple[datetime.date, str]] = []
    if span >= 3 * 365:
        years = d1.year - d0.year
        step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 10**6) if years / s <= 8)
        y = d0.year + 1
        y += (-y) % step
        while y <= d1.year:
            ticks.append((datetime.date(y, 1, 1), str(y)))
            y += step
    elif span >= 60:
        months = span / 30.44
        step = next(s for s in (1, 2, 3, 6, 12) if months / s <= 8)
        y, m = d0.year, d0.month + 1
        if m > 12:
            y, m = y + 1, 1
        while (m - 1) % step:
            m += 1
            if m > 12:
                y, m = y + 1, 1
        while datetime.date(y, m, 1) <= d1:
            ticks.append((datetime.date(y, m, 1), f"{y}-{m:02d}"))
            m += step
            while m > 12:
                y, m = y + 1, m - 12
    elif span > 0:
        for i in range(6):
            d = d0 + datetime.timedelta(days=round(span * i / 5))
            ticks.append((d, d.isoformat()))
    if len(ticks) < 2:
        ticks = [(d0, d0.isoformat())] + ([(d1, d1.isoformat())] if d1 != d0 else [])
    return ticks


class _Axes(TypedDict):
    """What the charts of one report share: the dates and the dated markers."""

    dates: Sequence[datetime.date]
    markers: Sequence[tuple[datetime.date, str]]


def _line_chart(
    *,
    dates: Sequence[datetime.date],
    series: list[tuple[str, np.ndarray, str, str]],
    value_fmt,
    aria: str,
    baseline: float | None = None,
    width: int = 1200,
    height: int = 380,
    ticks: list[float] | None = None,
    markers: Sequence[tuple[datetime.date, str]] = (),
) -> str:
    """An SVG line chart; ``series`` is ``(name, values, color, dash pattern or "")``;
    ``ticks`` are the value ticks (nice ones when None); ``markers`` are dated vertical
    lines (circuit breaker trips) with a short label."""
    left, right, top, bottom = 64, 16, 12, 28
    # Legend rows at the top.
    legend_items = []
    x_cursor, row = 0.0, 0
    for name, _, color, dashed in series:
        w = 34 + 7 * min(len(name), 60)
        if x_cursor > 0 and x_cursor + w > width - left - right:
            x_cursor, row = 0.0, row + 1
        legend_items.append((x_cursor, row, name, color, dashed))
        x_cursor += w + 14
    legend_h = (row + 1) * 18 + 8 if series else 0
    top += legend_h
    total_h = height + legend_h
    plot_w = width - left - right
    plot_h = total_h - top - bottom

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {total_h}" '
        f'width="{width}" height="{total_h}" role="img" aria-label="{_E(aria)}">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#ccc"/>',
    ]
    for lx, lrow, name, color, dashed in legend_items:
        x = left + lx
        y: float = 8 + lrow * 18
        dash = f' stroke-dasharray="{dashed}"' if dashed else ""
        parts.append(
            f'<line x1="{x:.1f}" y1="{y + 6}" x2="{x + 26:.1f}" y2="{y + 6}" stroke="{color}" '
            f'stroke-width="2.5"{dash}/>'
        )
        parts.append(f'<text x="{x + 32:.1f}" y="{y + 10}">{_E(name)}</text>')

    day_list = [as_date(d) for d in dates]
    all_vals = [v[np.isfinite(v)] for _, v, _, _ in series]
    finite_vals = np.concatenate(all_vals) if all_vals else np.empty(0)
    if not day_list or finite_vals.size == 0:
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" '
            f'text-anchor="middle">no data</text></svg>'
        )
        return "".join(parts)

    ords = np.asarray([d.toordinal() for d in day_list], dtype=np.float64)
    x0, x1 = float(ords[0]), float(ords[-1])
    if x1 <= x0:
        x0, x1 = x0 - 1.0, x1 + 1.0
    lo, hi = float(finite_vals.min()), float(finite_vals.max())
    if baseline is not None:
        lo, hi = min(lo, baseline), max(hi, baseline)
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.05 or 0.05
        lo, hi = lo - pad, hi + pad
    else:
        pad = (hi - lo) * 0.04
        lo, hi = lo - pad, hi + pad

    def sx(o: float) -> float:
        return left + (o - x0) / (x1 - x0) * plot_w

    def sy(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h

    # Grid and value ticks.
    for t in (_value_ticks(lo, hi) if ticks is None else [t for t in ticks if lo <= t <= hi]):
        y = sy(t)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_E(value_fmt(t))}</text>'
        )
    # Date ticks.
    for d, label in _date_ticks(day_list[0], day_list[-1]):
        x = sx(float(d.toordinal()))
        parts.append(
            f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" stroke="#999"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 17}" text-anchor="middle">{_E(label)}</text>'
        )
    if baseline is not None:
        y = sy(baseline)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#999" '
            f'stroke-width="1"/>'
        )

    for i, (day, label) in enumerate(sorted(markers)):
        x = sx(float(day.toordinal()))
        if left <= x <= left + plot_w:
            parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#c0211f" '
                         f'stroke-width="1" stroke-dasharray="2 2"/>')
            if label:  # staggered rows, written towards the middle so none runs off the chart
                anchor, dx = ("end", -3) if x > left + plot_w / 2 else ("start", 3)
                parts.append(f'<text x="{x + dx:.1f}" y="{top + 12 + 13 * (i % 4)}" text-anchor="{anchor}" '
                             f'fill="#c0211f">{_E(label)}</text>')

    # Lines: the benchmark first so the strategies draw on top of it.
    ordered = sorted(series, key=lambda s: s[2] != BENCHMARK_COLOR)
    for name, values, color, dashed in ordered:
        idx = _downsample(values)
        dash = f' stroke-dasharray="{dashed}"' if dashed else ""
        segment: list[str] = []
        segments: list[list[str]] = []
        for i in idx.tolist():
            v = float(values[i])
            if math.isfinite(v):
                segment.append(f"{sx(float(ords[i])):.1f},{sy(v):.1f}")
            elif segment:
                segments.append(segment)
                segment = []
        if segment:
            segments.append(segment)
        parts.append(f'<g><title>{_E(name)}</title>')
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{color}"/>')
            else:
                parts.append(
                    f'<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} '
                    f'stroke-linejoin="round" points="{" ".join(seg)}"/>'
                )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------------
# sections


def _rebase(values: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).reshape(-1).copy()
    ok = np.flatnonzero(np.isfinite(out) & (out > 0))
    if ok.size == 0:
        return np.full(out.shape, np.nan)
    return out / out[ok[0]]


def _metric_value(metrics: Mapping[str, object], key: str) -> object:
    if key in TRADE_STAT_KEYS:
        stats = metrics.get("trade_stats")
        return stats.get(key) if isinstance(stats, Mapping) else None
    return metrics.get(key)


def _cell(key: str, kind: str, value: object) -> tuple[str, str]:
    """(html, css class) of one metrics cell."""
    if kind == "blocked":
        if not isinstance(value, Mapping) or not value:
            return ("none", "na") if isinstance(value, Mapping) else ("—", "na")
        return "<br>".join(f"{_E(str(rule))} {int(n):,}" for rule, n in value.items()), "note"
    if kind == "trips":
        if not isinstance(value, Sequence) or not value:
            return ("none", "na") if isinstance(value, Sequence) else ("—", "na")
        lines = []
        for trip in value:
            then = f"resumed {trip.get('resumed_at')}" if trip.get("resumed_at") else "halted to the end"
            lines.append(f"<b>{_E(str(trip.get('rule')))}</b> {_E(str(trip.get('at')))}: {_E(then)}")
        return "<br>".join(lines), "note neg"
    if kind == "int" and _is_num(value) and math.isfinite(float(value)):  # type: ignore[arg-type]
        return f"{int(round(float(value))):,}", ""  # type: ignore[arg-type]
    if kind == "money":
        if not _is_num(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
            return "—", "na"
        return f"${float(value):,.0f}", ("pos" if float(value) > 0 else "neg")  # type: ignore[arg-type]
    if kind == "pct" and key in PERCENT_KEYS | {"win_rate"} and _is_num(value) and math.isfinite(float(value)):  # type: ignore[arg-type]
        return f"{float(value) * 100:,.2f}%", ""  # type: ignore[arg-type]
    return _fmt_metric(key, value)


def _metrics_table(rows: list[tuple[str, bool]], metrics: Mapping[str, Mapping[str, object]],
                   columns, css: str) -> str:
    head = "".join(f"<th>{_E(label)}</th>" for _, label, _ in columns)
    out = [f'<div class="wrap"><table class="metrics {css}"><thead><tr><th class="name">Name</th>{head}</tr></thead><tbody>']
    for name, is_bench in rows:
        m = metrics.get(name, {})
        cls = ' class="benchmark"' if is_bench else ""
        cells = []
        for key, _, kind in columns:
            text, style = _cell(key, kind, _metric_value(m, key))
            cells.append(f'<td class="{style}">{text}</td>' if style else f"<td>{text}</td>")
        label = _E(name) + (" (benchmark)" if is_bench else "")
        out.append(f'<tr{cls}><td class="name">{label}</td>{"".join(cells)}</tr>')
    out.append("</tbody></table></div>")
    return "".join(out)


def _by_year(rows: Sequence[tuple[int, int, float]]) -> dict[int, dict[int, float]]:
    by_year: dict[int, dict[int, float]] = {}
    for year, month, ret in rows:
        by_year.setdefault(int(year), {})[int(month)] = float(ret)
    return by_year


def _year_row(label: str, months: Mapping[int, float], css: str = "") -> str:
    cells = []
    growth = 1.0
    for m in range(1, 13):
        r = months.get(m)
        if r is None:
            cells.append("<td></td>")
            continue
        if math.isfinite(r):
            growth *= 1.0 + r
        text, style = _fmt_pct(r)
        cells.append(f'<td class="{style}">{text}</td>' if style else f"<td>{text}</td>")
    year_ret = growth - 1.0 if months and all(math.isfinite(r) for r in months.values()) else None
    text, style = _fmt_pct(year_ret)
    cells.append(f'<td class="year {style}">{text}</td>')
    cls = f' class="{css}"' if css else ""
    return f'<tr{cls}><td class="name">{label}</td>{"".join(cells)}</tr>'


def _monthly_table(rows: Sequence[tuple[int, int, float]],
                   benchmark: tuple[str, Sequence[tuple[int, int, float]]] | None = None) -> str:
    """Months by year; with `benchmark` (name, its monthly rows), its row under each year's."""
    by_year = _by_year(rows)
    bench_name, bench_rows = benchmark if benchmark else ("", ())
    bench = _by_year(bench_rows)
    head = "".join(f"<th>{m}</th>" for m in MONTHS)
    out = [f'<div class="wrap"><table class="monthly"><thead><tr><th class="name">Year</th>{head}<th>Year</th></tr></thead><tbody>']
    for year in sorted(by_year):
        out.append(_year_row(str(year), by_year[year]))
        if benchmark is not None and year in bench:
            months = {m: r for m, r in bench[year].items() if m in by_year[year]}  # the same months only
            out.append(_year_row(f"{year} {_E(bench_name)}", months, "benchmark"))
    out.append("</tbody></table></div>")
    return "".join(out)


def _pct_tick(v: float) -> str:
    return f"{v * 100 + 0.0:.6g}%"


def _num_tick(v: float) -> str:
    return f"{v + 0.0:.6g}"


# ---------------------------------------------------------------------------
# entry point


LOG_TICKS = tuple(m * 10.0 ** k for k in range(-3, 4) for m in (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0))


def _log_tick(v: float) -> str:
    return f"{10 ** v:.3g}"


def _identical_to(navs: Mapping[str, np.ndarray]) -> dict[str, str]:
    """name -> the earlier curve it equals exactly (its line would hide the other's)."""
    out: dict[str, str] = {}
    names = list(navs)
    for i, name in enumerate(names):
        for earlier in names[:i]:
            if earlier not in out and np.array_equal(navs[name], navs[earlier], equal_nan=True):
                out[name] = earlier
                break
    return out


def _context_html(context: Mapping[str, object]) -> str:
    facts = [(label, context.get(key)) for key, label in
             (("run_id", "run"), ("plan_id", "plan"), ("data_source", "data"), ("breakers", "circuit breakers"),
              ("rebalancing", "between rebalances"))]
    return '<p class="meta">' + " &middot; ".join(f"{_E(label)}: <b>{_E(str(value))}</b>"
                                                   for label, value in facts if value is not None) + "</p>"


def _models_html(models: Mapping[str, Mapping[str, object]]) -> str:
    out = ["<h2>Models</h2>"]
    for name, model in models.items():
        out.append(f"<h3>{_E(name)}</h3>")
        what = [str(model[k]) for k in ("description",) if model.get(k)]
        what += [f"{k}: {model[k]}" for k in ("universe", "schedule", "budget") if model.get(k) is not None]
        out.append(f'<p class="meta">{"<br>".join(_E(w) for w in what)}</p>')
        steps = cast("list[object]", model.get("steps") or [])
        out.append('<ul class="steps">' + "".join(f"<li><code>{_E(str(step))}</code></li>" for step in steps) + "</ul>")
    return "".join(out)


TRIP_COLUMNS = (("symbol", "Symbol"), ("entry_at", "Entry"), ("exit_at", "Exit"), ("entry_price", "Entry price"),
                ("exit_price", "Exit price"), ("qty", "Qty"), ("pnl", "P&L"), ("return", "Return"),
                ("sessions_held", "Sessions"), ("exit_reason", "Exit reason"), ("mae", "MAE"), ("mfe", "MFE"))


def _trip_cell(key: str, value: object) -> str:
    if value is None:
        return '<td class="na">open</td>' if key == "exit_at" else '<td class="na">—</td>'
    if key in ("entry_price", "exit_price"):
        return f"<td>{float(value):,.2f}</td>"  # type: ignore[arg-type]
    if key == "qty":
        return f"<td>{float(value):,.4g}</td>"  # type: ignore[arg-type]
    if key == "pnl":
        v = float(value)  # type: ignore[arg-type]
        return f'<td class="{"pos" if v > 0 else "neg" if v < 0 else ""}">{v:+,.2f}</td>'
    if key in ("return", "mae", "mfe"):
        text, css = _fmt_pct(float(value))  # type: ignore[arg-type]
        return f'<td class="{css}">{text}</td>'
    if key in ("symbol", "exit_reason"):
        return f'<td class="name">{_E(str(value))}</td>'
    return f"<td>{_E(str(value))}</td>"


def _round_trips_html(trips: Mapping[str, Sequence[Mapping[str, object]]]) -> str:
    out = ["<h2>Round trips</h2>",
           '<p class="meta">Flat to flat, FIFO lots, at the total-return-adjusted prices returns are measured '
           "with; still-open positions are marked at the last close (exit: open; reason end, or halt when a "
           "circuit breaker froze the book). MAE/MFE: the worst and best close while held, from the entry price.</p>"]
    head = "".join(f"<th>{_E(label)}</th>" for _, label in TRIP_COLUMNS)
    for name, rows in trips.items():
        closed = sum(1 for r in rows if r.get("exit_at") is not None)
        out.append(f"<details><summary>{_E(name)}: {closed} closed, {len(rows) - closed} open</summary>")
        out.append(f'<div class="wrap"><table class="trips"><thead><tr>{head}</tr></thead><tbody>')
        for r in rows:
            out.append("<tr>" + "".join(_trip_cell(k, r.get(k)) for k, _ in TRIP_COLUMNS) + "</tr>")
        out.append("</tbody></table></div></details>")
    return "".join(out)


def write_html_report(
    path: str | os.PathLike[str],
    *,
    title: str,
    dates: Sequence[datetime.date],
    curves: dict[str, np.ndarray],
    benchmark_name: str,
    benchmark_nav: np.ndarray,
    metrics: dict[str, dict],
    monthly: dict[str, list[tuple[int, int, float]]],
    context: Mapping[str, object] | None = None,
) -> None:
    """Write the report for ``curves`` (name -> nav aligned with ``dates``) against a benchmark.

    ``metrics`` maps a curve (or the benchmark) name to its :func:`compute_metrics`
    dict (with ``trade_stats``, ``blocked`` and ``breaker_trips`` when a backtest made it);
    when the benchmark has no entry its metrics are computed here. ``monthly`` maps a name
    to its :func:`monthly_returns` list; one table is drawn per entry, with the benchmark's
    row under each year when the benchmark has an entry. ``context`` may give ``run_id``,
    ``plan_id``, ``data_source``, ``breakers``, ``models`` (name -> description, universe,
    schedule, budget, steps) and ``round_trips`` (curve name -> its round-trip records).
    """
    context = context or {}
    n = len(dates)
    navs: dict[str, np.ndarray] = {}
    for name, values in curves.items():
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.size != n:
            raise ValueError(f"curve {name!r} has {arr.size} points but there are {n} dates")
        navs[str(name)] = arr
    bench = np.asarray(benchmark_nav, dtype=np.float64).reshape(-1)
    if bench.size != n:
        raise ValueError(f"benchmark {benchmark_name!r} has {bench.size} points but there are {n} dates")

    all_metrics: dict[str, Mapping[str, object]] = {str(k): v for k, v in metrics.items()}
    if benchmark_name not in all_metrics:
        all_metrics[benchmark_name] = compute_metrics(dates, bench)
    rows: list[tuple[str, bool]] = [(name, False) for name in navs]
    rows.append((benchmark_name, True))
    listed = {name for name, _ in rows}
    rows.extend((name, False) for name in all_metrics if name not in listed)

    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(navs)}
    dashes = {name: DASHES[i % len(DASHES)] for i, name in enumerate(navs)}
    same = _identical_to(navs)
    labels = {name: f"{name} (= {same[name]})" if name in same else name for name in navs}
    rebased = {name: _rebase(v) for name, v in navs.items()}
    bench_rebased = _rebase(bench)
    equity_series = [(labels[name], v, colors[name], dashes[name]) for name, v in rebased.items()]
    equity_series.append((benchmark_name, bench_rebased, BENCHMARK_COLOR, BENCHMARK_DASH))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_series = [(label, np.log10(np.where(v > 0, v, np.nan)), color, dash) for label, v, color, dash in equity_series]
    dd_series = [(labels[name], drawdown_series(v), colors[name], dashes[name]) for name, v in navs.items()]
    dd_series.append((benchmark_name, drawdown_series(bench), BENCHMARK_COLOR, BENCHMARK_DASH))
    markers = []
    for name in navs:
        for trip in cast("list[dict[str, object]]", all_metrics.get(name, {}).get("breaker_trips") or []):
            markers.append((datetime.date.fromisoformat(str(trip["at"])), f"{name}: {trip['rule']} {trip['at']}"))

    day_list = [as_date(d) for d in dates]
    period = f"{day_list[0].isoformat()} to {day_list[-1].isoformat()} ({n} trading days)" if day_list else "no data"
    chart = _Axes(dates=day_list, markers=markers)
    unlabelled = _Axes(dates=day_list, markers=[(day, "") for day, _ in markers])

    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_E(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_E(title)}</h1>",
        f"<p>{_E(period)} &middot; benchmark: {_E(benchmark_name)}</p>",
        _context_html(context),
        "<h2>Metrics</h2>",
        "<h3>Returns and risk</h3>",
        _metrics_table(rows, all_metrics, RETURN_COLUMNS, "returns"),
        "<h3>Trading (trade statistics by round trip)</h3>",
        _metrics_table(rows, all_metrics, TRADING_COLUMNS, "trading"),
        "<h2>Equity (rebased to 1.0)</h2>",
        '<div class="scale">',
        '<input type="radio" name="scale" id="scale-linear" checked><label for="scale-linear">linear</label>',
        '<input type="radio" name="scale" id="scale-log"><label for="scale-log">log scale</label>',
        '<div class="lin">',
        _line_chart(series=equity_series, value_fmt=_num_tick, aria="equity curves rebased to 1.0", baseline=1.0,
                    **chart),
        '</div><div class="log">',
        _line_chart(series=log_series, value_fmt=_log_tick, aria="equity curves rebased to 1.0, log scale",
                    baseline=0.0, ticks=[math.log10(t) for t in LOG_TICKS], **chart),
        "</div></div>",
        "<h2>Drawdown</h2>",
        _line_chart(series=dd_series, value_fmt=_pct_tick, aria="drawdown from running peak", baseline=0.0,
                    height=280, **unlabelled),
        "<h2>Monthly returns</h2>",
    ]
    bench_monthly = monthly.get(benchmark_name)
    for name, rows_m in monthly.items():
        body.append(f"<h3>{_E(str(name))}</h3>")
        with_bench = (benchmark_name, bench_monthly) if bench_monthly is not None and name != benchmark_name else None
        body.append(_monthly_table(rows_m, with_bench))
    if context.get("models"):
        body.append(_models_html(context["models"]))  # type: ignore[arg-type]
    if context.get("round_trips"):
        body.append(_round_trips_html(context["round_trips"]))  # type: ignore[arg-type]
    body.append("</body></html>\n")
    _write_atomic(Path(path), "\n".join(body))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
