"""The in-memory backend: the reference implementation of SPEC.md §3–§7.

Everything lives in dicts of protobuf messages, so nothing survives a restart.
It serves tests (ours and users': `reset()` clears it between tests), local
development, and as the yardstick every other backend is measured against.

Atomicity: the backend lives on one asyncio event loop and no method awaits
while it reads or writes its dicts, so every method, composites included, runs
as one indivisible step. Messages are copied on the way in and on the way out:
a caller can never mutate what is stored.

Scaling: find_available_tasks never walks every instance. Each snapshot write
keeps indexes up to date: ready instances by priority and age (read lazily in
dispatch order), wake times of delays and signal timeouts, and signal waits
whose event is buffered. Claims with an expiry sit in a heap of expiry times.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from google.protobuf.message import Message

from sayiir_client.errors import ClaimLostError, NotFoundError
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server import dispatch
from sayiir_server.model import (
    CANCEL,
    PAUSE,
    SIGNAL_KINDS,
    ControlSignal,
    SignalKind,
    clamp_aging_interval,
    current_task_id,
    find_result,
    state_of,
    timestamp,
    to_datetime,
    utc_now,
)
from sayiir_server.signals import SignalAdmission, admit_signal, apply_cancel, apply_pause, apply_unpause
from sayiir_server.snapshots import lookup_task_result, record_task_result, results_to_retain
from sayiir_server.store import Backend
from sayiir_server.wakeups import WakeupHub

_M = TypeVar("_M", bound=Message)

ClaimKey = tuple[str, bytes]
"""(instance id, task id)."""


def _copy(message: _M) -> _M:
    duplicate = type(message)()
    duplicate.CopyFrom(message)
    return duplicate


def _is_live(claim: pb.TaskClaim, now: datetime) -> bool:
    """A claim without expiry never expires; one with an expiry is expired from expires_at on."""
    return not claim.HasField("expires_at") or now < to_datetime(claim.expires_at)


def _not_found(instance_id: str) -> NotFoundError:
    return NotFoundError(f"workflow instance {instance_id!r} not found")


def _ascending(heap: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """A binary heap's entries in sorted order, read lazily without changing the heap."""
    frontier = [(heap[0], 0)] if heap else []
    while frontier:
        entry, index = heapq.heappop(frontier)
        yield entry
        for child in (2 * index + 1, 2 * index + 2):
            if child < len(heap):
                heapq.heappush(frontier, (heap[child], child))


def _worth_compacting(heap_entries: int, live_entries: int) -> bool:
    """Lazily deleted entries are dropped once they outnumber the live ones."""
    return heap_entries > 2 * live_entries + 64


