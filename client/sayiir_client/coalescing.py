"""Concurrent calls of one kind, run as batches: while batches are in flight, the next one gathers.

There is no tick and no delay: a call that finds a batch slot free goes at once, so a lone caller waits no
longer than it would alone; under load each batch takes what queued while the others were in flight, so
many callers share one round trip and one commit. A caller is answered only once its own batch is done
(committed, for a write). A failed batch fails all its callers, except for the errors named `isolate`
(those that prove nothing was written and may come from one item): then each item is run again alone, so
one caller's bad item fails that caller only.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

_I = TypeVar("_I")
_R = TypeVar("_R")

RunBatch = Callable[[Sequence[_I]], Awaitable[Sequence[_R]]]
"""Runs items together; one result per item, in their order."""


class Coalescer(Generic[_I, _R]):
    """Batches concurrent `submit`s for `run_batch`: at most `max_batch` items, at most `max_in_flight` batches.

    Items with the same `key` never share a batch (a later one waits for the next), so a batch touches each
    key once. With `size`, a batch also stays within `max_size` in all (an item larger than that goes alone)."""

    def __init__(
        self,
        run_batch: RunBatch[_I, _R],
        *,
        key: Callable[[_I], Hashable],
        max_batch: int,
        max_in_flight: int,
        size: Callable[[_I], int] = lambda item: 0,
        max_size: int | None = None,
        isolate: tuple[type[Exception], ...] = (),
    ) -> None:
        self._run_batch = run_batch
        self._key = key
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._size = size
        self._max_size = max_size
        self._isolate = isolate
        self._queue: deque[tuple[_I, asyncio.Future[_R]]] = deque()
        self._in_flight: set[asyncio.Task[None]] = set()

    async def submit(self, item: _I) -> _R:
        """Run `item` in the next batch that has room; its result, or the exception its run raised."""
        future: asyncio.Future[_R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._start_batches()
        return await future

    async def close(self) -> None:
        """Wait for the batches in flight (and those they start) to finish."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _start_batches(self) -> None:
        while self._queue and len(self._in_flight) < self._max_in_flight:
            batch = self._take_batch()
            if not batch:
                return
            running = asyncio.ensure_future(self._run(batch))
            self._in_flight.add(running)
            running.add_done_callback(self._batch_done)

    def _take_batch(self) -> list[tuple[_I, asyncio.Future[_R]]]:
        """The first queued items with distinct keys, up to max_batch; callers that gave up are dropped."""
        batch: list[tuple[_I, asyncio.Future[_R]]] = []
        keys: set[Hashable] = set()
        total = 0
        left: deque[tuple[_I, asyncio.Future[_R]]] = deque()
        while self._queue:
            item, future = self._queue.popleft()
            if future.done():  # cancelled while queued: never run
                continue
            if len(batch) == self._max_batch:
                left.append((item, future))
                continue
            key, size = self._key(item), self._size(item)
            if key in keys or (self._max_size is not None and batch and total + size > self._max_size):
                left.append((item, future))
                continue
            keys.add(key)
            total += size
            batch.append((item, future))
        self._queue = left
        return batch

    def _batch_done(self, running: asyncio.Task[None]) -> None:
        self._in_flight.discard(running)
        self._start_batches()

    async def _run(self, batch: list[tuple[_I, asyncio.Future[_R]]]) -> None:
        try:
            try:
                results = list(await self._run_batch([item for item, _ in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"a batch of {len(batch)} items answered {len(results)} results")
            except Exception as error:
                if len(batch) > 1 and isinstance(error, self._isolate):
                    for item, future in batch:  # find the failing item: each alone, in the same order
                        await self._run_alone(item, future)
                else:
                    for _, future in batch:
                        _fail(future, error)
                return
            for (_, future), result in zip(batch, results, strict=True):
                _answer(future, result)
        except BaseException:  # cancelled with the server: nobody will answer these callers
            for _, future in batch:
                future.cancel()
            raise

    async def _run_alone(self, item: _I, future: asyncio.Future[_R]) -> None:
        try:
            (result,) = await self._run_batch([item])
        except Exception as error:
            _fail(future, error)
        else:
            _answer(future, result)


def _answer(future: asyncio.Future[_R], result: _R) -> None:
    if not future.done():  # else the caller gave up while its batch ran
        future.set_result(result)


def _fail(future: asyncio.Future[_R], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
