"""Daily bars from Alpaca's market data API, cached as parquet so a restart fetches only what
is missing. Bars are split- and dividend-adjusted (adjustment=all), like the bundled data's
adjusted prices; when Alpaca re-adjusts history (a new dividend or split), the overlap check
notices and the symbol is fetched whole again."""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from collections.abc import Sequence
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import polars as pl

from botctl.adapters.file_data import unusable_price
from botctl.errors import BadMarketData, DataError

NEW_YORK = ZoneInfo("America/New_York")
HISTORY_DAYS = 420  # enough sessions for a 200-day average and a 126-day lookback, with slack


class AlpacaData:
    def __init__(self, api_key: str, secret_key: str, *, data_url: str | None, feed: str, cache_dir: Path,
                 timeout: float = 20.0) -> None:
        from alpaca.data.historical.stock import StockHistoricalDataClient

        from botctl.adapters.alpaca_broker import _BoundedSession

        self.client = StockHistoricalDataClient(api_key, secret_key, url_override=data_url)
        self.client._session = _BoundedSession(timeout)
        self.client._retry = 1
        self.client._retry_wait = 1
        self.feed = feed
        self.cache_dir = cache_dir / f"alpaca-{feed}"
        self.warnings: list[tuple[str, str]] = []  # (symbol, what went wrong) worth an event

    def bars(self, symbols: tuple[str, ...], today: date) -> pl.DataFrame:
        """Long frame of daily bars up to yesterday's close for every symbol (cached).
        Raises BadMarketData, and caches nothing for that symbol, when Alpaca's answer for a
        symbol is empty or holds a price that is missing, NaN, infinite, zero or negative."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        frames = [self._symbol(symbol, today) for symbol in symbols]
        return pl.concat(frames).sort("symbol", "date") if frames else pl.DataFrame()

    def latest_prices(self, symbols: Sequence[str], now: datetime) -> dict[str, float]:
        """The latest trade of each symbol (GET /v2/stocks/trades/latest), one request for all.
        A failed request is a DataError: the cycle is not sized on a guess, it is tried again."""
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import StockLatestTradeRequest

        from botctl.adapters.alpaca_broker import classify

        request = StockLatestTradeRequest(symbol_or_symbols=list(symbols),
                                          feed=DataFeed.SIP if self.feed == "sip" else DataFeed.IEX)
        try:
            trades = self.client.get_stock_latest_trade(request)
        except Exception as exc:  # noqa: BLE001 - classified into one of our errors
            raise DataError(str(classify(exc, "fetch the latest trades"))) from None
        out = {}
        for symbol, trade in dict(trades).items():
            price = float(trade.price)
            if math.isfinite(price) and price > 0:
                out[symbol] = price
        return out

    def _symbol(self, symbol: str, today: date) -> pl.DataFrame:
        path = self.cache_dir / f"{symbol}.parquet"
        cached = None
        if path.exists():
            try:
                cached = _checked(pl.read_parquet(path), symbol, "the cache")
            except Exception as exc:  # noqa: BLE001 - a damaged cache is refetched, never trusted
                self.warnings.append((symbol, f"the cached bars for {symbol} ({path.name}) are unreadable "
                                              f"({str(exc).splitlines()[0][:120]}); fetched again from Alpaca"))
                cached = None
        start = today - timedelta(days=HISTORY_DAYS)
        if cached is not None and cached.height:
            last = cast(date, cached["date"].max())  # a Date column's max (polars types it as any scalar)
            fresh = self._fetch(symbol, last, today)
            overlap = fresh.filter(pl.col("date") == last)
            old = cached.filter(pl.col("date") == last)
            same = overlap.height == 1 and abs(overlap["adj_close"][0] / old["adj_close"][0] - 1) < 1e-6
            frame = pl.concat([cached.filter(pl.col("date") < last), fresh]) if same else self._fetch(symbol, start, today)
        else:
            frame = self._fetch(symbol, start, today)
        frame = _checked(frame.unique(subset=["date"], keep="last").sort("date"), symbol, "Alpaca's answer")
        # A name of its own: two processes refreshing one cache must not write one temp file.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            frame.write_parquet(tmp)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return frame

    def _fetch(self, symbol: str, start: date, today: date, adjustment: str = "all") -> pl.DataFrame:
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        from botctl.adapters.alpaca_broker import classify

        request = StockBarsRequest(
            symbol_or_symbols=[symbol], timeframe=TimeFrame.Day, adjustment=Adjustment(adjustment),
            feed=DataFeed.SIP if self.feed == "sip" else DataFeed.IEX,
            start=datetime.combine(start, datetime.min.time(), tzinfo=timezone.utc),
            end=datetime.combine(today, datetime.min.time(), tzinfo=timezone.utc),  # closed bars only
        )
        from botctl.errors import BrokerTransient

        for attempt in range(4):
            try:
                result = self.client.get_stock_bars(request)
                break
            except Exception as exc:  # noqa: BLE001
                error = classify(exc, f"fetch {symbol} bars")
                if not isinstance(error, BrokerTransient) or attempt == 3:
                    raise DataError(str(error)) from None
                time.sleep(random.uniform(0, 0.5 * 2 ** attempt))  # backoff with jitter
        rows = result.data.get(symbol, []) if hasattr(result, "data") else []
        data = {
            "symbol": [symbol] * len(rows),
            # A daily bar is stamped at midnight New York time; its date is the session's.
            "date": [b.timestamp.astimezone(NEW_YORK).date() for b in rows],
            "open": [float(b.open) for b in rows], "high": [float(b.high) for b in rows],
            "low": [float(b.low) for b in rows], "close": [float(b.close) for b in rows],
            "adj_close": [float(b.close) for b in rows], "volume": [float(b.volume) for b in rows],
        }
        frame = pl.DataFrame(data, schema={"symbol": pl.Utf8, "date": pl.Date, "open": pl.Float64, "high": pl.Float64,
                                           "low": pl.Float64, "close": pl.Float64, "adj_close": pl.Float64,
                                           "volume": pl.Float64})
        return frame.filter(pl.col("date") < today)


def _checked(frame: pl.DataFrame, symbol: str, source: str) -> pl.DataFrame:
    """The frame, if every bar has usable prices; BadMarketData naming the first bad bar if not."""
    if frame.is_empty():
        raise BadMarketData(f"{source} has no daily bars for {symbol}", symbols=[symbol])
    bad = frame.filter(unusable_price())
    if bad.height:
        row = bad.row(0, named=True)
        raise BadMarketData(f"{source} has {bad.height} bar(s) of {symbol} with a missing, NaN, infinite, zero or negative price "
                            f"(first: {row['date']}, close {row['close']})", symbols=[symbol])
    return frame
