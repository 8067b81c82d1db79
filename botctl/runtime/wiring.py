"""The wiring: the one module that names adapter kinds. It builds each account's broker and
market data from its plan (`broker: sim|alpaca`, `data: file|alpaca`) and reads the keys from
the environment variables the account names; the runtime past it sees only the ports.

A new broker kind is an adapter implementing `botctl.ports.Broker` (and the broker contract
suite, tests/broker) plus one branch here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from botctl.errors import BrokerAuth
from botctl.ports import Broker, MarketData
from botctl.spec.plan import AccountPlan

if TYPE_CHECKING:
    import polars as pl

    from botctl.adapters.alpaca_data import AlpacaData
    from botctl.adapters.sim_broker import SimBroker
    from botctl.store import Store
    from botctl.strategy.bars import Bars

# A broker factory: what the Trader is given to connect each account (tests inject their own).
BrokerFactory = Callable[[AccountPlan, "Store"], Broker]


def keeps_state_in_journal(account: AccountPlan) -> bool:
    """The simulated paper broker has no state of its own: its cash and positions are the
    journal's (journal_sim_broker), so acting on it is one journal transaction. A real
    broker holds its own and answers over the network."""
    return account.broker != "alpaca"


def make_broker(account: AccountPlan, store: Store, environ: Mapping[str, str] = os.environ, *,
                alpaca_options: Mapping[str, Any] | None = None) -> Broker:
    """The account's broker. Keys come from the environment variables the account names and
    go nowhere else: not the journal, not a log, not an error message. `alpaca_options` tune
    the Alpaca adapter (timeout, retries, backoff), for drills that must not wait minutes."""
    if account.broker == "alpaca":
        from botctl.adapters.alpaca_broker import AlpacaBroker

        key_env, secret_env = account.api_key_env, account.secret_key_env
        assert key_env is not None and secret_env is not None  # the plan names both for an alpaca account
        missing = [name for name in (key_env, secret_env) if not environ.get(name)]
        if missing:
            raise BrokerAuth(f"account {account.id}: environment variable(s) {', '.join(missing)} not set "
                             "(export the Alpaca keys there; they are never read from files)")
        return AlpacaBroker(environ[key_env], environ[secret_env],
                            paper=account.mode == "paper", base_url=account.base_url, **(alpaca_options or {}))
    return journal_sim_broker(account, store)


def journal_sim_broker(account: AccountPlan, store: Store) -> SimBroker:
    """A SimBroker holding what the journal says the account holds (from its own paper runs
    only, never a backtest's or replay's): its latest mark, then the fills made since (a
    process killed between its fills and its next mark); it fills at the last close."""
    from botctl.adapters.sim_broker import SimBroker

    latest, positions = store.account_state(account.id)
    broker = SimBroker(latest.cash if latest else account.starting_cash, msgspec.structs.replace(account.sim, fill="close"),
                       account=account.id)
    for position in positions:
        broker.qty[position.symbol] = position.qty
        broker.avg_price[position.symbol] = position.avg_price
        broker.last_price[position.symbol] = position.price
    for fill in store.fills_after_mark(account.id, latest):
        broker.restore_fill(fill)
    return broker


def load_market_data(account: AccountPlan, data_path: Path | None, cache_dir: Path, today: date,
                     environ: Mapping[str, str] = os.environ,
                     warn: Callable[[str, str], None] | None = None) -> pl.DataFrame:
    """The account's bars: its --data files, or Alpaca's (cached). `warn(symbol, message)`
    hears of problems that were worked around (a damaged cache file fetched again)."""
    from botctl.adapters.file_data import load_bars

    if account.data != "alpaca":
        return load_bars(data_path)
    data = _alpaca_data(account, cache_dir, environ)
    try:
        return data.bars(account.symbols, today)
    finally:
        if warn is not None:
            for symbol, message in data.warnings:
                warn(symbol, message)


def current_prices(account: AccountPlan, bars: Bars, cache_dir: Path,
                   environ: Mapping[str, str] = os.environ) -> MarketData:
    """Where the account's current prices come from: Alpaca's latest trades for an account
    on Alpaca's data, the session's open from the bars otherwise."""
    if account.data != "alpaca":
        from botctl.adapters.sim_market import SessionOpens

        return SessionOpens(bars)
    return _alpaca_data(account, cache_dir, environ)


def _alpaca_data(account: AccountPlan, cache_dir: Path, environ: Mapping[str, str]) -> AlpacaData:
    from botctl.adapters.alpaca_data import AlpacaData

    key, secret = environ.get(account.api_key_env or "ALPACA_API_KEY"), environ.get(account.secret_key_env or "ALPACA_SECRET_KEY")
    if not key or not secret:
        raise BrokerAuth(f"account {account.id}: Alpaca data needs the keys in ${account.api_key_env or 'ALPACA_API_KEY'} "
                         f"and ${account.secret_key_env or 'ALPACA_SECRET_KEY'}")
    return AlpacaData(key, secret, data_url=account.data_url or account.base_url, feed=account.feed, cache_dir=cache_dir)
