"""One worker of a batch inference job: ``python -m aicloud.inference.runner``.

The launcher writes ``inference/config.json`` in the run directory and starts one runner per
worker with ``--rank`` and ``--world-size``. Each runner plans the same shards, scores its
own (skipping those done by an earlier attempt), reports progress through
:func:`aicloud.runtime.report`, and the last one to finish merges the shards, in order, into
``predictions.npy``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from aicloud import runtime
from aicloud.inference.data import DataError, read_rows
from aicloud.inference.loading import NUMPY_TYPES, ModelLoadError, load_model
from aicloud.inference.options import InferenceOptions
from aicloud.inference.sharding import (
    Shard,
    plan_shards,
    record_plan,
    shard_output,
    shards_for,
    write_atomically,
)

PREDICTIONS = "predictions.npy"


def score(predict, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """Predictions for ``rows``, ``batch_size`` rows per model call."""
    parts = [predict(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
    return np.concatenate(parts) if parts else np.empty((0,))


def merge(work_dir: Path, shards: list[Shard], output: Path) -> bool:
    """Concatenate every shard's predictions into ``output`` once all are done.

    Runs under a lock so that exactly one worker merges; returns whether this call did.
    """
    with open(work_dir / "merge.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if output.exists() or not all(shard_output(work_dir, s).exists() for s in shards):
            return False
        parts = [np.load(shard_output(work_dir, s)) for s in shards]
        merged = np.concatenate(parts)
        write_atomically(output, lambda f: np.save(f, merged))
        return True


def run(config: dict, rank: int, world_size: int) -> int:
    """Score this worker's shards; return the exit code."""
    options = InferenceOptions.model_validate(config["options"])
    cwd, work_dir = Path(config["cwd"]), Path(config["work_dir"])
    output = Path(config["output"])
    files = config["files"]
    dtype = NUMPY_TYPES[options.datatype]
    shards = plan_shards(files, cwd, options.shard_rows)
    if rank == 0:
        record_plan(work_dir, shards)
    mine = shards_for(shards, rank, world_size)
    todo = [s for s in mine if not shard_output(work_dir, s).exists()]
    print(
        f"{len(shards)} shards in {len(files)} files; {len(mine)} for this worker,"
        f" {len(mine) - len(todo)} already done",
        flush=True,
    )
    model = load_model(options, cwd) if todo else None
    for shard in todo:
        began = time.perf_counter()
        rows = read_rows(cwd / shard.path, shard.start, shard.stop, dtype)
        predictions = score(model.predict, rows, options.batch_size)
        if len(predictions) != shard.rows:
            raise DataError(
                f"{shard.path}: the model returned {len(predictions)} rows for {shard.rows}"
            )
        write_atomically(shard_output(work_dir, shard), lambda f, p=predictions: np.save(f, p))
        done = sum(shard_output(work_dir, s).exists() for s in shards)
        runtime.report(step=done, total=len(shards), all_ranks=True, rows=shard.rows)
        print(
            f"shard {shard.index} ({shard.path} rows {shard.start}-{shard.stop}) done in"
            f" {time.perf_counter() - began:.3f} s",
            flush=True,
        )
    if merge(work_dir, shards, output):
        print(f"merged {len(shards)} shards into {output}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of one batch worker."""
    parser = argparse.ArgumentParser(description="One worker of an aicloud batch inference job.")
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--world-size", type=int, default=1)
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text())
    try:
        return run(config, args.rank, args.world_size)
    except (DataError, ModelLoadError) as e:
        return fail(str(e))


def fail(message: str) -> int:
    """Print ``message`` and record it as the attempt's reason (the manager shows it)."""
    print(f"aicloud: {message}", file=sys.stderr, flush=True)
    directory = runtime.run_dir()
    if directory is not None:
        attempt = os.environ.get("AICLOUD_ATTEMPT", "1")
        (directory / f"attempt-{attempt}.reason").write_text(message)
    return 1


if __name__ == "__main__":
    sys.exit(main())
