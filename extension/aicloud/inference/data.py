"""Read rows of numeric data from .npy, .parquet, .csv and .jsonl files.

Every reader answers two questions: how many rows a file has (cheaply), and rows
``start:stop`` as a numpy array of the model's dtype.

- ``.npy``: any shape; a row is ``array[i]`` (memory-mapped, so shards read only their rows).
- ``.parquet``: numeric columns side by side, or one column of fixed-length lists.
- ``.csv``: numeric columns; a first line with any non-number is a header and skipped.
- ``.jsonl``: one row per non-blank line: a number, a list (nested for N-d rows), or an
  object whose values (in order) are numbers or lists.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

SUFFIXES = (".npy", ".parquet", ".csv", ".jsonl")


class DataError(ValueError):
    """A data file that cannot be read as rows; the message names the file."""


def check_suffix(path: Path) -> None:
    """Refuse a file type with no reader."""
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"{path.name}: unsupported file type; use one of {', '.join(SUFFIXES)}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_lines(path: Path) -> tuple[list[list[str]], bool]:
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    header = bool(rows) and not all(_is_number(cell) for cell in rows[0])
    return rows, header


def _jsonl_lines(path: Path) -> list[str]:
    with open(path) as f:
        return [line for line in f if line.strip()]


def count_rows(path: Path) -> int:
    """How many rows ``path`` holds."""
    check_suffix(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return int(np.load(path, mmap_mode="r").shape[0])
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if suffix == ".csv":
            rows, header = _csv_lines(path)
            return len(rows) - int(header)
        return len(_jsonl_lines(path))
    except (OSError, ValueError, IndexError) as e:
        raise DataError(f"{path.name}: cannot read: {e}") from None


def _jsonl_row(value):
    if isinstance(value, dict):
        values = list(value.values())
        return values[0] if len(values) == 1 and isinstance(values[0], list) else values
    return value


def _parquet_rows(path: Path, start: int, stop: int) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path).slice(start, stop - start)
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
            columns.append(np.asarray(column.to_pylist()))
        elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            columns.append(column.to_numpy()[:, None])
        elif pa.types.is_boolean(column.type):
            columns.append(column.to_numpy(zero_copy_only=False)[:, None])
        else:
            raise DataError(f"{path.name}: column {name!r} is {column.type}, not numeric")
    if len(columns) == 1:
        return columns[0]
    return np.concatenate([c.reshape(len(c), -1) for c in columns], axis=1)


def read_rows(path: Path, start: int, stop: int, dtype) -> np.ndarray:
    """Rows ``start:stop`` of ``path`` as an array of ``dtype``."""
    check_suffix(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            rows = np.asarray(np.load(path, mmap_mode="r")[start:stop])
        elif suffix == ".parquet":
            rows = _parquet_rows(path, start, stop)
        elif suffix == ".csv":
            lines, header = _csv_lines(path)
            rows = np.asarray(lines[int(header) + start : int(header) + stop], dtype=np.float64)
        else:
            lines = _jsonl_lines(path)[start:stop]
            rows = np.asarray([_jsonl_row(json.loads(line)) for line in lines])
        if rows.ndim == 1:
            rows = rows[:, None]
        return np.ascontiguousarray(rows.astype(dtype, copy=False))
    except DataError:
        raise
    except (OSError, ValueError, TypeError, json.JSONDecodeError) as e:
        raise DataError(f"{path.name}: rows {start}-{stop}: {e}") from None
