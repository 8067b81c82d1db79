"""`botctl init [DIR]`: a starter config folder that validates and backtests on the bundled data
as written, so a new user edits something that works instead of starting from a blank page."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from botctl.errors import BotctlError, UsageError

STRATEGIES = """\
# botctl strategies: universes and models. docs/strategies.md documents every key and step;
# `botctl validate` checks this file.

benchmark: SPY

universes:
  sectors: [XLK, XLF, XLE, XLV, XLI, XLP, XLU, XLY, XLB]

strategies:
  # Each month, hold the 3 sectors with the best 6-month return, if it is positive;
  # an empty slot stays in cash.
  Momentum_v1:
    description: 126-day momentum, top 3 positive sectors, monthly
    universe: sectors
    rebalance: monthly            # first trading day of the month, 30 minutes after the open
    steps:
      - select_momentum: {lookback_days: 126, top: 3, min_return: 0.0}
      - weigh_equally: {slots: 3}
"""

ACCOUNTS = """\
# botctl accounts: which broker each account uses and which models it runs.
# docs/accounts.md documents every key. Keys are never written here: name the environment
# variables that hold them.

accounts:
  # The built-in simulated broker: trades the bundled daily history offline.
  sim:
    broker: sim
    mode: paper
    starting_cash: 100000
    models: [Momentum_v1]
    sim: {fill: open, commission_bps: 0, slippage_bps: 2}
    # The daily-loss breaker halts the account when NAV falls this much in one session
    # (default 0.08). Sector funds fell 9-15% on single days in March 2020; at 0.08 the
    # backtest of this model halts there and stops trading.
    risk: {max_daily_loss: 0.15}

  # An Alpaca paper account. Create keys at https://app.alpaca.markets (paper), export them:
  #   export ALPACA_API_KEY=...  ALPACA_SECRET_KEY=...
  # then uncomment these lines and run `botctl run --once`.
  # alpaca-paper:
  #   broker: alpaca
  #   mode: paper
  #   api_key_env: ALPACA_API_KEY
  #   secret_key_env: ALPACA_SECRET_KEY
  #   models: [Momentum_v1]
"""

README = """\
# botctl config

Next steps, from this folder:

    botctl validate                         # check strategies.yaml and accounts.yaml
    botctl backtest --start 2015-01-01      # the model over the bundled ETF history
    botctl run --replay 2024-01-01:2024-12-31 --speed max   # the scheduler on a simulated clock
    botctl status                           # what the runs recorded

Edit strategies.yaml (docs/strategies.md) and accounts.yaml (docs/accounts.md); for an Alpaca
paper account, uncomment the example in accounts.yaml and export its keys first.
"""

FILES = {"strategies.yaml": STRATEGIES, "accounts.yaml": ACCOUNTS, "README.md": README}


def write_starter(folder: Path, *, force: bool) -> list[Path]:
    """Write the starter files into `folder` (created if missing); refuse to replace any
    existing one unless `force`, checking all of them before writing one."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} exists and is not a folder")
    targets = [folder / name for name in FILES]
    existing = [p.name for p in targets if p.exists()]
    if existing and not force:
        raise UsageError(f"{folder} already has {', '.join(existing)}; pass --force to replace")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path in targets:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(FILES[path.name])
            tmp.replace(path)
    except OSError as exc:
        raise BotctlError(f"cannot write the starter config in {folder}: {exc.strerror or exc}") from None
    return targets


def register(app: typer.Typer) -> None:
    @app.command()
    def init(
        folder: Path = typer.Argument(Path("."), help="The folder to create or fill.", show_default="current directory"),
        force: bool = typer.Option(False, "--force", help="Replace starter files that already exist."),
    ) -> None:
        """Create a starter config folder that validates and backtests as written.

        DIR gets strategies.yaml with one momentum model, accounts.yaml with a simulated account
        (and a commented Alpaca paper example), and a README with the next steps. Existing files
        are never replaced without --force."""
        written = write_starter(folder, force=force)
        typer.echo(f"wrote {', '.join(p.name for p in written)} in {folder}")
        where = "" if folder == Path(".") else f"--config-dir {folder} "
        typer.echo(f"next: botctl {where}validate, then botctl {where}backtest --start 2015-01-01")
