"""The in-memory store: the naive oracle every other store is checked against.

Dicts of protobuf messages, a full scan for every query, one lock: nothing is
indexed, nothing is clever, so what it answers is what the engine's rules say.
It serves tests (ours and users': `InMemoryBackend().reset()` clears it between
tests) and local development; nothing survives a restart.

A transaction records how to undo each of its writes and undoes them if the
composite fails, so a composite commits whole or not at all. Messages are
copied on the way in and out: a caller never holds what is stored.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from google.protobuf.message import Message

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.api.wakeups import WakeupHub
from sayiir_server.backends.index_columns import IndexColumns, index_columns
from sayiir_server.domain import claims, dispatch, listing
from sayiir_server.domain.engine import Clock, Engine
from sayiir_server.domain.listing import ListCursor, ListedRow, WorkflowFilter
from sayiir_server.domain.model import SignalKind, state_of, utc_now
from sayiir_server.domain.port import (
    Candidate,
    ClaimAnswer,
    Completion,
    Composite,
    DueWork,
    Lock,
    ReadyQuery,
    WakeupSink,
    Write,
)
from sayiir_server.domain.snapshots import results_to_keep

_M = TypeVar("_M", bound=Message)
_T = TypeVar("_T")
_K = TypeVar("_K")
_V = TypeVar("_V")

ClaimKey = tuple[str, bytes]


def _copy(message: _M) -> _M:
    duplicate = type(message)()
    duplicate.CopyFrom(message)
    return duplicate


@dataclass
class _Row:
    snapshot: pb.WorkflowSnapshot
    columns: IndexColumns
    kept: list[pb.TaskResult]

    @property
    def updated_us(self) -> int:
        return dispatch.timestamp_micros(self.columns.updated_at)


@dataclass
class _Tables:
    rows: dict[str, _Row] = field(default_factory=dict)
    in_progress: dict[str, _Row] = field(default_factory=dict)
    """The InProgress rows: the only ones that can be ready or due, so dispatch reads these alone."""
    signals: dict[tuple[str, SignalKind], pb.SignalRequest] = field(default_factory=dict)
    events: dict[tuple[str, str], deque[bytes]] = field(default_factory=dict)
    claims: dict[ClaimKey, pb.TaskClaim] = field(default_factory=dict)
    secrets: dict[str, bytes] = field(default_factory=dict)


class MemoryStorage:
    """The storage port over process memory."""

    def __init__(self, deliver: WakeupSink) -> None:
        self._deliver = deliver
        self._tables = _Tables()
        self._lock = asyncio.Lock()

    def reset(self) -> None:
        """Forget every snapshot, result, signal, event and claim."""
        self._tables = _Tables()

    async def write(self, composite: Composite[_T], *, single_statement: bool = False) -> _T:
        async with self._lock:
            transaction = MemoryTransaction(self._tables)
            try:
                result = await composite(transaction)
            except BaseException:
                transaction.undo()
                raise
        for hint in transaction.hints:
            self._deliver(hint)
        return result

    async def read(self, composite: Composite[_T]) -> _T:
        async with self._lock:
            return await composite(MemoryTransaction(self._tables))

    async def check_health(self) -> None:
        """Memory is always available."""

    async def close(self) -> None:
        """Nothing to release: the data goes when the object does."""

    @property
    def description(self) -> str:
        return "memory://"


class MemoryTransaction:
    """One transaction over the tables: every write leaves a way back."""

    def __init__(self, tables: _Tables) -> None:
        self._t = tables
        self._undo: list[Callable[[], None]] = []
        self.hints: list[pb.TaskWakeupHint] = []

    def undo(self) -> None:
        for step in reversed(self._undo):
            step()
        self.hints.clear()

    def _set(self, table: dict[_K, _V], key: _K, value: _V | None) -> None:
        """table[key] = value (None deletes), undoably."""
        had, old = key in table, table.get(key)
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value

        def back() -> None:
            if had:
                table[key] = old  # type: ignore[assignment]
            else:
                table.pop(key, None)

        self._undo.append(back)

    # -- snapshots -------------------------------------------------------------------------------

    async def load(self, instance_id: str, lock: Lock | None = None) -> pb.WorkflowSnapshot | None:
        row = self._t.rows.get(instance_id)
        return None if row is None else _copy(row.snapshot)

    async def load_retained(self, instance_id: str) -> list[pb.TaskResult]:
        row = self._t.rows.get(instance_id)
        return [] if row is None else [_copy(result) for result in row.kept]

    async def put(self, write: Write) -> bool:
        snapshot = write.snapshot
        previous = self._t.rows.get(snapshot.instance_id)
        if previous is not None and previous.columns.state in write.refused_over:
            return False
        kept = results_to_keep(write.retain, previous.snapshot if previous else None, previous.kept if previous else ())
        row = _Row(_copy(snapshot), index_columns(snapshot), [_copy(result) for result in kept])
        self._set(self._t.rows, snapshot.instance_id, row)
        self._set(self._t.in_progress, snapshot.instance_id, row if row.columns.state == "in_progress" else None)
        moved = previous is None or previous.columns.current_task_id != row.columns.current_task_id
        if write.hint is not None and moved:
            self.hints.append(_copy(write.hint))
        return True

    async def insert(self, write: Write) -> bool:
        if write.snapshot.instance_id in self._t.rows:
            return False
        return await self.put(write)

    async def put_if_claimed(self, write: Write, task_id: bytes, worker_id: str, now: datetime) -> bool:
        claim = self._t.claims.get((write.snapshot.instance_id, task_id))
        if claim is None or claim.worker_id != worker_id or not claims.is_live(claim, now):
            return False
        return await self.put(write)

    async def put_and_release_each(self, completions: Sequence[Completion], now: datetime) -> list[bool]:
        return [await self._put_and_release(completion, now) for completion in completions]

    async def _put_and_release(self, completion: Completion, now: datetime) -> bool:
        write, task_id = completion.write, completion.task_id
        if not await self.put_if_claimed(write, task_id, completion.worker_id, now):
            return False
        self._set(self._t.claims, (write.snapshot.instance_id, task_id), None)
        return True

    async def delete(self, instance_id: str) -> bool:
        if instance_id not in self._t.rows:
            return False
        self._set(self._t.rows, instance_id, None)
        self._set(self._t.in_progress, instance_id, None)
        return True

    async def list_ids(self, after: str | None, limit: int) -> list[str]:
        # Python orders str by code point, which is exactly the order of their UTF-8 bytes.
        ids = sorted(instance_id for instance_id in self._t.rows if after is None or instance_id > after)
        return ids[:limit]

    async def secret(self, name: str, candidate: bytes) -> bytes:
        if name not in self._t.secrets:
            self._set(self._t.secrets, name, candidate)
        return self._t.secrets[name]

    async def list_workflows(self, wanted: WorkflowFilter, after: ListCursor | None, limit: int) -> list[ListedRow]:
        selected = [
            row.snapshot
            for row in self._t.rows.values()
            if listing.matches(row.snapshot, wanted) and listing.after_cursor(row.snapshot, after, wanted.newest_first)
        ]
        page = listing.in_order(selected, wanted.newest_first)[:limit]
        return [self._listed(self._t.rows[snapshot.instance_id]) for snapshot in page]

    def _listed(self, row: _Row) -> ListedRow:
        instance_id = row.snapshot.instance_id
        task_id = row.columns.current_task_id
        claim = self._t.claims.get((instance_id, task_id)) if task_id is not None else None
        pending = {kind: _copy(request) for (owner, kind), request in self._t.signals.items() if owner == instance_id}
        return ListedRow(_copy(row.snapshot), pending, claim and _copy(claim))

    # -- signals and events ----------------------------------------------------------------------

    async def signals(self, instance_id: str) -> dict[SignalKind, pb.SignalRequest]:
        return {kind: _copy(request) for (owner, kind), request in self._t.signals.items() if owner == instance_id}

    async def has_signal(self, instance_id: str, kinds: Sequence[SignalKind]) -> bool:
        return any((instance_id, kind) in self._t.signals for kind in kinds)

    async def put_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        self._set(self._t.signals, (instance_id, kind), _copy(request))

    async def delete_signal(self, instance_id: str, kind: SignalKind) -> None:
        self._set(self._t.signals, (instance_id, kind), None)

    async def append_event(self, instance_id: str, signal_name: str, payload: bytes) -> None:
        key = (instance_id, signal_name)
        queue = self._t.events.setdefault(key, deque())
        queue.append(payload)
        self._undo.append(lambda: _drop_newest(queue))

    async def pop_event(self, instance_id: str, signal_name: str) -> bytes | None:
        queue = self._t.events.get((instance_id, signal_name))
        if not queue:
            return None
        payload = queue.popleft()
        self._undo.append(lambda: queue.appendleft(payload))
        return payload

    # -- claims ----------------------------------------------------------------------------------

    async def claim(self, claim: pb.TaskClaim, now: datetime) -> bool:
        key = (claim.instance_id, claim.task_id)
        held = self._t.claims.get(key)
        if held is not None and claims.is_live(held, now):
            return False
        self._set(self._t.claims, key, _copy(claim))
        return True

    async def claim_unsignalled(self, claims: Sequence[pb.TaskClaim], now: datetime) -> set[tuple[str, bytes]]:
        signalled = await self._signalled_among([claim.instance_id for claim in claims])
        unsignalled = [claim for claim in claims if claim.instance_id not in signalled]
        return {(claim.instance_id, claim.task_id) for claim in unsignalled if await self.claim(claim, now)}

    async def release(self, instance_id: str, task_id: bytes, worker_id: str) -> ClaimAnswer:
        held = self._t.claims.get((instance_id, task_id))
        if held is None or held.worker_id != worker_id:
            return ClaimAnswer(False, None if held is None else held.worker_id)
        self._set(self._t.claims, (instance_id, task_id), None)
        return ClaimAnswer(True, worker_id)

    async def extend(self, instance_id: str, task_id: bytes, worker_id: str, expires_at: datetime) -> ClaimAnswer:
        held = self._t.claims.get((instance_id, task_id))
        if held is None or held.worker_id != worker_id:
            return ClaimAnswer(False, None if held is None else held.worker_id)
        if held.HasField("expires_at"):
            extended = _copy(held)
            extended.expires_at.FromDatetime(expires_at)
            self._set(self._t.claims, (instance_id, task_id), extended)
        return ClaimAnswer(True, worker_id)

    async def claims_of(self, instance_id: str) -> list[pb.TaskClaim]:
        return [_copy(claim) for (owner, _), claim in self._t.claims.items() if owner == instance_id]

    async def delete_claims(self, instance_id: str) -> None:
        for key in [key for key in self._t.claims if key[0] == instance_id]:
            self._set(self._t.claims, key, None)

    async def delete_expired_claims(self, now: datetime) -> set[str]:
        released = set()
        for key, claim in list(self._t.claims.items()):
            if not claims.is_live(claim, now):
                self._set(self._t.claims, key, None)
                released.add(key[0])
        return released

    # -- dispatch --------------------------------------------------------------------------------

    def _signalled(self, instance_id: str) -> bool:
        return any(owner == instance_id for owner, _ in self._t.signals)

    def _candidate(self, row: _Row) -> Candidate:
        task_id = row.columns.ready_task_id
        claim = self._t.claims.get((row.snapshot.instance_id, task_id)) if task_id is not None else None
        return Candidate(_copy(row.snapshot), self._signalled(row.snapshot.instance_id), claim and _copy(claim))

    async def due_work(self, now: datetime, limit: int) -> DueWork:
        expired = any(not claims.is_live(claim, now) for claim in self._t.claims.values())
        due = sorted(
            instance_id
            for instance_id, row in self._t.in_progress.items()
            if not self._signalled(instance_id) and self._is_due(row.snapshot, now)
        )
        return DueWork(expired, due[:limit])

    def _is_due(self, snapshot: pb.WorkflowSnapshot, now: datetime) -> bool:
        if state_of(snapshot) != "in_progress":
            return False
        if dispatch.is_delay_due(snapshot, now) or dispatch.is_signal_timed_out(snapshot, now):
            return True
        signal_name = dispatch.awaited_signal_name(snapshot)
        return signal_name is not None and bool(self._t.events.get((snapshot.instance_id, signal_name)))

    async def earliest_wake(self) -> datetime | None:
        wakes = [
            dispatch.wake_at(row.snapshot)
            for instance_id, row in self._t.in_progress.items()
            if row.columns.wake_at is not None and not self._signalled(instance_id)
        ]
        return min((wake for wake in wakes if wake is not None), default=None)

    async def lock_due(self, instance_ids: Sequence[str]) -> list[Candidate]:
        rows = [self._t.rows[instance_id] for instance_id in sorted(instance_ids) if instance_id in self._t.rows]
        return [Candidate(_copy(row.snapshot), self._signalled(row.snapshot.instance_id), None) for row in rows]

    async def ready_pages(self, query: ReadyQuery) -> dict[int, list[Candidate]]:
        after = (query.after.updated_us, query.after.instance_id) if query.priority is not None else None
        wanted = frozenset(query.definition_hashes)
        by_priority: dict[int, list[tuple[tuple[int, str], _Row]]] = {}
        for instance_id, row in self._t.in_progress.items():
            columns = row.columns
            if columns.ready_task_id is None or query.priority not in (None, columns.priority):
                continue
            if wanted and columns.definition_hash not in wanted:
                continue  # a prefilter: the engine tests the definition again
            key = (row.updated_us, instance_id)
            if after is None or key > after:
                by_priority.setdefault(columns.priority, []).append((key, row))
        return {
            priority: [self._candidate(row) for _, row in heapq.nsmallest(query.page_size, rows, key=_first)]
            for priority, rows in sorted(by_priority.items())
        }

    async def _signalled_among(self, instance_ids: Sequence[str]) -> set[str]:
        return {instance_id for instance_id in instance_ids if self._signalled(instance_id)}

    async def hinted(self, instance_id: str, task_id: bytes) -> Candidate | None:
        row = self._t.rows.get(instance_id)
        if row is None or row.columns.ready_task_id != task_id:
            return None
        return self._candidate(row)


def _first(entry: tuple[tuple[int, str], _Row]) -> tuple[int, str]:
    return entry[0]


def _drop_newest(queue: deque[bytes]) -> None:
    queue.pop()


class InMemoryBackend(Engine):
    """The engine over a fresh in-memory store: `InMemoryBackend(clock=...)` in tests, `reset()` between them."""

    def __init__(self, clock: Clock = utc_now, wakeups: WakeupHub | None = None) -> None:
        hub = wakeups if wakeups is not None else WakeupHub()
        self.memory = MemoryStorage(hub.publish)
        super().__init__(self.memory, hub, clock)

    def reset(self) -> None:
        """Forget every snapshot, result, signal, event and claim (wakeup subscribers stay subscribed)."""
        self.memory.reset()
