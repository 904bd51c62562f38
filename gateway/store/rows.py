"""Rows checked against their columns when the store refuses a batch: clamped, or set aside.

One value the store cannot take (`usage.prompt_tokens` of 2^31 in an INTEGER column) used to
fail every batch for good. When a batch is refused, its segments are checked row by row:
a value that does not fit its column is stored as NULL and the row says so in `notes` (where
the table has that column); a row that cannot be stored at all (not a JSON object, no id, a
required column unusable) is moved to `<spool>/rejected/` with the reason, as is any row the
store still refuses on its own.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import duckdb
import orjson

from gateway.store.schema import migrate

INT_RANGES = {
    "TINYINT": (-(2**7), 2**7 - 1),
    "SMALLINT": (-(2**15), 2**15 - 1),
    "INTEGER": (-(2**31), 2**31 - 1),
    "BIGINT": (-(2**63), 2**63 - 1),
    "UTINYINT": (0, 2**8 - 1),
    "USMALLINT": (0, 2**16 - 1),
    "UINTEGER": (0, 2**32 - 1),
    "UBIGINT": (0, 2**64 - 1),
}
EPOCH_RANGE = (-62_135_596_800.0, 253_402_300_799.0)  # 0001-01-01 .. 9999-12-31, in seconds
# What DuckDB raises for a value or row it will not take (not for a locked or full store).
DATA_ERRORS: tuple[type[Exception], ...] = (
    duckdb.InvalidInputException,
    duckdb.ConversionException,
    duckdb.ConstraintException,
    duckdb.TypeMismatchException,
    duckdb.OutOfRangeException,
)
BOOLEANS = {"true", "false", "t", "f", "yes", "no"}  # the strings DuckDB reads as booleans
NOTE_CHARS = 80  # of an odd value, quoted in the row's note


def required_columns() -> dict[str, set[str]]:
    """Per table, the columns that may not be NULL (read off the migrations)."""
    conn = duckdb.connect()
    migrate(conn)
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE is_nullable = 'NO'"
    ).fetchall()
    conn.close()
    required: dict[str, set[str]] = {}
    for table, column in rows:
        required.setdefault(table, set()).add(column)
    return required


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def fits(value: Any, dtype: str) -> bool:
    """Whether the store takes `value` (as JSON decoded it) in a column of type `dtype`."""
    if value is None or dtype in ("VARCHAR", "JSON"):
        return True
    if dtype in INT_RANGES:
        low, high = INT_RANGES[dtype]
        if isinstance(value, bool):
            return True  # DuckDB reads true/false as 1/0
        if isinstance(value, int):
            return low <= value <= high
        if isinstance(value, float):  # DuckDB truncates 2.5 to 2
            return math.isfinite(value) and low <= value <= high
        if isinstance(value, str):  # "12" is read as 12, "1e5" is refused
            try:
                return low <= int(value.strip()) <= high
            except ValueError:
                return False
        return False
    if dtype in ("DOUBLE", "FLOAT", "REAL"):
        number = _number(value)
        return number is not None and math.isfinite(number)
    if dtype.startswith("TIMESTAMP"):
        number = _number(value)
        return number is not None and EPOCH_RANGE[0] <= number <= EPOCH_RANGE[1]
    if dtype == "BOOLEAN":
        if isinstance(value, str):
            return value.lower() in BOOLEANS
        return isinstance(value, bool | int)
    return True  # a type this check does not know: the store decides


def repair(
    record: dict[str, Any], columns: dict[str, str], required: set[str]
) -> tuple[dict[str, Any] | None, list[str]]:
    """(the record to store, what was changed); None and the reasons when it cannot be stored."""
    notes: list[str] = []
    fixed = dict(record)
    for column, dtype in columns.items():
        value = record.get(column)
        if fits(value, dtype):
            continue
        shown = orjson.dumps(value, default=str).decode()[:NOTE_CHARS]
        notes.append(f"{column}: {shown} does not fit {dtype}; stored NULL")
        fixed[column] = None
    missing = [c for c in sorted(required) if fixed.get(c) is None]
    if missing:
        return None, [*notes, f"required column(s) {', '.join(missing)} missing or unusable"]
    if notes and "notes" in columns:
        earlier = fixed.get("notes")
        fixed["notes"] = [*(earlier if isinstance(earlier, list) else []), *notes]
    return fixed, notes


def set_aside(rejected_dir: Path, name: str, entries: list[tuple[bytes, str]]) -> None:
    """Append rows with their reasons to rejected/<name> (JSON lines: reason, line)."""
    if not entries:
        return
    rejected_dir.mkdir(parents=True, exist_ok=True)
    with (rejected_dir / name).open("ab") as f:
        for line, reason in entries:
            text = line.decode("utf-8", errors="replace").rstrip("\n")
            f.write(orjson.dumps({"reason": reason, "line": text}) + b"\n")


def repair_segment(
    path: Path, table: str, columns: dict[str, str], required: set[str], rejected_dir: Path
) -> tuple[int, int]:
    """Rewrite one spool segment with every row checked; (rows clamped, rows set aside)."""
    kept: list[bytes] = []
    aside: list[tuple[bytes, str]] = []
    clamped = 0
    for line in path.read_bytes().splitlines(keepends=True):
        reason = None
        try:
            record = orjson.loads(line) if line.endswith(b"\n") else None
        except orjson.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            reason = "torn line" if not line.endswith(b"\n") else f"not a JSON object ({table})"
            aside.append((line, reason))
            continue
        fixed, notes = repair(record, columns, required)
        if fixed is None:
            aside.append((line, "; ".join(notes)))
        elif notes:
            clamped += 1
            kept.append(orjson.dumps(fixed) + b"\n")
        else:
            kept.append(line)
    if clamped or aside:
        set_aside(rejected_dir, path.name, aside)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, path)
    return clamped, len(aside)
