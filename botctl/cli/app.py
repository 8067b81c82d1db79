"""The `botctl` command: a thin typer layer over the library. Each command group lives in its
own module; this one wires them, owns the global options and turns errors into exit codes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from botctl import __version__
from botctl.cli.common import Globals, err
from botctl.errors import EXIT_RUNTIME, BotctlError, ConfigError, failure_text


# typer raises its own exceptions (and its bundled click's) for usage errors and exits; they
# carry their exit codes and must pass through untouched.
_PASS_THROUGH = (typer.Exit, typer.Abort, TyperException, click.exceptions.Exit, click.ClickException, click.Abort)


class BotctlGroup(TyperGroup):
    """Every BotctlError becomes its one-line message and stable exit code; anything else is a
    bug, reported in one line (BOTCTL_DEBUG=1 shows the traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except ConfigError as exc:
            for problem in exc.problems:
                err(str(problem))
            err(f"{len(exc.problems)} problem(s) in the config; nothing was run")
            raise typer.Exit(exc.exit_code) from None
        except BotctlError as exc:
            err(f"error: {exc}")
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            # The reader went away (`botctl tail | head`): nothing left to say, and not a failure.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            err("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            if os.environ.get("BOTCTL_DEBUG"):
                raise
            err(f"{failure_text(exc)} (set BOTCTL_DEBUG=1 for a traceback)")
            raise typer.Exit(EXIT_RUNTIME) from None


app = typer.Typer(
    cls=BotctlGroup,
    name="botctl",
    help="A declarative trading bot for US stocks and ETFs.\n\n"
    "Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 bot not running, 4 config error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"botctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    ctx: typer.Context,
    config_dir: Path = typer.Option(
        Path("."), "--config-dir", envvar="BOTCTL_CONFIG_DIR", help="Folder holding strategies.yaml and accounts.yaml.",
        show_default="current directory",
    ),
    db: Path = typer.Option(Path("botctl.db"), "--db", envvar="BOTCTL_DB", help="The SQLite journal."),
    data: Path | None = typer.Option(
        None, "--data", envvar="BOTCTL_DATA",
        help="Daily bars: a parquet/CSV file or folder (columns symbol,date,open,high,low,close[,adj_close,volume]).",
        show_default="the bundled ETF history",
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    ctx.obj = Globals(config_dir=config_dir, db=db, data=data)


def _register() -> None:
    from botctl.cli import backtest_cmd, config_cmds, control_cmds, ops_cmds, run_cmd, service_cmd, tui_cmd
    from botctl.cli import data_cmds, export_cmd, init_cmd, notify_cmd, runs_cmd

    config_cmds.register(app)
    backtest_cmd.register(app)
    run_cmd.register(app)
    ops_cmds.register(app)
    control_cmds.register(app)
    service_cmd.register(app)
    tui_cmd.register(app)
    init_cmd.register(app)
    data_cmds.register(app)
    runs_cmd.register(app)
    export_cmd.register(app)
    notify_cmd.register(app)


_register()


def main() -> None:
    app()
