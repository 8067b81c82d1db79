"""What every command shares: global options, loading config and plan, printing errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import typer

from botctl.errors import ConfigError, ConfigProblem, UsageError


@dataclass(frozen=True)
class Globals:
    config_dir: Path
    db: Path
    data: Path | None


def globals_of(ctx: typer.Context) -> Globals:
    root = ctx.find_root()
    if isinstance(root.obj, Globals):
        return root.obj
    return Globals(Path(os.environ.get("BOTCTL_CONFIG_DIR", ".")), Path(os.environ.get("BOTCTL_DB", "botctl.db")), None)


def read_config_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(path.name, 1, 1, "", f"no such file in {path.parent.resolve()} "
                                         "(set --config-dir or $BOTCTL_CONFIG_DIR)")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigProblem(path.name, 1, 1, "", "is a directory, not a file")]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(path.name, 1, 1, "", f"cannot read: {exc.strerror}")]) from None


def load_config(g: Globals):
    """Read, decode and validate both files against the symbols of the configured data."""
    from botctl.adapters.file_data import available_symbols
    from botctl.spec.load import ACCOUNTS_FILE, STRATEGIES_FILE
    from botctl.spec.load import load_config as decode

    contents, problems = [], []
    for name in (STRATEGIES_FILE, ACCOUNTS_FILE):
        try:
            contents.append(read_config_file(g.config_dir / name))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    strategies, accounts = contents
    return decode(strategies, accounts, known_symbols=available_symbols(g.data))


def load_plan(g: Globals, *, models: list[str] | None = None, accounts: list[str] | None = None):
    from botctl.spec.plan import compile_plan

    return compile_plan(load_config(g), models=models, accounts=accounts)


def err(message: str) -> None:
    typer.echo(message, err=True)


def parse_date(value: str | None, option: str):
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} expects a date like 2020-01-31, got {value!r}") from None
