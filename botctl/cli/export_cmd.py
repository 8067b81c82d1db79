"""`botctl export`: one run's trades, fills, orders or NAV marks as a parquet or CSV file, for
notebooks and spreadsheets. Columns keep the journal's names and types (timestamps in UTC)."""

from __future__ import annotations

import os
import types
import typing
from datetime import datetime
from pathlib import Path

import msgspec
import typer

from botctl.cli.common import globals_of
from botctl.errors import BotctlError, UsageError
from botctl.records import Fill, NavSnapshot, Order

WHAT = ("trades", "fills", "orders", "nav")
FORMATS = {".parquet": "parquet", ".csv": "csv"}
# A trade is a fill with the order it belongs to: why it was placed and the price it was sized at.
TRADE_ORDER_COLUMNS = ("reason", "ref_price")


def _arrow_type(tp):
    import pyarrow as pa

    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if tp is datetime:
        return pa.timestamp("us", tz="UTC")
    return {float: pa.float64(), int: pa.int64(), bool: pa.bool_()}.get(tp, pa.string())


def _schema(cls, extra: dict | None = None):
    import pyarrow as pa

    hints = typing.get_type_hints(cls)
    fields = [pa.field(f.name, _arrow_type(hints[f.name])) for f in msgspec.structs.fields(cls)]
    return pa.schema(fields + [pa.field(name, tp) for name, tp in (extra or {}).items()])


def _rows(records) -> list[dict]:
    rows = []
    for record in records:
        row = msgspec.structs.asdict(record)
        for key, value in row.items():
            if isinstance(value, (dict, list)):
                row[key] = msgspec.json.encode(value).decode()
        rows.append(row)
    return rows


def export_table(store, run_id: str, what: str, account: str | None):
    """The run's rows of `what` as a pyarrow Table, oldest first."""
    import pyarrow as pa

    if what == "nav":
        marks = [mark for _, mark in store.rows_after("nav", 0, None, run_id=run_id, account=account)]
        return pa.Table.from_pylist(_rows(marks), schema=_schema(NavSnapshot))
    if what == "orders":
        return pa.Table.from_pylist(_rows(store.orders(account, run_id=run_id)), schema=_schema(Order))
    fills = store.fills(account, run_id=run_id)
    if what == "fills":
        return pa.Table.from_pylist(_rows(fills), schema=_schema(Fill))
    orders = {o.client_order_id: o for o in store.orders(account, run_id=run_id)}
    rows = _rows(fills)
    for row, fill in zip(rows, fills):
        order = orders.get(fill.client_order_id)
        row["notional"] = fill.qty * fill.price
        for column in TRADE_ORDER_COLUMNS:
            row[column] = getattr(order, column) if order else None
    return pa.Table.from_pylist(rows, schema=_schema(Fill, {"notional": pa.float64(), "reason": pa.string(),
                                                            "ref_price": pa.float64()}))


def write_table(table, out: Path, fmt: str) -> None:
    """Write to a temporary file beside `out`, then rename: a failed export leaves no half file."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if fmt == "parquet":
            pq.write_table(table, tmp, compression="zstd")
        else:
            pacsv.write_csv(table, tmp)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BotctlError(f"cannot write {out}: {exc.strerror or exc}") from None


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        ctx: typer.Context,
        run: str = typer.Option(..., "--run", help="The run to export (ids from `botctl runs`)."),
        out: Path = typer.Option(..., "--out", help="The file to write (.parquet or .csv)."),
        what: str = typer.Option("trades", "--what", help="trades (fills with their order's reason and "
                                 "reference price), fills, orders or nav (the NAV marks)."),
        fmt: str = typer.Option(None, "--format", help="parquet or csv.", show_default="from the --out suffix"),
        account: str = typer.Option(None, "--account", help="Only this account's rows."),
        force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    ) -> None:
        """Write one run's trades, fills, orders or NAV marks to a parquet or CSV file.

        Prices are the journal's: `price` is the fill price used for returns (total-return
        adjusted in backtests and replays), `as_traded_price` what the exchange printed.
        Timestamps are UTC. Prints the file and the number of rows written."""
        from botctl.cli.runs_cmd import require_run
        from botctl.store import Store

        if what not in WHAT:
            raise UsageError(f"--what must be one of {', '.join(WHAT)}, got {what!r}")
        if fmt is None:
            fmt = FORMATS.get(out.suffix.lower())
            if fmt is None:
                raise UsageError(f"--format is needed (parquet or csv): {out.name!r} ends in neither .parquet nor .csv")
        if fmt not in FORMATS.values():
            raise UsageError(f"--format must be parquet or csv, got {fmt!r}")
        if out.is_dir():
            raise UsageError(f"--out {out} is a folder; name the file to write")
        if out.exists() and not force:
            raise UsageError(f"{out} exists; pass --force to replace it")
        if not out.parent.is_dir():
            raise UsageError(f"--out: folder {out.parent} does not exist")
        g = globals_of(ctx)
        with Store.open(g.db, create=False, readonly=True) as store:
            run_id = require_run(store, run).run_id
            table = export_table(store, run_id, what, account)
        write_table(table, out, fmt)
        typer.echo(f"wrote {table.num_rows} {what} row(s) of run {run_id} to {out} ({fmt})")
