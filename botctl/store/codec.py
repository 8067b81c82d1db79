"""Record <-> row conversion.

Rows are built positionally from `msgspec.structs.astuple` rather than per-row dicts: the
journal must take a 100k-row backtest in one executemany, and a tuple per record is the
cheapest shape sqlite3 accepts.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import msgspec

from botctl.errors import StoreError
from botctl.records import Record
from botctl.store.schema import RECORD_TYPES, TABLES

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder(dict[str, Any]).decode


def _base_type(tp: Any) -> Any:
    """`X | None` -> X, anything else unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def format_ts(value: datetime, where: str = "timestamp") -> str:
    """Fixed-width ISO-8601 UTC ('2024-01-02T15:30:00.000000Z'), so TEXT order is time order."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise StoreError(f"{where} is a naive datetime; botctl timestamps must be timezone-aware")
    return _utc_text(value)


@functools.lru_cache(maxsize=8192)
def _utc_text(value: datetime) -> str:
    """The text of an aware datetime, formatted once: a cycle's orders, fills and events share
    their timestamps, and a backtest journals tens of thousands of them at once. (Aware
    datetimes that are equal are the same instant, so they share one text.)"""
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat("T", "microseconds") + "Z"


class Codec:
    """How one record type maps onto its table."""

    def __init__(self, cls: type[Record]) -> None:
        self.cls = cls
        self.table = TABLES[cls]
        fields = msgspec.structs.fields(cls)
        self.columns: tuple[str, ...] = tuple(f.name for f in fields)
        kinds = [_base_type(f.type) for f in fields]
        self._ts = [i for i, k in enumerate(kinds) if k is datetime]
        self._json = [i for i, k in enumerate(kinds) if typing.get_origin(k) is dict or k is dict]
        self._bool = [fields[i].name for i, k in enumerate(kinds) if k is bool]
        self._json_names = [fields[i].name for i in self._json]
        cols = ", ".join(self.columns)
        marks = ", ".join("?" for _ in self.columns)
        self.insert_sql = f"INSERT INTO {self.table} ({cols}) VALUES ({marks})"

    def upsert_sql(self, key: str) -> str:
        """Insert, or update every column in place when `key` exists (keeps the row's id, so
        tail readers and foreign keys are undisturbed, unlike INSERT OR REPLACE)."""
        sets = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c != key)
        return f"{self.insert_sql} ON CONFLICT ({key}) DO UPDATE SET {sets}"

    def encode(self, record: Record) -> tuple[Any, ...]:
        return tuple(next(self.rows((record,))))

    def rows(self, records: Iterable[Record]) -> Iterator[list[Any]]:
        """The rows of `records` (all of this type), for one executemany: a backtest journals
        tens of thousands at once, and shares few timestamps among them (a rebalance's orders
        and fills, a session's marks), so each distinct one is formatted once."""
        cls, astuple, ts, js = self.cls, msgspec.structs.astuple, self._ts, self._json
        texts: dict[datetime, str] = {}
        for record in records:
            if type(record) is not cls:
                raise StoreError(f"cannot store {type(record).__name__} in table {self.table}")
            row = list(astuple(record))
            for i in ts:
                value = row[i]
                if value is not None:
                    text = texts.get(value)
                    if text is None:
                        text = texts[value] = format_ts(value, f"{cls.__name__}.{self.columns[i]}")
                    row[i] = text
            for i in js:
                row[i] = _json_encode(row[i]).decode()
            yield row

    def decode(self, row: Mapping[str, Any]) -> Record:
        data = dict(row)
        for name in self._bool:
            data[name] = bool(data[name])
        for name in self._json_names:
            data[name] = _json_decode(data[name] or "{}")
        try:
            return msgspec.convert(data, self.cls)
        except msgspec.ValidationError as e:
            raise StoreError(f"unreadable row in table {self.table}: {e}") from e


CODECS: dict[type[Record], Codec] = {cls: Codec(cls) for cls in TABLES}
BY_TABLE: dict[str, Codec] = {CODECS[cls].table: CODECS[cls] for cls in RECORD_TYPES.values()}


def codec_for(record: Record) -> Codec:
    try:
        return CODECS[type(record)]
    except KeyError:
        raise StoreError(f"{type(record).__name__} is not a journal record") from None
