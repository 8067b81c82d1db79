"""`botctl data info` and `botctl data fetch`: what the market data in use holds (and how old it
is), and daily bars from Alpaca written as a parquet folder that `--data` reads."""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import typer

from botctl.cli.common import err, globals_of, parse_date
from botctl.errors import EXIT_RUNTIME, BotctlError, DataError, UsageError

NEW_YORK = ZoneInfo("America/New_York")
SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")
FEEDS = ("iex", "sip")

data_app = typer.Typer(
    name="data", no_args_is_help=True,
    help="The market data: what it holds (info), and daily bars from Alpaca (fetch).",
)


def market_today() -> date:
    """Today in New York, the calendar daily bars are dated by."""
    return datetime.now(NEW_YORK).date()


def coverage(frame, today: date) -> list[dict]:
    """Per symbol: first and last bar, bars held, XNYS sessions missing between the first and
    the last, and the last bar's age in calendar days on `today`."""
    import polars as pl

    from botctl.adapters.calendar import sessions

    spans = frame.group_by("symbol").agg(pl.col("date").min().alias("first"), pl.col("date").max().alias("last"),
                                         pl.col("date").alias("dates")).sort("symbol")
    first, last = spans["first"].min(), spans["last"].max()
    calendar = [s.day for s in sessions(first, last)]
    out = []
    for row in spans.iter_rows(named=True):
        held = set(row["dates"])
        expected = [d for d in calendar if row["first"] <= d <= row["last"]]
        missing = [d for d in expected if d not in held]
        out.append({
            "symbol": row["symbol"], "first": row["first"].isoformat(), "last": row["last"].isoformat(),
            "sessions": len(held), "missing_sessions": len(missing),
            "first_missing": [d.isoformat() for d in missing[:5]],
            "age_days": (today - row["last"]).days,
        })
    return out


