"""The pure core (spec, strategy, engine, records) imports no I/O library: it cannot touch a
broker, a clock, the network or the database, so backtest and live share it safely."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "botctl"
PURE = ["spec", "strategy", "engine", "records.py", "errors.py", "ports.py"]
IO_MODULES = {"sqlite3", "sqlite_utils", "httpx", "alpaca", "textual", "exchange_calendars", "socket", "urllib",
              "http", "requests", "subprocess", "prometheus_client", "botctl.store", "botctl.adapters",
              "botctl.runtime", "botctl.cli", "botctl.tui"}


def pure_files() -> list[Path]:
    files: list[Path] = []
    for entry in PURE:
        path = PACKAGE / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_pure_packages_import_no_io_library_in_source():
    offenders = []
    for path in pure_files():
        for name in imported_modules(path):
            if any(name == io or name.startswith(io + ".") for io in IO_MODULES):
                offenders.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert offenders == []


# Checked at run time too, transitively. Standard-library networking modules are left out
# here: numpy and polars import them for their own reasons.
RUNTIME_IO = {"sqlite3", "sqlite_utils", "httpx", "alpaca", "textual", "exchange_calendars", "prometheus_client"}


def test_importing_the_core_loads_no_io_library():
    code = (
        "import sys; import botctl.spec.plan, botctl.strategy.evaluate, botctl.engine.engine, botctl.records; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(RUNTIME_IO)!r} "
        "or m.startswith(('botctl.store', 'botctl.adapters', 'botctl.runtime', 'botctl.cli'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
