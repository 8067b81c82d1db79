"""The `botctl` command: a thin typer layer over the library. Each command group lives in its
own module; this one wires them, owns the global options and turns errors into exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from botctl import __version__
from botctl.cli.common import Globals, check_global_paths, err
from botctl.errors import EXIT_RUNTIME, BotctlError, ConfigError, failure_text
from botctl.text import printable

try:  # typer >= 0.22 ships its own copy of click; older releases use click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_errors  # type: ignore[no-redef]  # the same module, older typer

EXIT_INTERRUPTED = 130  # what a shell reports for a process ended by Ctrl-C (128 + SIGINT)

# typer raises its own exceptions for exits; they carry their exit codes and pass untouched.
_PASS_THROUGH = (typer.Exit, typer.Abort, getattr(click_errors, "Exit", typer.Exit))


def _wants_json(args: list[str]) -> bool:
    """`--json` among the options (not after `--`): errors are then also a JSON object on stdout."""
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def fail(message: str, exit_code: int, *, as_json: bool) -> typer.Exit:
    """Print one error line on stderr (and, with --json, `{"error", "exit_code"}` on stdout);
    return the Exit to raise. An interruption is just "interrupted"."""
    message = printable(message)
    err(message if exit_code == EXIT_INTERRUPTED else f"error: {message}")
    if as_json:
        typer.echo(json.dumps({"error": message, "exit_code": exit_code}))
    return typer.Exit(exit_code)


def _usage_line(exc: click_errors.ClickException) -> str:
    """Click's usage error as one line: the message and where to find help."""
    text = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        text += f" (see '{ctx.command_path} {ctx.help_option_names[0]}')"
    return text


class BotctlGroup(TyperGroup):
    """Every BotctlError becomes its one-line message and stable exit code, and every usage
    error one line (never click's box); anything else is a bug, reported in one line
    (BOTCTL_DEBUG=1 shows the traceback). With --json the error is also a JSON object on
    stdout. Global options may also be written after the command."""

    def make_context(self, info_name, args, parent=None, **extra):
        with _one_line_errors(_wants_json(list(args))):
            return super().make_context(info_name, args, parent, **extra)

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        ctx.meta["botctl.json"] = _wants_json(args)
        return super().parse_args(ctx, self._hoist_global_options(ctx, args))

    def _hoist_global_options(self, ctx, args: list[str]) -> list[str]:
        """`botctl backtest --db x.db` as `botctl --db x.db backtest`: this group's own options
        found after the command name move before it (later ones still win). A command's own
        option of the same name keeps it, and a value of a command option is never taken for
        a global option."""
        own = {name: p for p in self.params for name in (*p.opts, *p.secondary_opts) if p.opts[0].startswith("-")}
        i = 0
        while i < len(args) and args[i].startswith("-") and args[i] != "--":  # options before the command
            option = own.get(args[i].split("=", 1)[0])
            i += 2 if option is not None and _takes_value(option) and "=" not in args[i] else 1
        if i >= len(args) or args[i] == "--":
            return args
        command = self.get_command(ctx, args[i])
        if command is None:
            return args
        hoisted: list[str] = []
        rest: list[str] = []
        j = i + 1
        while j < len(args):
            token = args[j]
            if token == "--":
                rest += args[j:]
                break
            name = token.split("=", 1)[0]
            mine = _option_of(command, name) if token.startswith("-") else None
            step = 2 if mine is not None and _takes_value(mine) and "=" not in token else 1
            if mine is None and name in own:
                step = 2 if _takes_value(own[name]) and "=" not in token else 1
                if j + step > len(args) or (step == 2 and args[j + 1] == "--"):
                    raise click_errors.BadOptionUsage(name, f"Option '{name}' requires an argument.", ctx)
                hoisted += args[j:j + step]
            else:
                if mine is None and not token.startswith("-") and isinstance(command, TyperGroup):
                    command = command.get_command(ctx, token) or command  # `service unit ...`
                rest += args[j:j + step]
            j += step
        return [*args[:i], *hoisted, args[i], *rest]

    def invoke(self, ctx):
        with _one_line_errors(bool(ctx.meta.get("botctl.json"))):
            return super().invoke(ctx)


