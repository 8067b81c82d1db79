from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from botctl.engine.metrics import compute_metrics, monthly_returns
from botctl.runtime import report as report_mod
from botctl.runtime.report import write_html_report


def _dates(n: int) -> list[dt.date]:
    out, d = [], dt.date(2019, 12, 2)
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def _curves(n: int):
    rng = np.random.default_rng(3)
    rb = rng.normal(0.0003, 0.011, n - 1)
    bench = 400.0 * np.concatenate([[1.0], np.cumprod(1 + rb)])
    a = 1e5 * np.concatenate([[1.0], np.cumprod(1 + 0.6 * rb + 0.0001)])
    b = 1e5 * np.concatenate([[1.0], np.cumprod(1 + rng.normal(0.0002, 0.006, n - 1))])
    return bench, {"momentum": a, "risk parity": b}


def _write(tmp_path, n=300, curves=None, bench_name="SPY", title="Backtest 2020"):
    dates = _dates(n)
    bench, default_curves = _curves(n)
    curves = default_curves if curves is None else curves
    metrics = {name: compute_metrics(dates, nav, benchmark_nav=bench) for name, nav in curves.items()}
    metrics[bench_name] = compute_metrics(dates, bench)
    monthly = {name: monthly_returns(dates, nav) for name, nav in curves.items()}
    path = tmp_path / "out" / "report.html"
    write_html_report(
        path,
        title=title,
        dates=dates,
        curves=curves,
        benchmark_name=bench_name,
        benchmark_nav=bench,
        metrics=metrics,
        monthly=monthly,
    )
    return path, path.read_text(encoding="utf-8")


class _Checker(HTMLParser):
    """Checks tags balance (ignoring void elements) and collects tag names and hrefs/srcs."""

    VOID = {"meta", "br", "hr", "img", "input", "link", "rect", "line", "polyline", "circle", "path"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.errors: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("href", "src") and v:
                self.external.append(v)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
            return
        self.stack.pop()


def test_report_is_written_and_self_contained(tmp_path):
    path, text = _write(tmp_path)
    assert path.exists()
    assert text.startswith("<!DOCTYPE html>")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    assert checker.tags.count("svg") == 3  # equity (linear and log scale) and drawdown charts
    assert "polyline" in checker.tags
    # No external resources of any kind.
    assert checker.external == []
    assert "<script" not in text.lower()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text
    assert "@import" not in text and "url(" not in text
    # Names and sections.
    for name in ("momentum", "risk parity", "SPY"):
        assert name in text
    assert "<title>Backtest 2020</title>" in text
    assert "Jan" in text and "Dec" in text and 'class="monthly"' in text
    # No temp file left behind.
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


def test_metrics_table_formats_fractions_as_percentages(tmp_path):
    dates = _dates(5)
    nav = np.array([100.0, 200.0, 150.0, 100.0, 150.0])
    metrics = {"s": compute_metrics(dates, nav, trades=1234), "B": compute_metrics(dates, nav)}
    path = tmp_path / "r.html"
    write_html_report(
        path, title="t", dates=dates, curves={"s": nav}, benchmark_name="B",
        benchmark_nav=nav, metrics=metrics, monthly={},
    )
    text = path.read_text()
    table = text[text.index('class="metrics') : text.index("<h2>Equity")]
    assert "-50.00%" in table  # max drawdown
    assert "50.00%" in table  # total return
    assert "1,234" in table  # trades as an int
    assert "Max drawdown" in table and "Sharpe" in table
    assert "nan" not in table.lower() and "inf" not in table.lower()
    assert "(benchmark)" in table


def test_monthly_table_colours_and_year_column(tmp_path):
    dates = [dt.date(2021, 1, 29), dt.date(2021, 2, 26), dt.date(2021, 3, 31), dt.date(2022, 1, 31)]
    nav = np.array([100.0, 110.0, 99.0, 99.0])
    path = tmp_path / "r.html"
    write_html_report(
        path, title="t", dates=dates, curves={"s": nav}, benchmark_name="B",
        benchmark_nav=nav, metrics={}, monthly={"s": monthly_returns(dates, nav)},
    )
    text = path.read_text()
    table = text[text.index('class="monthly"') :]
    assert '<td class="pos">10.0%</td>' in table  # Feb
    assert '<td class="neg">-10.0%</td>' in table  # Mar
    assert '<td class="year neg">-1.0%</td>' in table  # 2021: 1.1 * 0.9 - 1
    assert re.search(r'<td class="name">2021</td>', table)
    assert re.search(r'<td class="name">2022</td>', table)
    headers = re.findall(r"<th>(\w+)</th>", table[: table.index("</thead>")])
    assert headers == ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Year"]
    # The benchmark's metrics are computed when the caller gives none.
    assert "(benchmark)" in text and "Total return" in text


def test_hostile_names_are_escaped(tmp_path):
    n = 50
    bench, curves = _curves(n)
    evil = "<script>alert('x')</script>"
    path, text = _write(
        tmp_path, n=n, curves={evil: curves["momentum"]}, bench_name="B&<b>", title="<img src=x>"
    )
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "B&amp;&lt;b&gt;" in text
    assert "<img" not in text
    assert "&lt;img src=x&gt;" in text


def test_long_series_are_downsampled(tmp_path):
    n = 6000
    path, text = _write(tmp_path, n=n)
    for points in re.findall(r'points="([^"]*)"', text):
        assert len(points.split()) <= report_mod.MAX_POINTS + 2
    assert len(text) < 1_000_000


def test_downsample_keeps_extremes():
    y = np.sin(np.linspace(0, 20, 10_000))
    y[1234] = -5.0
    y[8765] = 7.0
    idx = report_mod._downsample(y, 400)
    assert idx.size <= 402
    assert {0, 9_999, 1234, 8765} <= set(idx.tolist())
    assert np.all(np.diff(idx) > 0)


def test_degenerate_inputs_do_not_crash(tmp_path):
    for dates, nav in (([], np.array([])), ([dt.date(2021, 1, 4)], np.array([1.0]))):
        path = tmp_path / f"r{len(dates)}.html"
        write_html_report(
            path, title="t", dates=dates, curves={"s": nav}, benchmark_name="B",
            benchmark_nav=nav, metrics={}, monthly={"s": monthly_returns(dates, nav)},
        )
        assert "<svg" in path.read_text()
    # A NaN gap in a curve breaks the line rather than breaking the report.
    dates = _dates(10)
    nav = np.linspace(1, 2, 10)
    nav[4] = np.nan
    path = tmp_path / "gap.html"
    write_html_report(
        path, title="t", dates=dates, curves={"s": nav}, benchmark_name="B",
        benchmark_nav=np.linspace(1, 1.5, 10), metrics={}, monthly={},
    )
    assert "NaN" not in path.read_text()


def test_length_mismatch_raises_and_leaves_no_file(tmp_path):
    path = tmp_path / "r.html"
    with pytest.raises(ValueError):
        write_html_report(
            path, title="t", dates=_dates(3), curves={"s": np.ones(4)}, benchmark_name="B",
            benchmark_nav=np.ones(3), metrics={}, monthly={},
        )
    assert list(tmp_path.iterdir()) == []


def test_overwrite_is_atomic_replace(tmp_path):
    path, first = _write(tmp_path, title="first")
    path2, second = _write(tmp_path, title="second")
    assert path == path2
    assert "second" in path.read_text() and "<title>first</title>" not in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]
