"""Rules 3 to 5 of find_available_tasks over a storage port: the candidates, their order and the cut.

Storage hands out the ready rows of each priority in (updated_at, instance id)
order, a page at a time. Within one priority, a row updated earlier always has
the lower effective priority (DISP-4), so each priority's rows form a stream in
dispatch order (effective priority, then instance id), and merging the streams
on that key meets the candidates in dispatch order: the first `limit` met are
the answer. Rows the worker failed last come only after
every other candidate (DISP-4 anti-affinity), so their streams are read only
when the others run dry. Every test of rule 3 is made here, on what storage
returned; what storage filtered already only saves reading rows.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain import claims, dispatch
from sayiir_server.domain.port import FIRST_PAGE, Candidate, ReadyCursor, ReadyQuery, Transaction


@dataclass(frozen=True)
class Demand:
    """What one find asks for."""

    worker_id: str
    limit: int
    aging_interval: timedelta
    """Already clamped to at least one second."""
    worker_tags: Sequence[str]
    now: datetime
    definition_hashes: frozenset[bytes] = frozenset()
    """Only tasks of these definitions (a claiming worker's registered workflows); empty: any."""
    lock: bool = False
    """Lock the rows met (a claiming find)."""


def accepted(candidate: Candidate, demand: Demand) -> bytes | None:
    """DISP-3 (and CLAIM-AVAIL's definition filter): the task id this row offers the worker, else None."""
    if candidate.signalled:
        return None
    if demand.definition_hashes and candidate.snapshot.definition_hash not in demand.definition_hashes:
        return None
    if candidate.claim is not None and claims.is_live(candidate.claim, demand.now):
        return None
    return dispatch.candidate_task_id(candidate.snapshot, demand.worker_tags, demand.now)


async def choose(transaction: Transaction, demand: Demand) -> list[pb.AvailableTask]:
    """The first `limit` available tasks in dispatch order (DISP-3 to DISP-5)."""
    met = await _merge(transaction, demand, failed_here=False)
    if len(met) < demand.limit:
        met += await _merge(transaction, demand, failed_here=True)
    tasks = [dispatch.available_task(candidate.snapshot, demand.worker_tags, demand.now) for candidate in met]
    return dispatch.order_and_limit(
        [task for task in tasks if task is not None], demand.worker_id, demand.aging_interval, demand.now, demand.limit
    )


@dataclass
class _Met:
    effective: float
    instance_id: str
    stream: int
    candidate: Candidate

    def __lt__(self, other: _Met) -> bool:
        return (self.effective, self.instance_id) < (other.effective, other.instance_id)


async def _merge(transaction: Transaction, demand: Demand, *, failed_here: bool) -> list[Candidate]:
    """The first `limit` candidates of one side of the anti-affinity split, in dispatch order."""
    first_pages = await transaction.ready_pages(_query(demand, None, FIRST_PAGE, failed_here))
    streams = [
        _stream(transaction, demand, priority, page, failed_here) for priority, page in sorted(first_pages.items())
    ]
    heap: list[_Met] = []
    for index, stream in enumerate(streams):
        await _push_next(heap, stream, index)
    met: list[Candidate] = []
    while heap and len(met) < demand.limit:
        head = heapq.heappop(heap)
        met.append(head.candidate)
        if len(met) < demand.limit:  # a stream reads its next page only when a candidate is still wanted
            await _push_next(heap, streams[head.stream], head.stream)
    for stream in streams:
        await stream.aclose()
    return met


PAGE_GROWTH = 4
"""Each further page of one priority is this many times larger than the last, up to MAX_PAGE."""

MAX_PAGE = 256


def _query(
    demand: Demand, priority: int | None, after: ReadyCursor, failed_here: bool, page_size: int | None = None
) -> ReadyQuery:
    return ReadyQuery(
        priority=priority,
        failed_by=demand.worker_id if failed_here else None,
        worker_id=demand.worker_id,
        now=demand.now,
        worker_tags=demand.worker_tags,
        after=after,
        page_size=page_size or demand.limit,
        definition_hashes=tuple(demand.definition_hashes),
        lock=demand.lock,
    )


async def _push_next(heap: list[_Met], stream: AsyncGenerator[_Met, None], index: int) -> None:
    found = await anext(stream, None)
    if found is not None:
        found.stream = index
        heapq.heappush(heap, found)


async def _stream(
    transaction: Transaction, demand: Demand, priority: int, page: list[Candidate], failed_here: bool
) -> AsyncGenerator[_Met, None]:
    """The accepted candidates of one priority, in dispatch order, read a page at a time."""
    aging_seconds = demand.aging_interval.total_seconds()
    now_us = dispatch.datetime_micros(demand.now)
    page_size = demand.limit
    while True:
        for candidate in page:
            snapshot = candidate.snapshot
            task_id = accepted(candidate, demand)
            if task_id is None or dispatch.failed_here(snapshot, task_id, demand.worker_id) != failed_here:
                continue
            updated_us = dispatch.timestamp_micros(snapshot.updated_at)
            effective = dispatch.effective_priority(priority, updated_us, now_us, aging_seconds)
            yield _Met(effective, snapshot.instance_id, 0, candidate)
        if len(page) < page_size:
            return
        last = page[-1].snapshot
        after = ReadyCursor(dispatch.timestamp_micros(last.updated_at), last.instance_id)
        # The first page holds `limit` rows, which usually suffice; when rows were turned down, read on in
        # growing pages, so a find stays linear in the rows it reads however small its limit.
        page_size = min(max(page_size * PAGE_GROWTH, demand.limit), max(MAX_PAGE, demand.limit))
        pages = await transaction.ready_pages(_query(demand, priority, after, failed_here, page_size))
        page = pages.get(priority, [])
