"""WAKE-5: time wakes workers. Each replica sleeps until the earliest due time it knows of, then advances.

A delay's end or a signal's timeout writes nothing by itself, so without a timer a
waiting worker would hear of it only by polling. The timer knows due times three
ways: from the snapshots this replica writes (`consider`, no query), from a re-read
of the store after writes that may release one (`reread`), and from a periodic
re-read, which is how due times written through other replicas are heard. When
one falls due it runs dispatch rules 1 and 2, whose writes announce the tasks
they make ready (WAKE-1.1) to every replica: the advancement stays the find's own,
exactly once however many replicas' timers fire together (DISP-2.7).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final

logger = logging.getLogger(__name__)

REREAD_PERIOD: Final = timedelta(seconds=1)
"""How often the timer re-reads the earliest due time: the longest a due time written elsewhere goes unheard."""

Earliest = Callable[[], Awaitable[datetime | None]]
"""The store's earliest due time (StoragePort earliest_wake), or None."""

Advance = Callable[[datetime], Awaitable[int]]
"""Dispatch rules 1 and 2 at `now`; how many instances they moved."""


class DueTimer:
    """One replica's timer over the earliest due time; `start` it on the serving loop, `close` it before the store."""

    def __init__(
        self,
        earliest: Earliest,
        advance: Advance,
        clock: Callable[[], datetime],
        period: timedelta = REREAD_PERIOD,
    ) -> None:
        self._earliest = earliest
        self._advance = advance
        self._clock = clock
        self._period = period.total_seconds()
        self._due: datetime | None = None
        self._stale = True
        self._reread_at = 0.0
        self._poked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sayiir-due-timer")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def consider(self, due: datetime | None) -> None:
        """A due time this replica just wrote: fire at it if it is the earliest known."""
        if due is not None and (self._due is None or due < self._due):
            self._due = due
            self._poked.set()

    def reread(self) -> None:
        """Something may have released a due time this replica cannot compute (a cleared request): look again."""
        self._stale = True
        self._poked.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the store is down: hints are advisory, try again after a period
                logger.warning("due timer: %s: %s", type(error).__name__, error)
                self._stale = True
                await asyncio.sleep(self._period)

    async def _step(self) -> None:
        loop = asyncio.get_running_loop()
        self._poked.clear()
        if self._stale or loop.time() >= self._reread_at:
            self._stale = False
            self._reread_at = loop.time() + self._period
            self._due = await self._earliest()
        now = self._clock()
        if self._due is not None and self._due <= now:
            self._due = None
            if await self._advance(now):
                self._stale = True  # more may be due (a bounded batch), or the next one is later
            # Nothing moved: another replica advanced it, or it cannot move; the next periodic re-read tells.
            return
        timeout = self._reread_at - loop.time()
        if self._due is not None:
            timeout = min(timeout, (self._due - now).total_seconds())
        poked = asyncio.ensure_future(self._poked.wait())
        try:
            # asyncio.wait, not wait_for: it never swallows the cancellation of close().
            await asyncio.wait({poked}, timeout=max(timeout, 0.0))
        finally:
            poked.cancel()
