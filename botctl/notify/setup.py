"""Reading notify.yaml and attaching a Notifier to a running bot's Store."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from botctl.config_files import read_config_file
from botctl.spec.notify import NOTIFY_FILE, NotifyConfig, load_notify


def notify_path(config_dir: Path) -> Path:
    return config_dir / NOTIFY_FILE


def read_notify(config_dir: Path, *, known_accounts: Collection[str] | None = None,
                environ: Mapping[str, str] = os.environ) -> NotifyConfig | None:
    """The checked notify.yaml of `config_dir`, or None when there is none."""
    from botctl.notify.delivery import apprise_schemes, check_url

    path = notify_path(config_dir)
    if not os.path.lexists(path):
        return None
    data = read_config_file(path)  # a FIFO, a device or a huge file: one line, never a hang
    return load_notify(data, environ=environ, check_url=check_url, schemes=apprise_schemes(),
                       known_accounts=known_accounts)


@contextmanager
def notifying(store, config: NotifyConfig | None, *, telemetry=None,
              benchmark: Callable | None = None, benchmark_symbol: str = "SPY") -> Iterator[object]:
    """While inside, every record `store` commits is heard by a Notifier (none without config)."""
    if config is None or not config.destinations:
        yield None
        return
    from botctl.notify.notifier import Notifier

    notifier = Notifier(config, store.path, telemetry=telemetry, benchmark=benchmark,
                        benchmark_symbol=benchmark_symbol).start()
    store.listener = notifier.heard
    try:
        yield notifier
    finally:
        store.listener = None
        notifier.close()


def for_run(g, plan, store, telemetry, *, bars=None, cache_dir: Path | None = None, every_account: bool = True):
    """The `notifying` context of `botctl run` (and `run --replay`): notify.yaml beside the
    other config files, the plan's benchmark for the daily summary (from the replay's bars,
    or, when trading, from the bars cache or the data file)."""
    config = read_notify(g.config_dir, known_accounts=[a.id for a in plan.accounts] if every_account else None)
    if config is None:
        return notifying(store, None)
    from botctl.notify.notifier import benchmark_from_bars

    symbol = plan.benchmark
    benchmark = (benchmark_from_bars(bars, symbol) if bars is not None
                 else _benchmark_from_files(symbol, g.data, cache_dir))
    return notifying(store, config, telemetry=telemetry, benchmark=benchmark, benchmark_symbol=symbol)


def _benchmark_from_files(symbol: str, data: Path | None, cache_dir: Path | None) -> Callable:
    """Read (once, on the first summary, in the notifier's thread) the benchmark's closes from
    the Alpaca bars cache when it has them, else from the data file."""
    loaded: list = []

    def day_return(day):
        if not loaded:
            from botctl.adapters.file_data import load_bars
            from botctl.notify.notifier import benchmark_from_bars
            from botctl.strategy.bars import bars_from_frame

            cached = cache_dir / f"{symbol}.parquet" if cache_dir is not None else None
            if cached is not None and cached.exists():
                import polars as pl

                frame = pl.read_parquet(cached)
            else:
                frame = load_bars(data)
            loaded.append(benchmark_from_bars(bars_from_frame(frame, (symbol,)), symbol))
        return loaded[0](day) if loaded[0] is not None else None

    return day_return
