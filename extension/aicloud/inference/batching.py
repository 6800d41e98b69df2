"""Dynamic batching: requests that arrive together run through the model as one batch.

The first request waits at most ``max_wait`` seconds for others; a batch closes as soon as it
holds ``max_batch_size`` rows. The model runs in one worker thread, one batch at a time, so
the event loop keeps answering health checks and parsing requests meanwhile. If a batch
fails, each of its requests runs again alone, so one bad request never fails its neighbours.
``max_batch_size`` 1 turns batching off: each request is its own model call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np


@dataclass
class BatchStats:
    """Counts served as ``/v2/models/NAME/stats``."""

    requests: int = 0
    rows: int = 0
    model_calls: int = 0
    failures: int = 0
    largest_batch_rows: int = 0

    def model(self) -> dict[str, int]:
        """The JSON form."""
        return {
            "requests": self.requests,
            "rows": self.rows,
            "model_calls": self.model_calls,
            "failures": self.failures,
            "largest_batch_rows": self.largest_batch_rows,
        }


@dataclass
class _Pending:
    array: np.ndarray
    future: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class DynamicBatcher:
    """Queues requests and runs them through ``predict`` in batches."""

    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        max_batch_size: int,
        max_wait_seconds: float,
    ):
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_seconds
        self.stats = BatchStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, array: np.ndarray) -> np.ndarray:
        """The model's output for ``array`` (a batch of rows); raises what the model raised."""
        self.stats.requests += 1
        self.stats.rows += len(array)
        if self.max_batch_size <= 1:
            return await self._call(array)
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._loop())
        pending = _Pending(array)
        self._queue.put_nowait(pending)
        return await pending.future

    async def _call(self, array: np.ndarray) -> np.ndarray:
        self.stats.model_calls += 1
        self.stats.largest_batch_rows = max(self.stats.largest_batch_rows, len(array))
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self.predict, array)
        except Exception:
            self.stats.failures += 1
            raise

    async def _collect(self) -> list[_Pending]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        rows = len(batch[0].array)
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while rows < self.max_batch_size:
            if self._queue.empty():
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            if rows + len(item.array) > self.max_batch_size:
                self._queue.put_nowait(item)  # it starts the next batch
                break
            batch.append(item)
            rows += len(item.array)
        return batch

    async def _loop(self) -> None:
        while True:
            batch = await self._collect()
            await self._run(batch)

    async def _run(self, batch: list[_Pending]) -> None:
        if len(batch) == 1 or len({p.array.shape[1:] for p in batch}) > 1:
            for pending in batch:
                await self._run_alone(pending)
            return
        rows = sum(len(p.array) for p in batch)
        try:
            output = await self._call(np.concatenate([p.array for p in batch]))
            if len(output) != rows:
                raise ValueError(f"the model returned {len(output)} rows for {rows}")
        except Exception:
            for pending in batch:  # find the request that broke it
                await self._run_alone(pending)
            return
        offset = 0
        for pending in batch:
            if not pending.future.done():
                pending.future.set_result(output[offset : offset + len(pending.array)])
            offset += len(pending.array)

    async def _run_alone(self, pending: _Pending) -> None:
        try:
            result = await self._call(pending.array)
        except Exception as e:
            if not pending.future.done():
                pending.future.set_exception(e)
            return
        if not pending.future.done():
            pending.future.set_result(result)

    async def close(self) -> None:
        """Stop the batching loop and the model thread."""
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
