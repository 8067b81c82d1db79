"""Hand-made bars, plans and brokers for the engine tests (imported by the tests in this folder)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from botctl.cli.common import Globals, load_plan
from botctl.records import Order
from botctl.spec.steps import Step
from botctl.strategy.bars import Bars
from botctl.strategy.evaluate import Decision, decide
from botctl.strategy.signals import Signals

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 3, 1, 15, 0, tzinfo=timezone.utc)


def weekdays(n: int, start: date = date(2024, 1, 2)) -> tuple[date, ...]:
    """`n` consecutive Monday-to-Friday dates from `start` (holidays ignored)."""
    out: list[date] = []
    day = start
    while len(out) < n:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return tuple(out)


def make_bars(closes: dict[str, list[float] | np.ndarray], opens: dict[str, list[float]] | None = None,
              dates: tuple[date, ...] | None = None) -> Bars:
    """Bars from per-symbol close lists of equal length (NaN = no bar). Opens default to closes."""
    symbols = tuple(closes)
    close = np.column_stack([np.asarray(closes[s], dtype=np.float64) for s in symbols])
    open_ = close.copy() if opens is None else np.column_stack(
        [np.asarray(opens.get(s, closes[s]), dtype=np.float64) for s in symbols])
    n = close.shape[0]
    return Bars(dates or weekdays(n), symbols, open_, close)


def growth(rate: float, n: int, start: float = 100.0) -> np.ndarray:
    """Closes compounding at `rate` per session."""
    return start * (1.0 + rate) ** np.arange(n)


def run_steps(bars: Bars, steps: tuple[Step, ...], row: int, universe: tuple[str, ...] | None = None) -> Decision:
    universe = universe if universe is not None else bars.symbols
    return decide(steps, universe, Signals(bars, steps), row)


def plan_from_yaml(directory: Path, strategies: str, accounts: str):
    """Compile a plan from YAML text written into `directory` (checked against the bundled symbols)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "strategies.yaml").write_text(strategies)
    (directory / "accounts.yaml").write_text(accounts)
    return load_plan(Globals(directory, directory / "unused.db", None))


def shipped_plan():
    return load_plan(Globals(REPO_ROOT, Path("unused.db"), None))


def order(symbol: str, side: str, qty: float, ref_price: float, n: int = 0) -> Order:
    return Order(client_order_id=f"t-{symbol}-{side}-{n}", run_id="test", account="acct", symbol=symbol,
                 side=side, qty=qty, status="pending", ts_init=T0, ts_event=T0, ref_price=ref_price)
