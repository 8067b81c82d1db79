"""The backtest table: fits the terminal, colours gains and losses, says what it left out."""

from __future__ import annotations

import io
import re

from rich.console import Console

from botctl.cli.backtest_cmd import COLUMNS, print_table


def metrics(total: float, trips=None) -> dict:
    return {"total_return": total, "cagr": total / 10, "volatility": 0.15, "sharpe": 0.5, "sortino": 0.7,
            "max_drawdown": -0.25, "max_drawdown_days": 400, "calmar": 0.3, "turnover": 4.5, "trades": 480,
            "exposure": 1.2, "alpha": -0.01, "beta": 0.8, "correlation": 0.7, "blocked": {},
            "breaker_trips": trips or [], "trade_stats": {"round_trips": 118, "win_rate": 0.5254}}


TRIP = {"rule": "max_daily_loss", "at": "2025-04-04", "value": -0.094, "limit": -0.08, "resumed_at": None,
        "reason": "NAV fell 9.4% in a session", "skipped_rebalances": ["2025-05-01", "2025-06-02"]}
BODY = {"run_id": "bt-x", "start": "2015-01-02", "end": "2025-12-24", "breakers": "halt",
        "models": {"SectorRotationAdaptive_v3": metrics(1.9923, [TRIP])},
        "accounts": {"rotation-sim": metrics(-0.1)},
        "benchmark": {"symbol": "SPY", **{k: v for k, v in metrics(3.0).items() if k not in ("trades", "turnover")}}}


def render(width: int, terminal: bool) -> str:
    out = io.StringIO()
    print_table(BODY, Console(file=out, width=width, force_terminal=terminal, color_system="standard" if terminal else None))
    return out.getvalue()


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_on_a_narrow_terminal_the_table_fits_and_names_what_it_left_out():
    text = plain(render(80, terminal=True))
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "199.23%" in text and "-10.00%" in text  # whole numbers, never cut
    assert "…" not in text
    assert re.search(r"\(\d+ columns left out at 80 characters wide: .*--json has every figure\)", text.replace("\n", " "))


def test_gains_are_green_and_losses_red():
    text = render(200, terminal=True)
    assert "\x1b[32m199.23%" in text and "\x1b[31m-10.00%" in text


def test_written_to_a_file_the_table_is_whole_with_the_breaker_trip():
    text = render(80, terminal=False)
    header = next(line for line in text.splitlines() if "total" in line)
    assert all(h in header for h, _, _ in COLUMNS)
    assert "SectorRotationAdaptive_v3: circuit breaker max_daily_loss tripped on 2025-04-04" in text
    assert "2 scheduled rebalance(s) skipped (2025-05-01 .. 2025-06-02)" in text
