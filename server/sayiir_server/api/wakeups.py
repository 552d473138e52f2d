"""In-process fan-out of task-ready hints to WaitForWakeup and WatchWakeups callers.

Every subscriber gets its own bounded queue; a slow subscriber loses its oldest
hints (counted in `dropped`), never blocks the writer. Hints are advisory:
a worker that missed one still finds the task with find_available_tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.dispatch import tags_fit

DEFAULT_QUEUE_SIZE = 1024


class WakeupSubscription:
    """One subscriber's queue of hints, filtered by the worker's tags."""

    def __init__(self, hub: WakeupHub, worker_tags: Sequence[str], queue_size: int) -> None:
        self._hub = hub
        self.worker_tags = tuple(worker_tags)
        self.queue: asyncio.Queue[pb.TaskWakeupHint] = asyncio.Queue(maxsize=queue_size)

    def offer(self, hint: pb.TaskWakeupHint) -> bool:
        """Queue a hint if it fits; returns False when an older hint had to be dropped for it."""
        if not tags_fit(hint.task_tags, self.worker_tags):
            return True
        kept = True
        if self.queue.full():
            self.queue.get_nowait()
            kept = False
        self.queue.put_nowait(hint)
        return kept

    async def next(self, timeout: timedelta | None = None) -> pb.TaskWakeupHint | None:
        if timeout is None:
            return await self.queue.get()
        try:
            return await asyncio.wait_for(self.queue.get(), timeout.total_seconds())
        except TimeoutError:
            return None

    def close(self) -> None:
        self._hub.unsubscribe(self)


class WakeupHub:
    """Publishes hints to every current subscriber whose tags fit."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._subscribers: set[WakeupSubscription] = set()
        self._queue_size = queue_size
        self.published = 0
        self.dropped = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, hint: pb.TaskWakeupHint) -> None:
        self.published += 1
        for subscription in tuple(self._subscribers):
            if not subscription.offer(hint):
                self.dropped += 1

    def subscribe(self, worker_tags: Sequence[str] = ()) -> WakeupSubscription:
        subscription = WakeupSubscription(self, worker_tags, self._queue_size)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: WakeupSubscription) -> None:
        self._subscribers.discard(subscription)

    async def wait_for_wakeup(self, timeout: timedelta, worker_tags: Sequence[str] = ()) -> pb.TaskWakeupHint | None:
        subscription = self.subscribe(worker_tags)
        try:
            return await subscription.next(timeout)
        finally:
            subscription.close()

    async def watch(self, worker_tags: Sequence[str] = ()) -> AsyncIterator[pb.TaskWakeupHint]:
        subscription = self.subscribe(worker_tags)
        try:
            while True:
                hint = await subscription.next()
                if hint is not None:
                    yield hint
        finally:
            with contextlib.suppress(Exception):
                subscription.close()
