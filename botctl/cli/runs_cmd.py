"""`botctl runs`: the runs in the journal (backtests, replays, paper and live sessions, manual
operator actions), newest first, with what each one recorded."""

from __future__ import annotations

import json
import sqlite3
from typing import get_args

import typer

from botctl.cli.common import globals_of
from botctl.errors import StoreError, UsageError
from botctl.records import Run, RunKind

MODES: tuple[str, ...] = get_args(RunKind)
COUNTED = ("orders", "fills", "nav", "events")


def run_counts(store, run_ids: list[str]) -> dict[str, dict[str, int]]:
    """{run_id: {table: rows}} for the journal tables a run writes to (each an indexed count)."""
    counts = {run_id: dict.fromkeys(COUNTED, 0) for run_id in run_ids}
    try:
        for start in range(0, len(run_ids), 500):  # well under SQLite's limit on bound parameters
            chunk = run_ids[start: start + 500]
            marks = ", ".join("?" for _ in chunk)
            for table in COUNTED:
                rows = store.conn.execute(
                    f"SELECT run_id, COUNT(*) FROM {table} WHERE run_id IN ({marks}) GROUP BY run_id", chunk
                ).fetchall()
                for run_id, n in rows:
                    counts[run_id][table] = n
    except sqlite3.Error as exc:
        raise StoreError(f"cannot count the runs' rows in {store.path}: {exc}") from None
    return counts


def known_run_ids(store, limit: int = 5) -> str:
    """The newest run ids, for an error message that says what would have been accepted."""
    newest = [run.run_id for _, run in store.newest("runs", limit)]
    return ", ".join(reversed(newest)) if newest else "none: the journal has no runs"


def require_run(store, run_id: str) -> Run:
    run = store.get_run(run_id)
    if run is None:
        raise UsageError(f"no run {run_id!r} in {store.path} (newest: {known_run_ids(store)}; see `botctl runs`)")
    return run


def _run_json(run: Run, counts: dict[str, int]) -> dict:
    return {
        "run_id": run.run_id, "mode": run.kind, "status": run.status, "plan_id": run.plan_id,
        "started_at": run.started_at.isoformat(), "ended_at": run.ended_at.isoformat() if run.ended_at else None,
        "period_start": run.period_start, "period_end": run.period_end, "note": run.note, "counts": counts,
    }


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}Z" if value else "-"


def register(app: typer.Typer) -> None:
    @app.command()
    def runs(
        ctx: typer.Context,
        mode: str = typer.Option(None, "--mode", help=f"Only runs of this mode: {', '.join(MODES)}."),
        n: int = typer.Option(20, "-n", "--lines", min=1, help="How many of the newest runs to list."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object per run, newest first."),
    ) -> None:
        """List the journal's runs, newest first, with what each recorded.

        Per run: id, mode, status, started and ended (UTC), the market period of a backtest or
        replay, the note, and how many orders, fills, NAV marks and events it journaled. A run
        id is what `tail --run` and `export --run` take."""
        from botctl.store import Store

        if mode is not None and mode not in MODES:
            raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
        g = globals_of(ctx)
        with Store.open(g.db, create=False, readonly=True) as store:
            found = [run for _, run in store.newest("runs", n, kind=mode)]
            found.reverse()
            counts = run_counts(store, [run.run_id for run in found])
            # Sweeps and walk-forward runs (botctl.research) record trials instead of orders.
            for run_id, trials in store.trial_counts([run.run_id for run in found]).items():
                counts[run_id]["trials"] = trials
        if as_json:
            for run in found:
                typer.echo(json.dumps(_run_json(run, counts[run.run_id])))
            return
        if not found:
            typer.echo("no runs" + (f" of mode {mode}" if mode else "") + f" in {g.db}")
            return
        header = f"{'run id':<28} {'mode':<8} {'status':<8} {'started (UTC)':<20} {'ended (UTC)':<20} " \
                 f"{'orders':>7} {'fills':>7} {'nav':>6} {'events':>7}  period / note"
        typer.echo(header)
        for run in found:
            c = counts[run.run_id]
            period = f"{run.period_start}..{run.period_end}" if run.period_start else ""
            recorded = f"{c['trials']} trials recorded" if c.get("trials") else ""
            about = "  ".join(part for part in (period, run.note.splitlines()[0] if run.note else "", recorded) if part)
            typer.echo(f"{run.run_id:<28} {run.kind:<8} {run.status:<8} {_when(run.started_at):<20} "
                       f"{_when(run.ended_at):<20} {c['orders']:>7} {c['fills']:>7} {c['nav']:>6} {c['events']:>7}  "
                       f"{about}".rstrip())
