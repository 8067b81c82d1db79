"""The simulator's current prices: the open of the session under way, from the bars.

What a paper account on the simulated broker sizes its orders at (and fills at), as a real
account uses Alpaca's latest trade. Before the session's open, or when the bars hold no
such session yet, a symbol has no current price and the cycle uses its last close."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, time
from zoneinfo import ZoneInfo

from botctl.strategy.bars import Bars

NEW_YORK = ZoneInfo("America/New_York")
OPEN = time(9, 30)


class SessionOpens:
    def __init__(self, bars: Bars) -> None:
        self.bars = bars

    def latest_prices(self, symbols: Sequence[str], now: datetime) -> dict[str, float]:
        local = now.astimezone(NEW_YORK)
        row = self.bars.index_of(local.date())
        if row < 0 or self.bars.dates[row] != local.date() or local.time() < OPEN:
            return {}
        opens = self.bars.open[row]
        out = {}
        for symbol in symbols:
            if symbol in self.bars.symbols:
                price = float(opens[self.bars.symbols.index(symbol)])
                if math.isfinite(price) and price > 0:
                    out[symbol] = price
        return out
