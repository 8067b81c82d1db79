"""gaps finds the runs of missing bars between a symbol's first and last bar: the same runs
as the rule written plainly, session by session, on random matrices with holes (and without
any: most symbols of a big universe have none, and are passed over)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from botctl.strategy.bars import Bars, Gap, gaps


def plainly(bars: Bars, symbols, min_sessions: int, rows) -> list[Gap]:
    out = []
    for symbol in symbols if symbols is not None else bars.symbols:
        has = [not np.isnan(v) for v in bars.close[:, bars.symbols.index(symbol)]]
        if sum(has) < 2:
            continue
        first, last = has.index(True), len(has) - 1 - has[::-1].index(True)
        row = first
        while row <= last:
            if has[row]:
                row += 1
                continue
            stop = row
            while not has[stop]:
                stop += 1
            if stop - row > min_sessions and (rows is None or (row <= rows[1] and stop - 1 >= rows[0])):
                out.append(Gap(symbol, bars.dates[row], bars.dates[stop - 1], stop - row))
            row = stop
    return out


@pytest.mark.parametrize("seed", range(6))
def test_gaps_are_the_runs_of_missing_bars_inside_each_symbols_history(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n, k = int(rng.integers(0, 80)), int(rng.integers(1, 8))
        close = rng.uniform(1, 2, (n, k))
        close[rng.random((n, k)) < rng.choice([0.0, 0.2, 0.6, 0.95])] = np.nan
        if n:  # a long run in one symbol
            at = int(rng.integers(0, n))
            close[at: at + int(rng.integers(1, 25)), int(rng.integers(0, k))] = np.nan
        names = tuple(f"S{i}" for i in range(k))
        bars = Bars(tuple(date(2020, 1, 1) + timedelta(days=d) for d in range(n)), names, close, close)
        some = list(rng.permutation(names)[: int(rng.integers(1, k + 1))])
        for symbols in (None, some, [names[0], names[0]]):
            for min_sessions in (0, 2, 5):
                rows = None if rng.random() < 0.5 else tuple(sorted(rng.integers(0, max(n, 1), 2).tolist()))
                assert gaps(bars, symbols, min_sessions=min_sessions, rows=rows) == \
                    plainly(bars, symbols, min_sessions, rows)


def test_a_symbol_the_bars_lack_is_still_an_error():
    bars = Bars((date(2020, 1, 1),), ("A",), np.ones((1, 1)), np.ones((1, 1)))
    with pytest.raises(ValueError):
        gaps(bars, ["B"])
