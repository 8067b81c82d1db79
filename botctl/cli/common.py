"""What every command shares: global options, loading config and plan, printing errors."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import typer

from botctl.errors import ConfigError, DataError, StoreError, UsageError
from botctl.config_files import file_kind, read_config_file  # noqa: F401  (re-exported for the commands)
from botctl.text import printable


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


def shown_path(path: Path | str, limit: int = 120) -> str:
    """A path for a message: absurdly long ones are cut (a one-line error stays readable)."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}...({len(text)} characters)"


def check_global_paths(g: Globals) -> Globals:
    """Refuse, before any command reads them, paths that could never work: a name too long for
    the system, a journal that is not a regular file (a FIFO would hang SQLite, a device is no
    database), data that is neither a file nor a folder. Missing paths are left to the
    commands, which say what to do."""
    for option, path in (("--config-dir", g.config_dir), ("--db", g.db), ("--data", g.data)):
        if path is None:
            continue
        try:
            info = os.stat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise UsageError(f"{option}: file name too long ({len(str(path))} characters)") from None
            if exc.errno == errno.ENOTDIR or option == "--config-dir":
                continue  # the command's own "cannot open" / "cannot read" says it
            error = StoreError if option == "--db" else DataError
            raise error(f"{option} {shown_path(path)}: {exc.strerror}") from None
        if option == "--db" and not stat.S_ISREG(info.st_mode):
            raise StoreError(f"--db {shown_path(path)} is {file_kind(info.st_mode)}, not a botctl database")
        if option == "--db" and not os.access(path, os.R_OK):
            raise StoreError(f"cannot read the journal {shown_path(path)}: permission denied")
        if option == "--data" and not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            raise DataError(f"--data {shown_path(path)} is {file_kind(info.st_mode)}, not a data file or folder")
    return g


def load_config(g: Globals):
    """Read, decode and validate both files against the symbols of the configured data."""
    from botctl.adapters.file_data import available_symbols
    from botctl.config_files import load_config_dir

    return load_config_dir(g.config_dir, known_symbols=available_symbols(g.data))


def load_plan(g: Globals, *, models: list[str] | None = None, accounts: list[str] | None = None):
    from botctl.spec.plan import compile_plan

    return compile_plan(load_config(g), models=models, accounts=accounts)


def out(line: str = "") -> None:
    """One line of output on stdout. Names, symbols, reasons and error texts come from files,
    the journal or a broker: control characters in them are escaped (botctl.text)."""
    typer.echo(printable(line))


def err(message: str) -> None:
    """One line on stderr, escaped like out()."""
    typer.echo(printable(message), err=True)


def parse_date(value: str | None, option: str):
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} expects a date like 2020-01-31, got {value!r}") from None
