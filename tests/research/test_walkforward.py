"""Walk-forward windows, stitching, the command's JSON and its --propose diff."""

from __future__ import annotations

import json
import subprocess
from datetime import date

import pytest

from botctl.errors import UsageError
from botctl.research.propose import proposal_diff
from botctl.research.walkforward import parse_span, stitch, windows
from tests.conftest import REPO_ROOT
from tests.research.support import LOOKBACK, TOP, body, botctl


def test_rolling_and_anchored_windows():
    rolling = windows(date(2015, 1, 1), date(2019, 6, 30), 36, 12, anchored=False)
    assert [(w.train_start, w.train_end, w.test_start, w.test_end) for w in rolling] == [
        (date(2015, 1, 1), date(2017, 12, 31), date(2018, 1, 1), date(2018, 12, 31)),
        (date(2016, 1, 1), date(2018, 12, 31), date(2019, 1, 1), date(2019, 6, 30)),
    ]
    anchored = windows(date(2015, 1, 1), date(2019, 6, 30), 36, 12, anchored=True)
    assert [w.train_start for w in anchored] == [date(2015, 1, 1)] * 2
    assert anchored[1].train_end == date(2018, 12, 31)
    with pytest.raises(UsageError, match="no walk-forward window"):
        windows(date(2015, 1, 1), date(2016, 1, 1), 36, 12, anchored=False)


@pytest.mark.parametrize("text, months", [("3y", 36), ("18m", 18), ("1Y", 12)])
def test_spans(text, months):
    assert parse_span(text, "--train") == months


@pytest.mark.parametrize("text", ["3", "0y", "2w", "-1y", ""])
def test_bad_spans(text):
    with pytest.raises(UsageError, match="--train"):
        parse_span(text, "--train")


def test_stitch_chains_returns():
    first = {"dates": ["d0", "d1", "d2"], "nav": [100.0, 110.0, 121.0]}
    second = {"dates": ["d2", "d3"], "nav": [50.0, 45.0]}  # starts afresh: only its return counts
    dates, nav = stitch([first, second])
    assert dates == ["d0", "d1", "d2", "d3"]
    assert nav == pytest.approx([100.0, 110.0, 121.0, 108.9])


def test_proposal_diff_changes_only_the_values(tmp_path):
    strategies = (REPO_ROOT / "strategies.yaml").read_bytes()
    accounts = (REPO_ROOT / "accounts.yaml").read_bytes()
    diff = proposal_diff(strategies, accounts, {LOOKBACK: 252, "SectorRotationModel_v1.weigh_equally.slots": 2,
                                                "SectorRotationBull_v1.when_regime.sma_days": 150,
                                                "rotation-sim.risk.max_gross_leverage": 1.25})
    assert "-      - select_momentum: {lookback_days: 126, top: 3, min_return: 0.0}\n" in diff
    assert "+      - select_momentum: {lookback_days: 252, top: 3, min_return: 0.0}\n" in diff
    assert "+      - weigh_equally: {slots: 2}  # an empty slot stays in cash\n" in diff
    assert "+    max_gross_leverage: 1.25" in diff or "+      max_gross_leverage: 1.25" in diff
    # It applies with patch(1) to a copy, and the result decodes to the proposed values.
    for name in ("strategies.yaml", "accounts.yaml"):
        (tmp_path / name).write_bytes((REPO_ROOT / name).read_bytes())
    (tmp_path / "p.diff").write_text(diff)
    subprocess.run(["patch", "-p1", "-s", "-i", "p.diff"], cwd=tmp_path, check=True)
    from botctl.spec.load import load_config

    config = load_config((tmp_path / "strategies.yaml").read_bytes(), (tmp_path / "accounts.yaml").read_bytes())
    assert config.steps["SectorRotationModel_v1"][0].lookback_days == 252
    assert config.steps["SectorRotationModel_v1"][1].slots == 2
    assert config.steps["SectorRotationBull_v1"][0].sma_days == 150
    assert config.accounts.accounts["rotation-sim"].risk.max_gross_leverage == 1.25
    assert config.steps["SectorRotationBull_v1"][1].lookback_days == 126  # nothing else moved


def test_a_default_value_is_added_to_the_flow_mapping():
    strategies = (REPO_ROOT / "strategies.yaml").read_bytes()
    accounts = (REPO_ROOT / "accounts.yaml").read_bytes()
    diff = proposal_diff(strategies, accounts, {"SectorRotationBull_v1.fallback.weight": 0.5})
    assert "+      - fallback: {to: cash, weight: 0.5}\n" in diff


def test_walkforward_json_and_propose_file(config_dir):
    before = (config_dir / "strategies.yaml").read_bytes()
    proposal = config_dir / "proposal.diff"
    out = body(botctl(config_dir, "walkforward", "--vary", f"{LOOKBACK}=63,252", "--vary", f"{TOP}=2,3",
                      "--start", "2016-01-01", "--end", "2019-12-31", "--train", "2y", "--test", "1y",
                      "--workers", "2", "--propose", str(proposal), "--json"))
    assert [w["test"] for w in out["windows"]] == [{"start": "2018-01-01", "end": "2018-12-31"},
                                                   {"start": "2019-01-01", "end": "2019-12-31"}]
    for w in out["windows"]:
        assert w["chosen_from"] == "sweep" and set(w["chosen"]) == {LOOKBACK, TOP}
        assert w["in_sample"]["sharpe"] is not None and w["out_of_sample"]["sharpe"] is not None
    assert out["shipped_params"] == {LOOKBACK: 126, TOP: 3}
    nav = out["out_of_sample"]["curve"]["nav"]
    assert out["out_of_sample"]["curve"]["dates"][0] < "2018-01-02" < out["out_of_sample"]["curve"]["dates"][-1]
    assert out["out_of_sample"]["metrics"]["total_return"] == pytest.approx(nav[-1] / nav[0] - 1)
    assert set(out["in_sample"]["mean"]) >= {"sharpe", "cagr", "max_drawdown"}
    assert (config_dir / "strategies.yaml").read_bytes() == before  # the plan is never rewritten
    assert out["proposal"] == out["windows"][-1]["chosen"]
    if out["proposal"] != out["shipped_params"]:
        assert proposal.read_text() == out["proposal_diff"] and proposal.read_text().startswith("--- a/")
    # The same walk-forward again comes from the journal.
    again = body(botctl(config_dir, "walkforward", "--vary", f"{LOOKBACK}=63,252", "--vary", f"{TOP}=2,3",
                        "--start", "2016-01-01", "--end", "2019-12-31", "--train", "2y", "--test", "1y",
                        "--workers", "1", "--json"))
    assert again["run_id"] == out["run_id"] and again["windows"] == out["windows"]
    refused = botctl(config_dir, "walkforward", "--vary", f"{LOOKBACK}=63", "--train", "2w")
    assert refused.returncode == 2 and "--train" in refused.stderr
    existing = botctl(config_dir, "walkforward", "--vary", f"{LOOKBACK}=63", "--propose", str(proposal))
    assert existing.returncode == 2 and "--force" in existing.stderr
    for precious in ("strategies.yaml", "botctl-backtests.db"):
        refused = botctl(config_dir, "walkforward", "--vary", f"{LOOKBACK}=63", "--propose", precious, "--force")
        assert refused.returncode == 2 and "--propose" in refused.stderr, refused.stderr
    assert (config_dir / "strategies.yaml").read_bytes() == before
    assert json.loads(json.dumps(out))  # plain JSON
