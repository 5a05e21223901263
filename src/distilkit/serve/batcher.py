"""Micro-batching: texts of concurrent requests share one forward pass.

A forward pass over 16 short texts costs far less than 16 passes over one, so one worker task takes the
first waiting text, waits up to `max_wait_ms` for others (at most `max_batch` in all), runs the model in a
thread (the event loop keeps accepting and answering requests meanwhile) and resolves each text's future.
While a batch runs, new texts queue up and form the next batch: under load batches grow on their own.
`max_batch=1` is the unbatched baseline. The queue is bounded, so overload is refused at once (503) instead
of growing latency without limit.

The wait is only for requests the server has already received (`Arrivals`: read, not yet queued): a lone
request is not held back for company that is not coming, so light load keeps unbatched latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


class Arrivals:
    """Requests received whose texts are not queued yet, marked in their ASGI scope so each counts once."""

    KEY = "distilkit.arriving"

    def __init__(self):
        self.count = 0

    def received(self, scope: dict) -> None:
        scope[self.KEY] = True
        self.count += 1

    def done(self, scope: dict) -> None:
        """The request's texts are queued, or it ended without queueing any (refused, failed, disconnected)."""
        if scope.pop(self.KEY, False):
            self.count -= 1


class QueueFull(Exception):
    """The queue cannot take the request's texts now: answer 503 with Retry-After."""


class ShuttingDown(Exception):
    """The server is stopping: it finishes queued texts but takes no new ones."""


@dataclass
class _Item:
    row: dict
    future: asyncio.Future


class MicroBatcher:
    """One asyncio worker turning queued texts into batches for `predict(rows) -> results` (blocking)."""

    def __init__(self, predict: Callable[[list[dict]], list[dict]], max_batch: int = 32, max_wait_ms: float = 5.0,
                 max_queue: int = 512, on_batch: Callable[[int], None] | None = None,
                 arriving: Callable[[], int] | None = None):
        """`arriving()` counts requests on their way to the queue (default: always assume some are)."""
        self.predict = predict
        self.arriving = arriving or (lambda: 1)
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait_ms) / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch or (lambda size: None)
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.busy = False  # a batch is running in the thread
        self.closing = False
        self.worker: asyncio.Task | None = None

    @property
    def depth(self) -> int:
        """Texts waiting for a batch (not counting the batch running now)."""
        return self.queue.qsize()

    def start(self) -> None:
        self.worker = asyncio.create_task(self._run(), name="distilkit-batcher")

    async def submit(self, rows: list[dict]) -> list[dict]:
        """Queue the rows and wait for their results (in order); raises QueueFull or ShuttingDown at once."""
        if self.closing:
            raise ShuttingDown()
        if self.depth + len(rows) > self.max_queue:
            raise QueueFull(f"{self.depth} texts are waiting and this request adds {len(rows)}; the queue holds "
                            f"{self.max_queue}")
        loop = asyncio.get_running_loop()
        items = [_Item(row, loop.create_future()) for row in rows]
        for item in items:
            self.queue.put_nowait(item)
        return list(await asyncio.gather(*(item.future for item in items)))

    async def stop(self) -> None:
        """Finish every queued text (so in-flight requests get answers), then end the worker."""
        self.closing = True
        while self.worker and not self.worker.done() and (self.depth or self.busy):
            await asyncio.sleep(0.01)
        if self.worker:
            self.worker.cancel()
            await asyncio.gather(self.worker, return_exceptions=True)

    async def _collect(self) -> list[_Item]:
        """The next batch: the first waiting text, then others until max_batch, or until its wait runs out or no
        request is on its way."""
        batch = [await self.queue.get()]
        deadline = time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch:
            if not self.queue.empty():
                batch.append(self.queue.get_nowait())
                continue
            left = deadline - time.perf_counter()
            if left <= 0 or self.closing or self.arriving() <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), left))
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            batch = [item for item in batch if not item.future.done()]  # a client may have gone away
            if not batch:
                continue
            self.busy = True
            try:
                self.on_batch(len(batch))
                results = await asyncio.to_thread(self.predict, [item.row for item in batch])
            except Exception as err:  # noqa: BLE001 - every waiting request must hear about the failure
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(err)
            else:
                for item, result in zip(batch, results):
                    if not item.future.done():
                        item.future.set_result(result)
            finally:
                self.busy = False
