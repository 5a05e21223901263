"""Micro-batching: texts of concurrent requests share one forward pass.

A forward pass over 16 short texts costs far less than 16 passes over one, so one worker task takes the
first waiting text, waits up to `max_wait_ms` for others (at most `max_batch` in all), runs the model in a
thread (the event loop keeps accepting and answering requests meanwhile) and resolves each text's future.
While a batch runs, new texts queue up and form the next batch: under load batches grow on their own.
`max_batch=1` is the unbatched baseline. The queue is bounded, so overload is refused at once (503) instead
of growing latency without limit.

The wait is only for requests the server has already received (`Arrivals`: read, not yet queued): a lone
request is not held back for company that is not coming, so light load keeps unbatched latency.

A batch mixes requests, so a text the model cannot take (the server checks what it can before queueing, but
cannot foresee everything) would fail all of them. When a forward pass over several requests fails, each
request is run again alone: only the ones that fail alone get the error, the others their results.
"""

from __future__ import annotations

import asyncio
import itertools
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
    request: int  # which submit() queued it: a failed batch is retried request by request


class MicroBatcher:
    """One asyncio worker turning queued texts into batches for `predict(rows) -> results` (blocking)."""

    def __init__(
        self,
        predict: Callable[[list[dict]], list[dict]],
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 512,
        on_batch: Callable[[int], None] | None = None,
        arriving: Callable[[], int] | None = None,
        on_retry: Callable[[int], None] | None = None,
    ):
        """`arriving()` counts requests on their way to the queue (default: always assume some are);
        `on_retry(n)` is told when a batch of n requests failed and each is run again alone."""
        self.predict = predict
        self.arriving = arriving or (lambda: 1)
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait_ms) / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch or (lambda size: None)
        self.on_retry = on_retry or (lambda requests: None)
        self.requests = itertools.count()
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
            raise QueueFull(
                f"{self.depth} texts are waiting and this request adds {len(rows)}; the queue holds {self.max_queue}"
            )
        loop = asyncio.get_running_loop()
        request = next(self.requests)
        items = [_Item(row, loop.create_future(), request) for row in rows]
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
                await self._answer(batch)
            except Exception as err:  # noqa: BLE001 - a failure outside the model call must not end the worker
                _fail(batch, err)
            finally:
                self.busy = False

    async def _answer(self, batch: list[_Item]) -> None:
        """Resolve the batch's futures; if its forward pass fails, run each of its requests alone, so that only
        the requests that fail on their own get an error."""
        error = await self._forward(batch)
        if error is None:
            return
        by_request: dict[int, list[_Item]] = {}
        for item in batch:
            if not item.future.done():  # requests whose client left meanwhile are not retried
                by_request.setdefault(item.request, []).append(item)
        if len(by_request) <= 1:  # alone already: running it again would fail again
            _fail(batch, error)
            return
        self.on_retry(len(by_request))
        for items in by_request.values():  # one after another, in the worker thread as any batch
            error = await self._forward(items)
            if error is not None:
                _fail(items, error)

    async def _forward(self, items: list[_Item]) -> Exception | None:
        """One forward pass over the items still awaited; sets their results, or returns the error unset."""
        items = [item for item in items if not item.future.done()]
        if not items:
            return None
        try:
            results = await asyncio.to_thread(self.predict, [item.row for item in items])
        except Exception as err:  # noqa: BLE001 - every waiting request must hear about the failure
            return err
        for item, result in zip(items, results):
            if not item.future.done():
                item.future.set_result(result)
        return None


def _fail(items: list[_Item], error: Exception) -> None:
    for item in items:
        if not item.future.done():
            item.future.set_exception(error)
