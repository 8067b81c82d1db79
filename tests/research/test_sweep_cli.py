"""`botctl sweep` end to end, as a subprocess on real files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.research.support import LOOKBACK, PERIOD, TOP, body, botctl


def test_json_shape_matches_backtest_model_metrics(config_dir):
    out = body(botctl(config_dir, "sweep", "--vary", f"{LOOKBACK}=63,126", "--vary", f"{TOP}=2,3", *PERIOD,
                      "--workers", "1", "--json"))
    backtest = body(botctl(config_dir, "backtest", "--model", "SectorRotationModel_v1", *PERIOD, "--no-journal",
                           "--json"))
    shipped = backtest["models"]["SectorRotationModel_v1"]
    assert len(out["trials"]) == 4
    assert {json.dumps(t["params"], sort_keys=True) for t in out["trials"]} == {
        json.dumps({LOOKBACK: lb, TOP: top}, sort_keys=True) for lb in (63, 126) for top in (2, 3)}
    for trial in out["trials"]:
        assert trial["status"] == "ok"
        assert set(trial["metrics"]) == set(shipped)
        assert 0.0 <= trial["deflated_sharpe"] <= 1.0
    # The trial with the shipped values is the shipped backtest, figure for figure.
    same = next(t for t in out["trials"] if t["params"] == {LOOKBACK: 126, TOP: 3})
    assert same["metrics"]["sharpe"] == shipped["sharpe"]
    assert same["metrics"]["total_return"] == shipped["total_return"]
    # Ranked by the objective, best first.
    sharpes = [t["metrics"]["sharpe"] for t in out["trials"]]
    assert sharpes == sorted(sharpes, reverse=True)
    assert [t["rank"] for t in out["trials"]] == [1, 2, 3, 4]
    assert out["best"]["params"] == out["trials"][0]["params"]


def test_constraints_and_objective(config_dir):
    out = body(botctl(config_dir, "sweep", "--vary", f"{LOOKBACK}=63,126,252", *PERIOD, "--workers", "1",
                      "--objective", "cagr", "--min-round-trips", "1000", "--json"))
    assert out["objective"] == "cagr"
    assert all(t["meets_constraints"] is False and t["rank"] is None for t in out["trials"])
    assert out["best"] is None
    cagrs = [t["metrics"]["cagr"] for t in out["trials"]]
    assert cagrs == sorted(cagrs, reverse=True)


@pytest.mark.parametrize("args, code, text", [
    (["--vary", "SectorRotationModel_v1.select_momentum.nope=1"], 2, "has no parameter 'nope'"),
    (["--vary", "Unknown_v9.select_momentum.top=1"], 2, "no model or account 'Unknown_v9'"),
    (["--vary", f"{LOOKBACK}=63,0"], 4, "lookback_days"),
    (["--vary", "rotation-sim.risk.max_gross_leverage=1.0,-1", "--model", "SectorRotationModel_v1"], 4,
     "max_gross_leverage"),
    (["--vary", "rotation-sim.risk.max_gross_leverage=1.0"], 2, "--model NAME"),
    (["--vary", f"{LOOKBACK}="], 2, "no values"),
    ([], 2, "nothing to vary"),
    ([f"--vary={TOP}=" + ",".join(map(str, range(1, 101)))] * 1
     + [f"--vary=SectorRotationModel_v1.select_momentum.min_return={','.join(str(i / 100) for i in range(100))}",
        f"--vary={LOOKBACK}={','.join(map(str, range(2, 102)))}",
        f"--vary=SectorRotationModel_v1.scale_leverage.gross={','.join(str(i / 100) for i in range(1, 12))}"],
     2, "add --yes"),
    (["--vary", f"{LOOKBACK}=63", "--objective", "luck"], 2, "--objective"),
    (["--vary", f"{LOOKBACK}=63", "--max-drawdown", "0.25"], 2, "--max-drawdown"),
    (["--vary", f"{LOOKBACK}=63", "--min-round-trips", "-1"], 2, "--min-round-trips"),
    (["--vary", f"{LOOKBACK}=63", "--samples", "0"], 2, "--samples"),
    (["--vary", f"{LOOKBACK}=63", "--start", "2020-02-30"], 2, "--start"),
    (["--vary", f"{LOOKBACK}=63", "--workers", "0"], 2, "--workers"),
    (["--vary", f"{LOOKBACK}=63", "--start", "2021-01-01", "--end", "2020-01-01"], 2, "is after --end"),
    (["--vary", f"{LOOKBACK}=63", "--start", "1990-01-01", "--end", "1991-01-01"], 1, "no sessions"),
    (["--vary", f"{LOOKBACK}=63", "--cluster", "tcp://127.0.0.1:9"], 1, "cannot reach the Dask scheduler"),
])
def test_bad_input_is_one_line_and_nothing_runs(config_dir, args, code, text):
    if "--cluster" in args:
        pytest.importorskip("distributed")
    done = botctl(config_dir, "sweep", *PERIOD, *args)  # args last: they win over PERIOD
    assert done.returncode == code, done.stderr
    assert text in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip() and "problem(s) in the config" not in line]
    assert len(lines) == 1, done.stderr
    if code != 1:  # refused before any trial: no run was journaled
        assert not (config_dir / "botctl-backtests.db").exists()


def test_risk_path_changes_the_account_setting(config_dir):
    out = body(botctl(config_dir, "sweep", "--vary", "rotation-sim.risk.max_gross_leverage=0.5,1.5", *PERIOD,
                      "--model", "SectorRotationModel_v1", "--workers", "1", "--json"))
    by = {t["params"]["rotation-sim.risk.max_gross_leverage"]: t["metrics"] for t in out["trials"]}
    assert sum(by[0.5]["blocked"].values()) > 0  # 1.25x targets exceed a 0.5x limit: the guard blocks orders
    assert by[0.5]["exposure"] < by[1.5]["exposure"]


def test_pool_gives_the_same_trials_as_one_process_and_runs_lists_the_sweep(config_dir):
    args = ("sweep", "--vary", f"{LOOKBACK}=63,126,189", "--vary", f"{TOP}=2,3", *PERIOD, "--json")
    one = body(botctl(config_dir, *args, "--workers", "1"))
    pool = body(botctl(config_dir, *args, "--workers", "2", "--fresh"))
    assert pool["run_id"] != one["run_id"] and pool["run_id"].startswith(one["run_id"])
    assert pool["counts"]["resumed"] == 0
    assert [(t["params"], t["metrics"], t["deflated_sharpe"]) for t in pool["trials"]] == \
        [(t["params"], t["metrics"], t["deflated_sharpe"]) for t in one["trials"]]
    again = body(botctl(config_dir, *args, "--workers", "1"))  # the same sweep: everything from the journal
    assert again["run_id"] == one["run_id"] and again["counts"]["resumed"] == 6
    assert again["trials"] == one["trials"]
    shown = body(botctl(config_dir, "sweep", "--show", one["run_id"], "--json"))  # from the journal alone
    assert shown["trials"] == one["trials"] and shown["from_journal"]
    by_cagr = body(botctl(config_dir, "sweep", "--show", one["run_id"], "--objective", "cagr", "--json"))
    cagrs = [t["metrics"]["cagr"] for t in by_cagr["trials"]]
    assert cagrs == sorted(cagrs, reverse=True)
    missing = botctl(config_dir, "sweep", "--show", "sweep-nope")
    assert missing.returncode == 2 and "sweep-nope" in missing.stderr
    listed = botctl(config_dir, "--db", str(config_dir / "botctl-backtests.db"), "runs", "--json")
    runs = {r["run_id"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert runs[one["run_id"]]["counts"]["trials"] == 6 and runs[one["run_id"]]["status"] == "finished"
    table = botctl(config_dir, "--db", str(config_dir / "botctl-backtests.db"), "runs").stdout
    assert one["run_id"] in table and "6 trials recorded" in table


def test_killed_sweep_resumes_without_redoing_finished_trials(config_dir):
    journal = config_dir / "botctl-backtests.db"
    args = ["sweep", "--vary", f"{LOOKBACK}=21,42,63,84,105,126,147,168,189,210,231,252", *PERIOD, "--workers", "1",
            "--json"]
    env = {**os.environ, "BOTCTL_CONFIG_DIR": str(config_dir), "BOTCTL_DB": str(config_dir / "botctl.db")}
    proc = subprocess.Popen([sys.executable, "-m", "botctl", *args], env=env, cwd=config_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    recorded: list = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists():
            try:
                with sqlite3.connect(journal) as conn:
                    recorded = conn.execute("SELECT trial_key, recorded_at FROM research_trials").fetchall()
            except sqlite3.OperationalError:
                recorded = []
        if len(recorded) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert 3 <= len(recorded) < 12, "the sweep finished before it could be killed"
    with sqlite3.connect(journal) as conn:
        before = dict(conn.execute("SELECT trial_key, recorded_at FROM research_trials").fetchall())
    out = body(botctl(config_dir, *args))
    assert out["counts"]["resumed"] == len(before)
    assert out["counts"]["ok"] == 12 and len(out["trials"]) == 12
    with sqlite3.connect(journal) as conn:
        after = dict(conn.execute("SELECT trial_key, recorded_at FROM research_trials").fetchall())
        status = conn.execute("SELECT status FROM runs WHERE run_id = ?", (out["run_id"],)).fetchone()[0]
    assert len(after) == 12 and status == "finished"
    assert all(after[key] == at for key, at in before.items())  # finished trials were not run again
    # --resume with the run id is accepted; another id is refused in one line
    assert body(botctl(config_dir, *args, "--resume", out["run_id"]))["counts"]["resumed"] == 12
    wrong = botctl(config_dir, *args, "--resume", "sweep-000000000000")
    assert wrong.returncode == 2 and "no such run" in wrong.stderr


def test_html_report(config_dir):
    report = config_dir / "sweep.html"
    out = body(botctl(config_dir, "sweep", "--vary", f"{LOOKBACK}=63,126,252", "--vary", f"{TOP}=2,3", *PERIOD,
                      "--workers", "1", "--report", str(report), "--json"))
    page = report.read_text()
    assert "<b>6 trial(s)</b>" in page and "Objective heatmap" in page
    assert page.count("<svg") == 1 and "#1 lookback_days=" in page
    best = out["trials"][0]
    assert f"{best['deflated_sharpe']:.3f}" in page and f"{best['metrics']['sharpe']:.3f}" in page
    again = botctl(config_dir, "sweep", "--vary", f"{LOOKBACK}=63", *PERIOD, "--report", str(report))
    assert again.returncode == 2 and "--force" in again.stderr


def test_sweep_file_and_random_sample(config_dir):
    (config_dir / "sweep.yaml").write_text(
        "vary:\n"
        f"  {LOOKBACK}: {{from: 42, to: 252, step: 42}}\n"
        f"  {TOP}: [2, 3]\n"
        "model: SectorRotationModel_v1\nobjective: calmar\nsamples: 4\nseed: 3\n"
        "constraints: {max_drawdown: -0.5}\n")
    out = body(botctl(config_dir, "sweep", "--file", "sweep.yaml", *PERIOD, "--workers", "1", "--json"))
    assert out["objective"] == "calmar" and out["sampled"] and out["grid_size"] == 12
    assert len(out["trials"]) == 4 and out["constraints"]["max_drawdown"] == -0.5
    assert all(t["params"][LOOKBACK] in (42, 84, 126, 168, 210, 252) for t in out["trials"])
    again = body(botctl(config_dir, "sweep", "--file", "sweep.yaml", *PERIOD, "--workers", "1", "--json"))
    assert again["run_id"] == out["run_id"] and again["counts"]["resumed"] == 4  # same seed, same sample
    other = body(botctl(config_dir, "sweep", "--file", "sweep.yaml", "--seed", "4", *PERIOD, "--workers", "1",
                        "--json"))
    assert other["run_id"] != out["run_id"]
    (config_dir / "bad.yaml").write_text("vary: {}\nsurprise: 1\n")
    bad = botctl(config_dir, "sweep", "--file", "bad.yaml")
    assert bad.returncode == 2 and "bad.yaml" in bad.stderr
