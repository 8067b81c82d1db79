"""--data: a user's own bars (CSV or parquet, file or folder) drive validate and backtest;
bad data is a one-line error with exit 1, never a traceback or a trade."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from botctl.adapters.file_data import bundled_data_path
from botctl.cli.app import app

ROOT = Path(__file__).resolve().parents[2]


def botctl(tmp_path: Path, data: Path, *args: str):
    return CliRunner().invoke(app, ["--config-dir", str(ROOT), "--db", str(tmp_path / "j.db"), "--data", str(data), *args])


@pytest.fixture(scope="module")
def bundled() -> pl.DataFrame:
    return pl.read_parquet(bundled_data_path()).filter(pl.col("date") >= pl.date(2018, 1, 1))


def test_a_folder_of_per_symbol_csv_files_gives_the_same_backtest_as_the_bundled_parquet(tmp_path, bundled):
    folder = tmp_path / "bars"
    folder.mkdir()
    for (symbol,), frame in bundled.group_by("symbol"):
        frame.drop("symbol").write_csv(folder / f"{symbol}.csv")  # symbol taken from the file name
    single = tmp_path / "all.parquet"
    bundled.write_parquet(single)
    args = ("backtest", "--start", "2020-01-01", "--end", "2021-12-31", "--json", "--no-journal")
    from_csv = botctl(tmp_path, folder, *args)
    from_parquet = botctl(tmp_path, single, *args)
    assert from_csv.exit_code == 0, from_csv.output
    assert from_parquet.exit_code == 0, from_parquet.output
    a, b = json.loads(from_csv.stdout), json.loads(from_parquet.stdout)
    for section in ("models", "accounts"):
        for name in a[section]:
            assert a[section][name]["total_return"] == pytest.approx(b[section][name]["total_return"], rel=1e-9)


def test_data_without_a_configured_symbol_fails_validation_naming_it(tmp_path, bundled):
    data = tmp_path / "partial.parquet"
    bundled.filter(pl.col("symbol") != "XLRE").write_parquet(data)
    result = botctl(tmp_path, data, "validate")
    assert result.exit_code == 4
    assert "unknown symbol 'XLRE' (not in the available market data)" in result.output
    assert "strategies.yaml:" in result.output


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.with_columns(pl.when(pl.col("date") == pl.date(2020, 3, 2)).then(float("nan")).otherwise(pl.col("close")).alias("close")),
     "missing, NaN, zero or negative price"),
    (lambda f: f.with_columns(pl.when(pl.col("date") == pl.date(2020, 3, 2)).then(0.0).otherwise(pl.col("open")).alias("open")),
     "missing, NaN, zero or negative price"),
    (lambda f: pl.concat([f, f.head(1)]), "duplicate rows"),
    (lambda f: f.drop("close"), "lacks column(s) close"),
])
def test_bad_bars_are_refused_with_one_line_and_exit_1(tmp_path, bundled, damage, message):
    data = tmp_path / "bad.parquet"
    damage(bundled).write_parquet(data)
    result = botctl(tmp_path, data, "backtest", "--start", "2020-01-01", "--end", "2020-12-31")
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "j.db").exists()  # nothing was journaled from bad data


def test_a_truncated_parquet_file_is_a_clear_error(tmp_path, bundled):
    data = tmp_path / "cut.parquet"
    bundled.write_parquet(data)
    data.write_bytes(data.read_bytes()[:5000])
    result = botctl(tmp_path, data, "backtest")
    assert result.exit_code == 1
    assert "cannot read cut.parquet" in result.output
