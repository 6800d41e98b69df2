"""Dynamic batching: requests that arrive together run through the model as one batch.

The batch adapts to the traffic. Under load it takes every request queued (up to
``max_batch_size`` rows), which piled up while the last batch ran, and waits for nobody.
When the queue runs dry before the batch is full, it waits (at most ``max_wait`` seconds) only
if the traffic is concurrent, that is when the last batch held several requests, and only
until the batch holds as many rows as that one did. A lone client therefore never waits:
its requests run at once. ``max_batch_size`` 1 turns batching off: each request is its own
model call, with no queue in between.

The model runs on the event loop itself (no hand-off to a thread per call: for small models
the thread switch and the GIL traffic cost more than the model), or with ``model_thread``
in one thread of its own, one batch at a time, so that the loop keeps answering during long
model calls. At most ``max_queue`` requests wait for the model; more raise
:class:`QueueFull`, which the server answers with 503 and ``Retry-After``. If a batch fails,
each of its requests runs again alone, so one bad request never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from aicloud.inference.stats import ModelStatistics


class QueueFull(RuntimeError):
    """``max_queue`` requests already wait for the model."""


class BatchObserver(Protocol):
    """What the batcher reports as it goes (the Prometheus metrics)."""

    def batch(self, rows: int) -> None: ...

    def queue_depth(self, depth: int) -> None: ...


@dataclass
class _Pending:
    array: np.ndarray
    queued_ns: int = field(default_factory=time.perf_counter_ns)
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
        *,
        max_queue: int = 1024,
        model_thread: bool = False,
        stats: ModelStatistics | None = None,
        observer: BatchObserver | None = None,
    ):
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_seconds
        self.max_queue = max_queue
        self.stats = stats or ModelStatistics()
        self.observer = observer
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="model") if model_thread else None
        )
        self._queue: deque[_Pending] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._running = 0  # requests in a model call (the thread's) when batching is off
        self._last_requests, self._last_rows = 1, 1  # the last batch's size

    @property
    def depth(self) -> int:
        """Requests waiting for the model."""
        return len(self._queue) + self._running

    async def submit(self, array: np.ndarray) -> np.ndarray:
        """The model's output for ``array`` (a batch of rows); raises what the model raised,
        or :class:`QueueFull`."""
        if self.depth >= self.max_queue:
            raise QueueFull(f"{self.depth} requests are waiting for the model")
        if self.max_batch_size <= 1:
            queued = time.perf_counter_ns()
            self._running += 1
            try:
                return await self._call(array, queued)
            finally:
                self._running -= 1
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._loop())
        pending = _Pending(array)
        self._queue.append(pending)
        self._wake.set()
        if self.observer is not None:
            self.observer.queue_depth(self.depth)
        return await pending.future

    async def _call(self, array: np.ndarray, *queued_ns: int) -> np.ndarray:
        began = time.perf_counter_ns()
        for queued in queued_ns:
            self.stats.phases["queue"].add(began - queued)
        if self.observer is not None:
            self.observer.batch(len(array))
        if self._executor is None:
            output = self.predict(array)
        else:
            loop = asyncio.get_running_loop()
            output = await loop.run_in_executor(self._executor, self.predict, array)
        self.stats.executed(len(array), time.perf_counter_ns() - began)
        return output

    def _take(self, batch: list[_Pending], rows: int, limit: int) -> int:
        """Move queued requests into ``batch`` while they fit ``limit`` rows; the new rows."""
        while self._queue and rows + len(self._queue[0].array) <= limit:
            pending = self._queue.popleft()
            batch.append(pending)
            rows += len(pending.array)
        return rows

    async def _collect(self) -> list[_Pending]:
        assert self._wake is not None
        while not self._queue:
            self._wake.clear()
            await self._wake.wait()
        first = self._queue.popleft()
        batch, rows = [first], len(first.array)
        rows = self._take(batch, rows, self.max_batch_size)
        await asyncio.sleep(0)  # requests the loop has already read join this batch
        rows = self._take(batch, rows, self.max_batch_size)
        target = min(self.max_batch_size, self._last_rows) if self._last_requests > 1 else 0
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while rows < target and not self._queue:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                break
            rows = self._take(batch, rows, self.max_batch_size)
        self._last_requests, self._last_rows = len(batch), rows
        if self.observer is not None:
            self.observer.queue_depth(self.depth)
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
            output = await self._call(
                np.concatenate([p.array for p in batch]), *(p.queued_ns for p in batch)
            )
            if len(output) != rows:
                raise ValueError(f"the model returned {len(output)} rows for {rows}")
        except Exception:
            for pending in batch:  # find the request that broke it
                await self._run_alone(pending, queued=False)
            return
        offset = 0
        for pending in batch:
            if not pending.future.done():
                pending.future.set_result(output[offset : offset + len(pending.array)])
            offset += len(pending.array)

    async def _run_alone(self, pending: _Pending, queued: bool = True) -> None:
        try:
            result = await self._call(pending.array, *([pending.queued_ns] if queued else []))
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
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
