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
    assert "unknown symbol 'XLRE' (not in the available market data, which holds: SPY, TLT, XLB, XLC, XLE, XLF, XLI, " \
        "XLK, XLP, XLU, XLV, XLY)" in result.output
    assert "strategies.yaml:" in result.output


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.with_columns(pl.when(pl.col("date") == pl.date(2020, 3, 2)).then(float("nan")).otherwise(pl.col("close")).alias("close")),
     "missing, NaN, infinite, zero or negative price"),
    (lambda f: f.with_columns(pl.when(pl.col("date") == pl.date(2020, 3, 2)).then(0.0).otherwise(pl.col("open")).alias("open")),
     "missing, NaN, infinite, zero or negative price"),
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


def _set(frame: pl.DataFrame, column: str, symbol: str, day, value) -> pl.DataFrame:
    hit = (pl.col("symbol") == symbol) & (pl.col("date") == day)
    return frame.with_columns(pl.when(hit).then(value).otherwise(pl.col(column)).alias(column))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("column", ["open", "high", "low", "close", "adj_close"])
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_a_non_finite_price_in_any_column_is_refused_naming_file_symbol_and_date(tmp_path, bundled, fmt, column, value):
    damaged = _set(bundled, column, "XLK", pl.date(2023, 6, 1), value)
    data = tmp_path / f"bars.{fmt}"
    damaged.write_parquet(data) if fmt == "parquet" else damaged.write_csv(data)
    result = botctl(tmp_path, data, "backtest", "--start", "2023-01-01", "--end", "2023-12-31", "--no-journal")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert f"bars.{fmt} has 1 row(s) with a missing, NaN, infinite, zero or negative price" in lines[0]
    assert f"(first: XLK 2023-06-01, {column} {value})" in lines[0], lines[0]


def _stamped(frame: pl.DataFrame, zone: str, hour: int) -> pl.DataFrame:
    """The same bars with each date written as `hour`:00 in `zone` (a day later when that hour
    in `zone` falls on the next calendar day of the same instant in New York)."""
    stamp = pl.col("date").cast(pl.Datetime("us")) + pl.duration(hours=hour)
    return frame.with_columns(stamp.dt.replace_time_zone(zone).alias("date"))


def _cagr(tmp_path: Path, data: Path) -> dict:
    result = botctl(tmp_path, data, "backtest", "--start", "2019-01-01", "--end", "2021-12-31", "--json", "--no-journal")
    assert result.exit_code == 0, result.output
    return {n: m["cagr"] for n, m in json.loads(result.stdout)["models"].items()}


def test_timestamps_in_any_zone_give_the_session_they_label_or_the_new_york_date_of_the_instant(tmp_path, bundled):
    """The rule: midnight in the stamp's own zone labels that date (00:00 Asia/Tokyo on the
    15th is the session of the 15th); any other stamped instant belongs to its New York date
    (16:00 New York, 21:00 UTC and 06:00 Tokyo the next day are one close)."""
    plain = tmp_path / "plain.parquet"
    bundled.write_parquet(plain)
    expected = _cagr(tmp_path, plain)
    cases = {
        "tokyo-midnight": _stamped(bundled, "Asia/Tokyo", 0),
        "utc-midnight": _stamped(bundled, "UTC", 0),
        "new-york-close": _stamped(bundled, "America/New_York", 16),
        # the same closes written in other zones: 21:00/20:00 UTC and 06:00/05:00 Tokyo next day
        "utc-close": _stamped(bundled, "America/New_York", 16).with_columns(pl.col("date").dt.convert_time_zone("UTC")),
        "tokyo-close": _stamped(bundled, "America/New_York", 16).with_columns(
            pl.col("date").dt.convert_time_zone("Asia/Tokyo")),
    }
    for name, frame in cases.items():
        data = tmp_path / f"{name}.parquet"
        frame.write_parquet(data)
        assert _cagr(tmp_path, data) == expected, name
        csv = tmp_path / f"{name}.csv"  # written with its UTC offset, read back the same way
        frame.with_columns(pl.col("date").dt.strftime("%Y-%m-%dT%H:%M:%S%:z")).write_csv(csv)
        assert _cagr(tmp_path, csv) == expected, name