class _ReadyIndex:
    """InProgress instances at an AtTask whose task is not completed: one heap per priority, oldest update first.

    Within one priority, rule 4's effective priority only grows with updated_at, so each heap read in
    order is a stream in dispatch order. Heap entries are deleted lazily: an entry counts only while it
    matches the instance's current (priority, updated_at).
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, int]] = {}
        self._heaps: dict[int, list[tuple[int, str]]] = {}
        self._heap_entries = 0

    def clear(self) -> None:
        self._entries.clear()
        self._heaps.clear()
        self._heap_entries = 0

    def update(self, snapshot: pb.WorkflowSnapshot, task_id: bytes) -> None:
        """Index (or drop) an InProgress snapshot positioned at `task_id`."""
        instance_id = snapshot.instance_id
        if find_result(snapshot.in_progress.completed_tasks, task_id) is not None:
            self.discard(instance_id)
            return
        entry = (dispatch.priority_of(snapshot), dispatch.timestamp_micros(snapshot.updated_at))
        previous = self._entries.get(instance_id)
        if previous == entry:
            return
        if previous is not None:
            self.discard(instance_id)
        self._entries[instance_id] = entry
        heapq.heappush(self._heaps.setdefault(entry[0], []), (entry[1], instance_id))
        self._heap_entries += 1
        if _worth_compacting(self._heap_entries, len(self._entries)):
            self._compact()

    def discard(self, instance_id: str) -> None:
        entry = self._entries.pop(instance_id, None)
        if entry is not None:
            self._drop_stale_tops(entry[0])

    def priorities(self) -> list[int]:
        return list(self._heaps)

    def in_order(self, priority: int) -> Iterator[tuple[int, str]]:
        """(updated_at µs, instance id) of the ready instances of one priority, oldest first."""
        previous: tuple[int, str] | None = None
        for entry in _ascending(self._heaps.get(priority, [])):
            updated_us, instance_id = entry
            # A repeated entry (the instance left that position and came back) is yielded once.
            if entry != previous and self._entries.get(instance_id) == (priority, updated_us):
                previous = entry
                yield entry

    def _is_stale(self, priority: int, entry: tuple[int, str]) -> bool:
        return self._entries.get(entry[1]) != (priority, entry[0])

    def _drop_stale_tops(self, priority: int) -> None:
        """Dispatch takes the oldest first, so the entries it leaves behind mostly surface at the top."""
        heap = self._heaps.get(priority)
        if heap is None:
            return
        while heap and self._is_stale(priority, heap[0]):
            heapq.heappop(heap)
            self._heap_entries -= 1
        if not heap:
            del self._heaps[priority]

    def _compact(self) -> None:
        self._heaps = {}
        for instance_id, (priority, updated_us) in self._entries.items():
            self._heaps.setdefault(priority, []).append((updated_us, instance_id))
        for heap in self._heaps.values():
            heapq.heapify(heap)
        self._heap_entries = len(self._entries)


class _WakeIndex:
    """Instances time alone will advance (a delay's end, a signal's timeout), in a heap of wake times (µs).

    Entries are deleted lazily: an entry counts only while it matches the instance's current wake time.
    """

    def __init__(self) -> None:
        self._wake_us: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def clear(self) -> None:
        self._wake_us.clear()
        self._heap.clear()

    def update(self, snapshot: pb.WorkflowSnapshot) -> None:
        wake = dispatch.wake_at(snapshot)
        if wake is None:
            self.discard(snapshot.instance_id)
            return
        wake_us = dispatch.datetime_micros(wake)
        if self._wake_us.get(snapshot.instance_id) == wake_us:
            return
        self._wake_us[snapshot.instance_id] = wake_us
        heapq.heappush(self._heap, (wake_us, snapshot.instance_id))
        if _worth_compacting(len(self._heap), len(self._wake_us)):
            self._heap = [(wake_us, instance_id) for instance_id, wake_us in self._wake_us.items()]
            heapq.heapify(self._heap)

    def discard(self, instance_id: str) -> None:
        self._wake_us.pop(instance_id, None)

    def due(self, now_us: int) -> set[str]:
        """The instances whose wake time has come; they stay indexed until a write moves them on."""
        due: set[str] = set()
        while self._heap and self._heap[0][0] <= now_us:
            wake_us, instance_id = heapq.heappop(self._heap)
            if self._wake_us.get(instance_id) == wake_us:
                due.add(instance_id)
        for instance_id in due:
            heapq.heappush(self._heap, (self._wake_us[instance_id], instance_id))
        return due


class InMemoryBackend(Backend):
    """Every storage trait over process memory; `wakeups` is the hub its writes publish to."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        """`clock` supplies "now" (UTC) for expiries, delays and timestamps; tests may pass a fake one."""
        self._clock = clock
        self.wakeups = WakeupHub()
        self._snapshots: dict[str, pb.WorkflowSnapshot] = {}
        self._retained: dict[str, list[pb.TaskResult]] = {}
        self._signals: dict[tuple[str, SignalKind], pb.SignalRequest] = {}
        self._events: dict[tuple[str, str], deque[bytes]] = {}
        self._claims: dict[ClaimKey, pb.TaskClaim] = {}
        # Indexes, kept by _index (snapshots) and the claim and event methods.
        self._ready = _ReadyIndex()
        self._waking = _WakeIndex()
        self._signal_waits: dict[str, str] = {}
        """Instance → the event name its InProgress AtSignal waits for."""
        self._answered: set[str] = set()
        """Signal waits with an event buffered under their name: the next find advances them."""
        self._claim_expiries: list[tuple[int, ClaimKey]] = []
        """(expires_at µs, claim key), one entry per expiry a claim has had; stale ones are skipped."""
        self._arrival: dict[str, int] = {}
        """Instance → when it was first stored: the order a full scan of self._snapshots would visit it in."""
        self._arrivals = 0

    def reset(self) -> None:
        """Forget every snapshot, result, signal, event and claim (wakeup subscribers stay subscribed)."""
        self._snapshots.clear()
        self._retained.clear()
        self._signals.clear()
        self._events.clear()
        self._claims.clear()
        self._ready.clear()
        self._waking.clear()
        self._signal_waits.clear()
        self._answered.clear()
        self._claim_expiries.clear()
        self._arrival.clear()

    # -- the one write path of snapshots ---------------------------------------------------------

    def _store(self, previous: pb.WorkflowSnapshot | None, new: pb.WorkflowSnapshot) -> None:
        """Put an owned snapshot in place, keep results a Completed/Failed state no longer carries, announce it."""
        instance_id = new.instance_id
        retained = results_to_retain(previous, new, self._retained.get(instance_id, ()))
        if retained:
            self._retained[instance_id] = [_copy(result) for result in retained]
        else:
            self._retained.pop(instance_id, None)
        if instance_id not in self._snapshots:
            self._arrival[instance_id] = self._arrivals
            self._arrivals += 1
        self._snapshots[instance_id] = new
        self._index(new)
        hint = dispatch.ready_hint(previous, new)
        if hint is not None:
            self.wakeups.publish(hint)

    def _index(self, snapshot: pb.WorkflowSnapshot) -> None:
        """Bring the dispatch indexes in line with a stored snapshot (after any write to it)."""
        instance_id = snapshot.instance_id
        task_id = current_task_id(snapshot)
        if task_id is not None:  # at a task: waiting neither on time nor on an event
            self._ready.update(snapshot, task_id)
            self._waking.discard(instance_id)
            self._forget_signal_wait(instance_id)
            return
        self._ready.discard(instance_id)
        self._waking.update(snapshot)
        signal_name = dispatch.awaited_signal_name(snapshot)
        if signal_name is None:
            self._forget_signal_wait(instance_id)
            return
        self._signal_waits[instance_id] = signal_name
        if (instance_id, signal_name) in self._events:
            self._answered.add(instance_id)
        else:
            self._answered.discard(instance_id)

    def _forget_signal_wait(self, instance_id: str) -> None:
        if self._signal_waits.pop(instance_id, None) is not None:
            self._answered.discard(instance_id)

    def _unindex(self, instance_id: str) -> None:
        self._ready.discard(instance_id)
        self._waking.discard(instance_id)
        self._forget_signal_wait(instance_id)
        self._arrival.pop(instance_id, None)

    def _stored(self, instance_id: str) -> pb.WorkflowSnapshot:
        snapshot = self._snapshots.get(instance_id)
        if snapshot is None:
            raise _not_found(instance_id)
        return snapshot

    # -- SnapshotStore (SPEC §3) -------------------------------------------------------------------

    async def save_snapshot(self, snapshot: pb.WorkflowSnapshot) -> None:
        self._store(self._snapshots.get(snapshot.instance_id), _copy(snapshot))

    async def save_task_result(self, instance_id: str, task_id: bytes, output: bytes) -> None:
        # In place: recording a result never moves the position, so it makes no task ready (no hint);
        # it can complete the current task and it moves updated_at, which the ready index orders by.
        snapshot = self._stored(instance_id)
        if record_task_result(snapshot, task_id, output, self._clock()):
            self._index(snapshot)

    async def load_snapshot(self, instance_id: str) -> pb.WorkflowSnapshot:
        return _copy(self._stored(instance_id))

    async def delete_snapshot(self, instance_id: str) -> None:
        if self._snapshots.pop(instance_id, None) is None:
            raise _not_found(instance_id)
        self._retained.pop(instance_id, None)
        self._unindex(instance_id)

    async def list_snapshots(self) -> list[str]:
        return list(self._snapshots)

    async def list_snapshots_page(self, after: str | None, limit: int) -> list[str]:
        # Python orders str by code point, which is exactly the order of their UTF-8 bytes.
        ids = sorted(self._snapshots)
        if after is not None:
            ids = [instance_id for instance_id in ids if instance_id > after]
        return ids[: max(limit, 0)]

    async def insert_snapshot_if_absent(self, snapshot: pb.WorkflowSnapshot) -> bool:
        if snapshot.instance_id in self._snapshots:
            return False
        self._store(None, _copy(snapshot))
        return True

    # -- SignalStore (SPEC §4) ---------------------------------------------------------------------

    async def store_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        if admit_signal(self._stored(instance_id), kind) is SignalAdmission.STORE:
            self._signals[(instance_id, kind)] = _copy(request)

    async def get_signal(self, instance_id: str, kind: SignalKind) -> pb.SignalRequest | None:
        request = self._signals.get((instance_id, kind))
        return None if request is None else _copy(request)

    async def clear_signal(self, instance_id: str, kind: SignalKind) -> None:
        self._signals.pop((instance_id, kind), None)

    async def send_event(self, instance_id: str, signal_name: str, payload: bytes) -> None:
        self._events.setdefault((instance_id, signal_name), deque()).append(payload)
        if self._signal_waits.get(instance_id) == signal_name:
            self._answered.add(instance_id)

    async def consume_event(self, instance_id: str, signal_name: str) -> bytes | None:
        return self._pop_event(instance_id, signal_name)

    def _pop_event(self, instance_id: str, signal_name: str) -> bytes | None:
        key = (instance_id, signal_name)
        queue = self._events.get(key)
        if not queue:
            return None
        payload = queue.popleft()
        if not queue:
            del self._events[key]
            if self._signal_waits.get(instance_id) == signal_name:
                self._answered.discard(instance_id)
        return payload

    async def check_and_cancel(self, instance_id: str, interrupted_at_task: bytes | None = None) -> bool:
        return self._apply_cancel(instance_id, interrupted_at_task)

    async def check_and_pause(self, instance_id: str) -> bool:
        return self._apply_pause(instance_id)

    async def check_control_signals(
        self, instance_id: str, interrupted_at_task: bytes | None = None
    ) -> ControlSignal | None:
        if self._apply_cancel(instance_id, interrupted_at_task):
            return enums.CONTROL_SIGNAL_CANCELLED
        if self._apply_pause(instance_id):
            return enums.CONTROL_SIGNAL_PAUSED
        return None

    def _apply_cancel(self, instance_id: str, interrupted_at_task: bytes | None) -> bool:
        request = self._signals.get((instance_id, CANCEL))
        current = self._snapshots.get(instance_id)
        if request is None or current is None or state_of(current) != "in_progress":
            return False
        updated = _copy(current)
        apply_cancel(updated, request, interrupted_at_task, self._clock())
        self._store(current, updated)
        del self._signals[(instance_id, CANCEL)]
        return True

    def _apply_pause(self, instance_id: str) -> bool:
        request = self._signals.get((instance_id, PAUSE))
        current = self._snapshots.get(instance_id)
        if request is None or current is None or state_of(current) != "in_progress":
            return False
        updated = _copy(current)
        apply_pause(updated, request, self._clock())
        self._store(current, updated)
        del self._signals[(instance_id, PAUSE)]
        return True

    async def unpause(self, instance_id: str) -> pb.WorkflowSnapshot:
        current = self._stored(instance_id)
        updated = _copy(current)
        apply_unpause(updated, self._clock())
        self._store(current, updated)
        return _copy(updated)

    def _has_pending_signal(self, instance_id: str) -> bool:
        return any((instance_id, kind) in self._signals for kind in SIGNAL_KINDS)

    # -- TaskClaimStore (SPEC §5) ------------------------------------------------------------------

    async def claim_task(
        self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta | None
    ) -> pb.TaskClaim | None:
        now = self._clock()
        key = (instance_id, task_id)
        held = self._claims.get(key)
        if held is not None and _is_live(held, now):
            return None
        claim = pb.TaskClaim(instance_id=instance_id, task_id=task_id, worker_id=worker_id, claimed_at=timestamp(now))
        if ttl is not None:
            claim.expires_at.CopyFrom(timestamp(now + ttl))
        self._claims[key] = claim
        self._note_expiry(claim)
        return _copy(claim)

    def _note_expiry(self, claim: pb.TaskClaim) -> None:
        if not claim.HasField("expires_at"):
            return
        key = (claim.instance_id, claim.task_id)
        heapq.heappush(self._claim_expiries, (dispatch.timestamp_micros(claim.expires_at), key))
        if _worth_compacting(len(self._claim_expiries), len(self._claims)):
            self._claim_expiries = [
                (dispatch.timestamp_micros(held.expires_at), held_key)
                for held_key, held in self._claims.items()
                if held.HasField("expires_at")
            ]
            heapq.heapify(self._claim_expiries)

    def _held_claim(self, instance_id: str, task_id: bytes, worker_id: str) -> pb.TaskClaim:
        claim = self._claims.get((instance_id, task_id))
        if claim is None:
            raise NotFoundError(f"no claim on task {task_id.hex()} of workflow instance {instance_id!r}")
        if claim.worker_id != worker_id:
            raise ClaimLostError(
                f"task {task_id.hex()} of workflow instance {instance_id!r} is claimed by worker {claim.worker_id!r}"
            )
        return claim

    async def release_task_claim(self, instance_id: str, task_id: bytes, worker_id: str) -> None:
        self._held_claim(instance_id, task_id, worker_id)
        del self._claims[(instance_id, task_id)]

    async def extend_task_claim(self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta) -> None:
        claim = self._held_claim(instance_id, task_id, worker_id)
        if claim.HasField("expires_at"):
            claim.expires_at.CopyFrom(timestamp(self._clock() + ttl))
            self._note_expiry(claim)

    def _has_live_claim(self, instance_id: str, task_id: bytes, now: datetime) -> bool:
        claim = self._claims.get((instance_id, task_id))
        return claim is not None and _is_live(claim, now)

    async def find_available_tasks(
        self, worker_id: str, limit: int, aging_interval: timedelta, worker_tags: Sequence[str]
    ) -> list[pb.AvailableTask]:
        now = self._clock()
        self._drop_expired_claims(now)
        self._advance_due(now)
        if limit <= 0:
            return []
        chosen = self._choose(worker_id, limit, clamp_aging_interval(aging_interval), worker_tags, now)
        tasks = [dispatch.available_task(self._snapshots[instance_id], worker_tags, now) for instance_id in chosen]
        # available_task copies the snapshot into the AvailableTask it builds; only the chosen pay for that.
        return [task for task in tasks if task is not None]

    def _drop_expired_claims(self, now: datetime) -> None:
        now_us = dispatch.datetime_micros(now)
        while self._claim_expiries and self._claim_expiries[0][0] <= now_us:
            _, key = heapq.heappop(self._claim_expiries)
            claim = self._claims.get(key)
            if claim is not None and not _is_live(claim, now):
                del self._claims[key]

    def _advance_due(self, now: datetime) -> None:
        """Rule 2 for the instances time or a buffered event may move, in the order a full scan would."""
        due = self._waking.due(dispatch.datetime_micros(now)) | self._answered
        for instance_id in sorted(due, key=self._arrival.__getitem__):
            if not self._has_pending_signal(instance_id):
                self._advance(self._snapshots[instance_id], now)

    def _advance(self, current: pb.WorkflowSnapshot, now: datetime) -> None:
        """Rule 2: move a due delay, or a signal that got its event or timed out."""
        updated: pb.WorkflowSnapshot | None = None
        signal_name = dispatch.awaited_signal_name(current)
        if dispatch.is_delay_due(current, now):
            updated = _copy(current)
            dispatch.advance_past_delay(updated, now)
        elif signal_name is not None:
            payload = self._pop_event(current.instance_id, signal_name)
            if payload is None and dispatch.is_signal_timed_out(current, now):
                payload = b""
            if payload is not None:
                updated = _copy(current)
                dispatch.advance_past_signal(updated, payload, now)
        if updated is not None:
            self._store(current, updated)

    def _choose(
        self, worker_id: str, limit: int, aging_interval: timedelta, worker_tags: Sequence[str], now: datetime
    ) -> list[str]:
        """Rules 3 to 5 over the ready index: the instance ids of the first `limit` candidates in dispatch order.

        Each priority's stream is in ascending effective priority, so merging them on it meets candidates in
        dispatch order, up to ties between equal effective priorities, which the final sort on the whole key
        settles once every tie of the last one taken is in. Candidates this worker last failed sort after all
        the others: they matter only when every stream runs dry, and by then all of them have been met.
        """
        now_us = dispatch.datetime_micros(now)
        aging_seconds = aging_interval.total_seconds()
        shunned: list[tuple[int, float, str]] = []

        def stream(priority: int) -> Iterator[tuple[int, float, str]]:
            for updated_us, instance_id in self._ready.in_order(priority):
                task_id = self._offered_task(self._snapshots[instance_id], worker_tags, now)
                if task_id is None:
                    continue
                effective = dispatch.effective_priority(priority, updated_us, now_us, aging_seconds)
                if dispatch.failed_here(self._snapshots[instance_id], task_id, worker_id):
                    shunned.append((1, effective, instance_id))
                else:
                    yield (0, effective, instance_id)

        met: list[tuple[int, float, str]] = []
        for key in heapq.merge(*(stream(p) for p in self._ready.priorities()), key=lambda key: key[1]):
            if len(met) >= limit and key[1] > met[-1][1]:
                break
            met.append(key)
        else:
            met += shunned
        return [instance_id for _, _, instance_id in heapq.nsmallest(limit, met)]

    def _offered_task(self, snapshot: pb.WorkflowSnapshot, worker_tags: Sequence[str], now: datetime) -> bytes | None:
        """Rule 3 for one stored snapshot, without building the AvailableTask: the task id on offer."""
        task_id = current_task_id(snapshot)
        if task_id is None or self._has_pending_signal(snapshot.instance_id):
            return None
        if self._has_live_claim(snapshot.instance_id, task_id, now):
            return None
        return dispatch.candidate_task_id(snapshot, worker_tags, now)

    def _candidate(
        self, snapshot: pb.WorkflowSnapshot, worker_tags: Sequence[str], now: datetime
    ) -> pb.AvailableTask | None:
        """Rule 3 for one stored snapshot whose instance has no pending signal (the caller checked)."""
        task_id = current_task_id(snapshot)
        if task_id is None or self._has_live_claim(snapshot.instance_id, task_id, now):
            return None
        # available_task copies the snapshot into the AvailableTask it builds.
        return dispatch.available_task(snapshot, worker_tags, now)

    async def wait_for_wakeup(self, timeout: timedelta, worker_tags: Sequence[str] = ()) -> pb.TaskWakeupHint | None:
        return await self.wakeups.wait_for_wakeup(timeout, worker_tags)

    def watch_wakeups(self, worker_tags: Sequence[str] = ()) -> AsyncIterator[pb.TaskWakeupHint]:
        return self.wakeups.watch(worker_tags)

    async def find_hinted_task(self, hint: pb.TaskWakeupHint) -> pb.AvailableTask | None:
        snapshot = self._snapshots.get(hint.instance_id)
        if snapshot is None or current_task_id(snapshot) != hint.task_id:
            return None
        if self._has_pending_signal(hint.instance_id):
            return None
        # The hint's own tags fit by construction, so no worker tags narrow the lookup.
        return self._candidate(snapshot, (), self._clock())

    async def save_snapshot_fenced(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        claim = self._claims.get((snapshot.instance_id, task_id))
        if claim is None or claim.worker_id != worker_id or not _is_live(claim, self._clock()):
            return False
        self._store(self._snapshots.get(snapshot.instance_id), _copy(snapshot))
        return True

    # -- TaskResultStore (SPEC §6) -----------------------------------------------------------------

    async def load_task_result(self, instance_id: str, task_id: bytes) -> bytes | None:
        snapshot = self._stored(instance_id)
        return lookup_task_result(snapshot, self._retained.get(instance_id, ()), task_id)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def check_health(self) -> None:
        """Memory is always available."""

    async def close(self) -> None:
        """Nothing to release: the data goes when the object does."""

    @property
    def description(self) -> str:
        return "memory://"
