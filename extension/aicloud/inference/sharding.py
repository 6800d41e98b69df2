"""Split a batch job's rows into shards, deal them to workers, and keep what is done.

A shard is ``shard_rows`` consecutive rows of one file. Worker ``rank`` of ``world`` takes
shards ``rank, rank + world, ...``. A shard is done once its output file exists: outputs are
written to a temporary name and renamed, so a killed worker leaves no half-written shard, and
a retried job skips every shard that is done.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from aicloud.inference.data import DataError, check_suffix, count_rows


@dataclass(frozen=True)
class Shard:
    """Rows ``start:stop`` of ``path`` (relative to the job's cwd)."""

    index: int
    path: str
    start: int
    stop: int

    @property
    def rows(self) -> int:
        """How many rows the shard has."""
        return self.stop - self.start


def expand_data(patterns: list[str], cwd: Path, root: Path | None = None) -> list[str]:
    """The files that ``patterns`` name (globs expanded, sorted), relative to ``cwd``.

    Raises :class:`DataError` naming ``inference.data[i]`` for a pattern that matches nothing,
    a path that leaves ``root``, or a file type with no reader.
    """
    limit = (root or cwd).resolve()
    files: list[str] = []
    for i, pattern in enumerate(patterns):
        where = f"inference.data[{i}]"
        matches = sorted(glob.glob(pattern, root_dir=cwd, recursive=True))
        if not matches:
            raise DataError(f"{where}: {pattern!r} matches no file in {cwd}")
        for match in matches:
            resolved = (cwd / match).resolve()
            if resolved != limit and limit not in resolved.parents:
                raise DataError(f"{where}: {match!r} is outside the server's root directory")
            if not resolved.is_file():
                continue
            try:
                check_suffix(resolved)
            except DataError as e:
                raise DataError(f"{where}: {e}") from None
            if match not in files:
                files.append(match)
    if not files:
        raise DataError("inference.data: the patterns match directories only, no files")
    return files


def plan_shards(files: list[str], cwd: Path, shard_rows: int) -> list[Shard]:
    """Every shard of ``files``, in file order then row order."""
    shards: list[Shard] = []
    for name in files:
        total = count_rows(cwd / name)
        for start in range(0, total, shard_rows):
            shards.append(Shard(len(shards), name, start, min(start + shard_rows, total)))
    return shards


def shards_for(shards: list[Shard], rank: int, world_size: int) -> list[Shard]:
    """The shards that worker ``rank`` scores."""
    return shards[rank::world_size]


def shard_output(work_dir: Path, shard: Shard) -> Path:
    """Where a shard's predictions go."""
    return work_dir / "shards" / f"shard-{shard.index:06d}.npy"


def write_atomically(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def record_plan(work_dir: Path, shards: list[Shard]) -> None:
    """Keep the first attempt's plan; refuse a retry whose data has changed since."""
    path = work_dir / "plan.json"
    document = json.dumps([asdict(s) for s in shards]).encode()
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        write_atomically(path, lambda f: f.write(document))
        return
    if existing != document:
        raise DataError(
            "inference.data: the files changed since the first attempt; submit a new job"
        )
