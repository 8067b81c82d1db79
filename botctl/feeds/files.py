"""Reading recorded signal files: CSV, JSONL or parquet, one file or a folder of them.

Columns (or JSON keys): id, ts_event, symbol, kind, score, and optionally direction,
expires_at. Every row is checked (botctl.feeds.checks); a bad row is a Rejection naming
FILE:LINE, never a crash and never a skipped file. A `FileTail` remembers how far each file
was read so a watching run picks up appended rows only; a restart reads everything again and
the journal's uniqueness on (source, id) keeps each signal once.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from botctl.errors import DataError

SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet")
MAX_LINE = 1 << 16  # a row longer than this is refused (a file is not a place for a novel)


@dataclass(frozen=True)
class Row:
    """One row as read: its values, the bytes its payload hash is taken over, where it is."""

    values: dict[str, Any] | None  # None: not a row at all (malformed JSON, an overlong line)
    raw: bytes
    where: str  # FILE:LINE
    problem: str = ""


def files_of(path: Path) -> list[Path]:
    """The signal files at `path`: the file itself, or the folder's files with a known suffix
    (sorted by name, so a folder of daily files reads in order)."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    if not path.exists():
        raise DataError(f"signal file {path} does not exist")
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"signal file {path}: expected a .csv, .jsonl or .parquet file")
    return [path]


def _csv_rows(path: Path, text: str, header: list[str] | None, first_line: int) -> Iterator[Row]:
    """Rows of CSV text, one per line (a signal file has no quoted newlines; a line csv
    cannot parse is one refused row, not a failed file)."""
    for offset, raw in enumerate(text.splitlines()):
        where = f"{path.name}:{first_line + offset}"
        if len(raw) > MAX_LINE:
            yield Row(None, b"", where, "line too long")
            continue
        try:
            cells = next(csv.reader([raw]), [])
        except csv.Error as exc:
            yield Row(None, raw.encode(), where, f"not a CSV row ({exc})")
            continue
        if header is None:
            header = [c.strip() for c in cells]
            continue
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            yield Row(None, raw.encode(), where, f"{len(cells)} values for {len(header)} columns")
            continue
        yield Row({k: (v.strip() or None) for k, v in zip(header, cells)}, raw.encode(), where)


def _jsonl_rows(path: Path, text: str, first_line: int) -> Iterator[Row]:
    for offset, line in enumerate(text.splitlines()):
        where = f"{path.name}:{first_line + offset}"
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            yield Row(None, b"", where, "line too long")
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            yield Row(None, line.encode(), where, "not a JSON object")
            continue
        if not isinstance(value, dict):
            yield Row(None, line.encode(), where, "not a JSON object")
            continue
        yield Row(value, line.encode(), where)


def _parquet_rows(path: Path) -> Iterator[Row]:
    import polars as pl

    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - polars raises many kinds for a damaged file
        raise DataError(f"signal file {path}: unreadable parquet ({type(exc).__name__})") from None
    for i, values in enumerate(frame.iter_rows(named=True)):
        raw = msgspec.json.encode(values, enc_hook=str)
        yield Row(values, raw, f"{path.name}:row {i + 1}")


def read_rows(path: Path) -> Iterator[Row]:
    """Every row of every signal file at `path`."""
    for file in files_of(path):
        if file.suffix.lower() == ".parquet":
            yield from _parquet_rows(file)
            continue
        text = file.read_bytes().decode("utf-8", errors="replace")
        if file.suffix.lower() == ".csv":
            yield from _csv_rows(file, text, None, 1)
        else:
            yield from _jsonl_rows(file, text, 1)


@dataclass
class _Seen:
    offset: int = 0  # bytes of complete lines read
    line: int = 1  # the next line's number
    header: list[str] | None = None
    stamp: tuple[int, int] = (0, 0)  # parquet: (size, mtime_ns) when last read


@dataclass
class FileTail:
    """What a watching run has read of the files at `path`: each poll() yields new rows."""

    path: Path
    seen: dict[Path, _Seen] = field(default_factory=dict)

    def poll(self) -> Iterator[Row]:
        for file in files_of(self.path):
            state = self.seen.setdefault(file, _Seen())
            try:
                info = os.stat(file)
            except OSError:
                continue
            if file.suffix.lower() == ".parquet":
                stamp = (info.st_size, info.st_mtime_ns)
                if stamp != state.stamp:
                    state.stamp = stamp
                    yield from _parquet_rows(file)  # the journal drops what it already has
                continue
            if info.st_size < state.offset:  # truncated or replaced: read it again from the start
                self.seen[file] = state = _Seen()
            if info.st_size == state.offset:
                continue
            with open(file, "rb") as fh:
                fh.seek(state.offset)
                chunk = fh.read(info.st_size - state.offset)
            end = chunk.rfind(b"\n") + 1  # a line still being written waits for its newline
            if end == 0:
                if len(chunk) > MAX_LINE:  # no newline in sight: skip it, say so
                    state.offset += len(chunk)
                    yield Row(None, b"", f"{file.name}:{state.line}", "line too long")
                continue
            text = chunk[:end].decode("utf-8", errors="replace")
            first = state.line
            state.offset += end
            state.line += text.count("\n")
            if file.suffix.lower() == ".csv":
                if state.header is None:
                    header_line, _, text = text.partition("\n")
                    try:
                        state.header = [c.strip() for c in next(csv.reader([header_line]), [])]
                    except csv.Error:
                        state.header = []
                    first += 1
                yield from _csv_rows(file, text, state.header, first)
            else:
                yield from _jsonl_rows(file, text, first)
