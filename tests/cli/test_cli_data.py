"""`botctl data info` on the bundled and on a user's data, and `botctl data fetch` with the real
alpaca-py client against the loopback fake Alpaca server."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest
from cli_support import invoke

from botctl.adapters.file_data import bundled_data_path, load_bars

SYMBOLS = ["SPY", "XLK"]


@pytest.fixture(scope="module")
def history():
    """Two symbols of the bundled history, 2019-2020 (XLK holds a 2:1 split-adjusted history)."""
    frame = pl.read_parquet(bundled_data_path())
    return frame.filter(pl.col("symbol").is_in(SYMBOLS) & pl.col("date").is_between(date(2019, 1, 1), date(2020, 12, 31)))


# data info --------------------------------------------------------------------------------------

def test_data_info_describes_the_bundled_history(history):
    body = json.loads(invoke("data", "info", "--json").stdout)
    assert body["bundled"] is True
    bundled = load_bars()
    spy = next(r for r in body["symbols"] if r["symbol"] == "SPY")
    spy_dates = bundled.filter(pl.col("symbol") == "SPY")["date"]
    assert (spy["first"], spy["last"], spy["sessions"]) == (str(spy_dates.min()), str(spy_dates.max()), spy_dates.len())
    assert spy["missing_sessions"] == 0
    assert spy["age_days"] == (date.fromisoformat(body["as_of"]) - spy_dates.max()).days
    assert sorted(r["symbol"] for r in body["symbols"]) == sorted(bundled["symbol"].unique().to_list())


def test_data_info_counts_the_sessions_a_file_is_missing(history, tmp_path):
    march = [date(2020, 3, d) for d in (9, 10, 11, 12, 13)]
    holed = history.filter(~((pl.col("symbol") == "XLK") & pl.col("date").is_in(march)))
    path = tmp_path / "bars.parquet"
    holed.write_parquet(path)
    body = json.loads(invoke("--data", str(path), "data", "info", "--json").stdout)
    assert body["bundled"] is False and body["source"] == str(path)
    by_symbol = {r["symbol"]: r for r in body["symbols"]}
    assert by_symbol["XLK"]["missing_sessions"] == 5
    assert by_symbol["XLK"]["first_missing"] == [d.isoformat() for d in march]
    assert by_symbol["SPY"]["missing_sessions"] == 0
    assert by_symbol["SPY"]["sessions"] == history.filter(pl.col("symbol") == "SPY").height
    text = invoke("--data", str(path), "data", "info").stdout.splitlines()
    assert text[0] == f"data: {path}; ages as of {body['as_of']} (New York)"
    assert any(line.startswith("XLK ") and "first missing: 2020-03-09" in line for line in text)


def test_data_info_on_missing_data_is_one_line_exit_1(tmp_path):
    result = invoke("--data", str(tmp_path / "none"), "data", "info")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: no market data at {tmp_path / 'none'}"


# data fetch -------------------------------------------------------------------------------------

@pytest.fixture
def fake(history):
    from fakes.fake_alpaca import FakeAlpaca

    with FakeAlpaca(api_key="fetch-key", secret_key="fetch-secret", bars=history) as fake:
        yield fake


KEYS = {"ALPACA_API_KEY": "fetch-key", "ALPACA_SECRET_KEY": "fetch-secret"}


def test_fetch_writes_a_folder_that_data_reads_back_as_the_same_bars(fake, history, tmp_path):
    out = tmp_path / "bars"
    result = invoke("data", "fetch", "--symbols", "spy,XLK", "--start", "2020-01-01", "--end", "2020-06-30",
                    "--out", str(out), "--data-url", fake.url, env=KEYS)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["SPY.parquet", "XLK.parquet"]
    progress = result.stderr.splitlines()
    assert progress[0].startswith("[1/2] SPY: ") and progress[1].startswith("[2/2] XLK: ")
    assert f"-> {out / 'XLK.parquet'}" in progress[1]
    assert result.stdout.strip() == f"fetched 2 of 2 symbol(s) into {out}; use it with: botctl --data {out} ..."
    got = load_bars(out)
    want = history.filter(pl.col("date").is_between(date(2020, 1, 1), date(2020, 6, 30))).sort("symbol", "date")
    assert got["date"].to_list() == want["date"].to_list()
    for column in ("open", "high", "low", "close", "adj_close"):  # as traded, and adjusted close
        assert got[column].to_list() == pytest.approx(want[column].to_list(), rel=1e-9), column
    # The folder works as --data for a backtest's data source.
    info = json.loads(invoke("--data", str(out), "data", "info", "--json").stdout)
    assert [(r["symbol"], r["first"], r["last"]) for r in info["symbols"]] == [
        ("SPY", "2020-01-02", "2020-06-30"), ("XLK", "2020-01-02", "2020-06-30")]


def test_fetch_refuses_to_replace_files_without_force(fake, history, tmp_path):
    out = tmp_path / "bars"
    out.mkdir()
    (out / "SPY.parquet").write_text("mine")
    args = ["data", "fetch", "--symbols", "SPY", "--start", "2020-01-01", "--end", "2020-01-31", "--out", str(out),
            "--data-url", fake.url]
    result = invoke(*args, env=KEYS)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {out} already has SPY.parquet; pass --force to replace"
    assert (out / "SPY.parquet").read_text() == "mine"
    assert invoke(*args, "--force", env=KEYS).exit_code == 0
    january = history.filter((pl.col("symbol") == "SPY") & pl.col("date").is_between(date(2020, 1, 1), date(2020, 1, 31)))
    assert load_bars(out)["date"].to_list() == january["date"].to_list()


def test_fetch_reports_a_symbol_alpaca_lacks_and_writes_the_others(fake, tmp_path):
    out = tmp_path / "bars"
    result = invoke("data", "fetch", "--symbols", "SPY,QQQ", "--start", "2020-01-01", "--end", "2020-01-31",
                    "--out", str(out), "--data-url", fake.url, env=KEYS)
    assert result.exit_code == 1
    assert "[2/2] QQQ: failed: Alpaca has no iex daily bars for QQQ from 2020-01-01 to 2020-01-31" in result.stderr
    assert result.stdout.strip().startswith(f"fetched 1 of 2 symbol(s) into {out}; failed: QQQ")
    assert [p.name for p in out.iterdir()] == ["SPY.parquet"]


def test_fetch_with_rejected_keys_names_no_secret(fake, tmp_path):
    out = tmp_path / "bars"
    result = invoke("data", "fetch", "--symbols", "SPY", "--start", "2020-01-01", "--end", "2020-01-31",
                    "--out", str(out), "--data-url", fake.url,
                    env={"ALPACA_API_KEY": "wrong-key", "ALPACA_SECRET_KEY": "wrong-secret"})
    assert result.exit_code == 1
    assert "[1/1] SPY: failed:" in result.stderr and "40" in result.stderr
    assert "wrong-key" not in result.output and "wrong-secret" not in result.output
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("args, env, message", [
    (["--symbols", "SPY", "--start", "2020-13-01"], KEYS, "--start expects a date like 2020-01-31, got '2020-13-01'"),
    (["--symbols", "SPY", "--start", "2020-02-01", "--end", "2020-01-01"], KEYS, "--end 2020-01-01 is before --start 2020-02-01"),
    (["--symbols", "S P Y", "--start", "2020-01-01"], KEYS, "--symbols: S P Y is not a ticker (letters, digits, '.' or '-', up to 10)"),
    (["--symbols", ",", "--start", "2020-01-01"], KEYS, "--symbols needs at least one symbol, e.g. --symbols SPY,TLT"),
    (["--symbols", "SPY", "--start", "2020-01-01", "--feed", "otc"], KEYS, "--feed must be iex or sip, got 'otc'"),
    (["--symbols", "SPY", "--start", "2020-01-01"], {"ALPACA_API_KEY": "", "ALPACA_SECRET_KEY": "x"},
     "Alpaca keys are read from the environment: set ALPACA_API_KEY (or name other variables with "
     "--api-key-env/--secret-key-env)"),
])
def test_fetch_bad_arguments_are_one_line_usage_errors(tmp_path, args, env, message):
    result = invoke("data", "fetch", *args, "--out", str(tmp_path / "bars"), "--data-url", "http://127.0.0.1:9", env=env)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {message}"
    assert not (tmp_path / "bars").exists()
