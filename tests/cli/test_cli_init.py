"""`botctl init`: the starter folder validates and backtests as written, and never replaces a
user's files without --force."""

from __future__ import annotations

from cli_support import invoke


def test_the_starter_folder_validates_and_backtests(tmp_path):
    folder = tmp_path / "new"
    result = invoke("init", str(folder))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "accounts.yaml", "strategies.yaml"]
    assert invoke("--config-dir", str(folder), "validate").stdout.strip() == "ok: 1 strategies, 1 accounts"
    backtest = invoke("--config-dir", str(folder), "--db", str(tmp_path / "b.db"), "backtest",
                      "--start", "2019-01-01", "--end", "2021-12-31", "--json")
    assert backtest.exit_code == 0, backtest.output
    assert "HALTED" not in backtest.stdout
    assert "botctl backtest" in (folder / "README.md").read_text()


def test_the_commented_alpaca_example_validates_once_uncommented(tmp_path):
    folder = tmp_path / "new"
    invoke("init", str(folder))
    accounts = folder / "accounts.yaml"
    lines, inside = [], False
    for line in accounts.read_text().splitlines():
        inside = inside or line.startswith("  # alpaca-paper:")
        lines.append("  " + line[4:] if inside and line.startswith("  # ") else line)
    accounts.write_text("\n".join(lines) + "\n")
    assert "\n  alpaca-paper:\n    broker: alpaca\n" in accounts.read_text()
    result = invoke("--config-dir", str(folder), "validate")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok: 1 strategies, 2 accounts"


def test_existing_files_are_kept_without_force(tmp_path):
    (tmp_path / "accounts.yaml").write_text("mine\n")
    result = invoke("init", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path} already has accounts.yaml; pass --force to replace"
    assert (tmp_path / "accounts.yaml").read_text() == "mine\n"
    assert not (tmp_path / "strategies.yaml").exists()  # nothing is written when one file is refused
    assert invoke("init", str(tmp_path), "--force").exit_code == 0
    assert (tmp_path / "accounts.yaml").read_text() != "mine\n"


def test_a_file_in_place_of_the_folder_is_a_usage_error(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = invoke("init", str(target))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {target} exists and is not a folder"