@contextlib.contextmanager
def _one_line_errors(as_json: bool):
    """Around parsing and running a command: each error as its line and exit code."""
    try:
        yield
    except _PASS_THROUGH:
        raise
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()
        raise typer.Exit(exc.exit_code) from None
    except click_errors.ClickException as exc:
        raise fail(_usage_line(exc), exc.exit_code, as_json=as_json) from None
    except ConfigError as exc:
        for problem in exc.problems:
            err(str(problem))
        summary = f"{len(exc.problems)} problem(s) in the config; nothing was run"
        err(summary)
        if as_json:
            typer.echo(json.dumps({"error": summary, "exit_code": exc.exit_code,
                                   "problems": [str(p) for p in exc.problems]}))
        raise typer.Exit(exc.exit_code) from None
    except BotctlError as exc:
        raise fail(str(exc), exc.exit_code, as_json=as_json) from None
    except BrokenPipeError:
        # The reader went away (`botctl tail | head`): nothing left to say, and not a failure.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        raise fail("interrupted", EXIT_INTERRUPTED, as_json=as_json) from None
    except TyperException as exc:
        raise fail(str(exc), getattr(exc, "exit_code", EXIT_RUNTIME), as_json=as_json) from None
    except Exception as exc:
        if _interrupted(exc):
            raise fail("interrupted", EXIT_INTERRUPTED, as_json=as_json) from None
        if os.environ.get("BOTCTL_DEBUG"):
            raise
        raise fail(f"{failure_text(exc)} (set BOTCTL_DEBUG=1 for a traceback)", EXIT_RUNTIME, as_json=as_json) from None


def _interrupted(exc: BaseException | None) -> bool:
    """Ctrl-C wrapped in another exception: Python turns a KeyboardInterrupt raised while a
    class is being created (in `__set_name__`) into a RuntimeError caused by it."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _option_of(command, name: str):
    for param in command.params:
        if name in (*param.opts, *param.secondary_opts) and name.startswith("-"):
            return param
    return None


def _takes_value(option) -> bool:
    return not (getattr(option, "is_flag", False) or getattr(option, "count", False))


app = typer.Typer(
    cls=BotctlGroup,
    name="botctl",
    help="A declarative trading bot for US stocks and ETFs.\n\n"
    "Global options (--config-dir, --db, --data) may be written before or after the command.\n\n"
    "Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 bot not running (status --require-running), "
    "4 config error, 130 interrupted.",
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
    # Plain strings, checked by check_global_paths: typer's Path checks answer in a box and
    # cannot say "a FIFO is not a journal".
    config_dir: str = typer.Option(
        ".", "--config-dir", envvar="BOTCTL_CONFIG_DIR", help="Folder holding strategies.yaml and accounts.yaml.",
        show_default="current directory",
    ),
    db: str = typer.Option("botctl.db", "--db", envvar="BOTCTL_DB", help="The SQLite journal."),
    data: str | None = typer.Option(
        None, "--data", envvar="BOTCTL_DATA",
        help="Daily bars: a parquet/CSV file or folder (columns symbol,date,open,high,low,close[,adj_close,volume]).",
        show_default="the bundled ETF history",
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    ctx.obj = check_global_paths(Globals(config_dir=Path(config_dir), db=Path(db), data=Path(data) if data else None))


def _register() -> None:
    from botctl.cli import backtest_cmd, config_cmds, control_cmds, ops_cmds, run_cmd, service_cmd, tui_cmd
    from botctl.cli import data_cmds, export_cmd, feeds_cmd, init_cmd, notify_cmd, research_cmd, runs_cmd

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
    feeds_cmd.register(app)
    research_cmd.register(app)


_register()


def main() -> None:
    """The `botctl` command (see botctl.__main__, which also covers Ctrl-C while this loads)."""
    app()