def test_a_bar_stamped_during_the_session_is_refused_the_same_way_by_validate_and_backtest(tmp_path, bundled):
    data = tmp_path / "midday.parquet"
    _stamped(bundled, "America/New_York", 11).write_parquet(data)
    validate = botctl(tmp_path, data, "validate")
    backtest = botctl(tmp_path, data, "backtest", "--no-journal")
    for result in (validate, backtest):
        assert result.exit_code == 1, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert "midday.parquet: " in result.output and "stamped 11:00 New York time, during the session" in result.output


def test_a_semicolon_separated_csv_is_read_like_a_comma_separated_one(tmp_path, bundled):
    folder = tmp_path / "bars"
    folder.mkdir()
    for (symbol,), frame in bundled.filter(pl.col("date") >= pl.date(2019, 1, 1)).group_by("symbol"):
        frame.drop("symbol").write_csv(folder / f"{symbol}.csv", separator=";")
    result = botctl(tmp_path, folder, "backtest", "--start", "2020-01-01", "--end", "2020-06-30", "--json", "--no-journal")
    assert result.exit_code == 0, result.output


def test_us_style_dates_are_refused_with_the_expected_format(tmp_path, bundled):
    data = tmp_path / "us.csv"
    bundled.with_columns(pl.col("date").dt.strftime("%m/%d/%Y")).write_csv(data)
    for args in (("validate",), ("backtest", "--no-journal")):
        result = botctl(tmp_path, data, *args)
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines() == [
            f"error: us.csv: date '{bundled['date'][0]:%m/%d/%Y}' ({bundled['symbol'][0]}, {bundled.height} row(s) like it) "
            "is not a date botctl reads: write dates as YYYY-MM-DD (ISO 8601), or ISO timestamps with a UTC offset"]


def test_a_text_price_is_one_line_naming_the_value_once(tmp_path, bundled):
    data = tmp_path / "text.csv"
    bundled.with_columns(pl.col("close").cast(pl.Utf8)).pipe(_set, "close", "XLK", pl.date(2020, 3, 2), pl.lit("n/a")) \
        .write_csv(data)
    for args in (("validate",), ("backtest", "--no-journal")):
        result = botctl(tmp_path, data, *args)
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines() == ["error: text.csv: close 'n/a' (XLK 2020-03-02, 1 row(s) like it) is not a number"]


def test_a_month_without_bars_for_one_symbol_is_warned_at_load_and_in_the_journal(tmp_path, bundled):
    data = tmp_path / "gap.parquet"
    in_march = (pl.col("date") >= pl.date(2021, 3, 1)) & (pl.col("date") <= pl.date(2021, 3, 31))
    bundled.filter(~((pl.col("symbol") == "XLK") & in_march)).write_parquet(data)
    result = botctl(tmp_path, data, "backtest", "--start", "2021-01-01", "--end", "2021-06-30", "--json")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # the warning goes to stderr, the JSON stays whole
    assert result.stderr.strip().splitlines() == [
        "warning: XLK has no bars for 23 sessions (2021-03-01..2021-03-31) while other symbols do: its orders "
        "cannot fill and its price is carried from before"]
    import sqlite3

    from botctl.store.journal import backtest_journal

    with sqlite3.connect(backtest_journal(tmp_path / "j.db")) as db:  # backtests journal beside the journal
        events = db.execute("SELECT account, type, severity, message FROM events WHERE symbol = 'XLK'").fetchall()
    gaps = [e for e in events if e[1] == "data.gap"]
    assert {e[0] for e in gaps} == {"rotation-sim", "adaptive-sim", "signals-sim"} and all(e[2] == "WARN" for e in gaps)
    canceled = [e for e in events if e[1] == "order.canceled"]
    # the 1 March rebalance sells XLK at the open of a session XLK has no bar for
    assert canceled and all(e[2] == "WARN" and "no bar to fill at on 2021-03-01" in e[3] for e in canceled), events