@data_app.command("info")
def info(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Symbols and date ranges of the data in use, and how old it is.

    For --data (or the bundled ETF history): per symbol, the first and last bar, the sessions
    held, the XNYS sessions missing between them, and the last bar's age in calendar days
    today (New York date)."""
    from botctl.adapters.file_data import bundled_data_path, load_bars

    g = globals_of(ctx)
    source = g.data or bundled_data_path()
    today = market_today()
    rows = coverage(load_bars(g.data), today)
    if as_json:
        typer.echo(json.dumps({"source": str(source), "bundled": g.data is None, "as_of": today.isoformat(),
                               "symbols": rows}))
        return
    typer.echo(f"data: {source}" + (" (bundled)" if g.data is None else "") + f"; ages as of {today} (New York)")
    typer.echo(f"{'symbol':<8} {'first':<10} {'last':<10} {'sessions':>8} {'missing':>8} {'age (days)':>10}")
    for r in rows:
        typer.echo(f"{r['symbol']:<8} {r['first']:<10} {r['last']:<10} {r['sessions']:>8,} {r['missing_sessions']:>8,} "
                   f"{r['age_days']:>10,}" + (f"  first missing: {', '.join(r['first_missing'])}"
                                              if r["missing_sessions"] else ""))


def parse_symbols(values: list[str]) -> list[str]:
    symbols = list(dict.fromkeys(s.strip().upper() for v in values for s in v.split(",") if s.strip()))
    if not symbols:
        raise UsageError("--symbols needs at least one symbol, e.g. --symbols SPY,TLT")
    bad = [s for s in symbols if not SYMBOL.match(s)]
    if bad:
        raise UsageError(f"--symbols: {', '.join(bad)} is not a ticker (letters, digits, '.' or '-', up to 10)")
    return symbols


def _keys(key_env: str, secret_env: str) -> tuple[str, str]:
    key, secret = os.environ.get(key_env), os.environ.get(secret_env)
    missing = [name for name, value in ((key_env, key), (secret_env, secret)) if not value]
    if missing:
        raise UsageError(f"Alpaca keys are read from the environment: set {' and '.join(missing)} "
                         "(or name other variables with --api-key-env/--secret-key-env)")
    return key, secret  # type: ignore[return-value]


def as_traded_with_adjusted_close(raw, adjusted):
    """As-traded OHLCV from the raw bars with adj_close from the split- and dividend-adjusted
    ones: the columns the bundled history has, so backtests see total returns and people the
    prices that traded."""
    import polars as pl

    frame = raw.drop("adj_close").join(adjusted.select("date", pl.col("close").alias("adj_close")), on="date", how="left")
    unmatched = frame.filter(pl.col("adj_close").is_null())
    if unmatched.height:
        raise DataError(f"Alpaca's adjusted bars lack {unmatched.height} session(s) its raw bars have "
                        f"(first: {unmatched['date'][0]})")
    return frame.select("symbol", "date", "open", "high", "low", "close", "adj_close", "volume")


@data_app.command("fetch")
def fetch(
    symbols: list[str] = typer.Option(..., "--symbols", help="Tickers, comma-separated or repeated: --symbols SPY,TLT."),
    start: str = typer.Option(..., "--start", help="First session, YYYY-MM-DD."),
    end: str = typer.Option(None, "--end", help="Last session, YYYY-MM-DD.", show_default="yesterday (New York)"),
    out: Path = typer.Option(..., "--out", help="Folder to write SYMBOL.parquet files into (created if missing)."),
    feed: str = typer.Option("iex", "--feed", help="Alpaca's data feed: iex (free) or sip (all US exchanges; paid)."),
    data_url: str = typer.Option(None, "--data-url", help="Another market-data endpoint (a proxy).",
                                 show_default="https://data.alpaca.markets"),
    key_env: str = typer.Option("ALPACA_API_KEY", "--api-key-env", help="Environment variable holding the API key."),
    secret_env: str = typer.Option("ALPACA_SECRET_KEY", "--secret-key-env",
                                   help="Environment variable holding the secret key."),
    force: bool = typer.Option(False, "--force", help="Replace SYMBOL.parquet files that already exist."),
) -> None:
    """Download daily bars from Alpaca into a parquet folder usable with --data.

    Each symbol becomes OUT/SYMBOL.parquet with symbol, date, open, high, low, close (as traded),
    adj_close (split- and dividend-adjusted) and volume. Progress goes to stderr, one line per
    symbol. Exit 1 when any symbol could not be fetched (the others are still written)."""
    from botctl.adapters.alpaca_data import AlpacaData

    wanted = parse_symbols(symbols)
    first = parse_date(start, "--start")
    last = parse_date(end, "--end") or market_today() - timedelta(days=1)
    if last < first:
        raise UsageError(f"--end {last} is before --start {first}")
    if feed not in FEEDS:
        raise UsageError(f"--feed must be iex or sip, got {feed!r}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    targets = {s: out / f"{s}.parquet" for s in wanted}
    existing = [p.name for p in targets.values() if p.exists()]
    if existing and not force:
        raise UsageError(f"{out} already has {', '.join(existing)}; pass --force to replace")
    key, secret = _keys(key_env, secret_env)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BotctlError(f"cannot create {out}: {exc.strerror or exc}") from None
    client = AlpacaData(key, secret, data_url=data_url, feed=feed, cache_dir=out)
    failed: list[str] = []
    for i, symbol in enumerate(wanted, 1):
        step = f"[{i}/{len(wanted)}] {symbol}"
        try:
            # The adapter fetches sessions before its `today`: the day after --end.
            raw = client._fetch(symbol, first, last + timedelta(days=1), adjustment="raw")
            if raw.is_empty():
                raise DataError(f"Alpaca has no {feed} daily bars for {symbol} from {first} to {last}")
            adjusted = client._fetch(symbol, first, last + timedelta(days=1), adjustment="all")
            frame = as_traded_with_adjusted_close(raw, adjusted)
            tmp = targets[symbol].with_name(f".{symbol}.parquet.{os.getpid()}.tmp")
            frame.write_parquet(tmp)
            tmp.replace(targets[symbol])
        except (BotctlError, OSError) as exc:
            failed.append(symbol)
            err(f"{step}: failed: {exc}")
            continue
        err(f"{step}: {frame.height:,} bars {frame['date'].min()}..{frame['date'].max()} -> {targets[symbol]}")
    done = len(wanted) - len(failed)
    typer.echo(f"fetched {done} of {len(wanted)} symbol(s) into {out}" + (f"; failed: {', '.join(failed)}" if failed else "")
               + (f"; use it with: botctl --data {out} ..." if done else ""))
    if failed:
        raise typer.Exit(EXIT_RUNTIME)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app)
