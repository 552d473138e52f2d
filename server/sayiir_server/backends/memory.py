"""The in-memory backend: the reference implementation of SPEC.md §3–§7.

Everything lives in dicts of protobuf messages, so nothing survives a restart.
It serves tests (ours and users': `reset()` clears it between tests), local
development, and as the yardstick every other backend is measured against.

Atomicity: the backend lives on one asyncio event loop and no method awaits
while it reads or writes its dicts, so every method, composites included, runs
as one indivisible step. Messages are copied on the way in and on the way out:
a caller can never mutate what is stored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
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

    def reset(self) -> None:
        """Forget every snapshot, result, signal, event and claim (wakeup subscribers stay subscribed)."""
        self._snapshots.clear()
        self._retained.clear()
        self._signals.clear()
        self._events.clear()
        self._claims.clear()

    # -- the one write path of snapshots ---------------------------------------------------------

    def _store(self, previous: pb.WorkflowSnapshot | None, new: pb.WorkflowSnapshot) -> None:
        """Put an owned snapshot in place, keep results a Completed/Failed state no longer carries, announce it."""
        instance_id = new.instance_id
        retained = results_to_retain(previous, new, self._retained.get(instance_id, ()))
        if retained:
            self._retained[instance_id] = [_copy(result) for result in retained]
        else:
            self._retained.pop(instance_id, None)
        self._snapshots[instance_id] = new
        hint = dispatch.ready_hint(previous, new)
        if hint is not None:
            self.wakeups.publish(hint)

    def _stored(self, instance_id: str) -> pb.WorkflowSnapshot:
        snapshot = self._snapshots.get(instance_id)
        if snapshot is None:
            raise _not_found(instance_id)
        return snapshot

    # -- SnapshotStore (SPEC §3) -------------------------------------------------------------------

    async def save_snapshot(self, snapshot: pb.WorkflowSnapshot) -> None:
        self._store(self._snapshots.get(snapshot.instance_id), _copy(snapshot))

    async def save_task_result(self, instance_id: str, task_id: bytes, output: bytes) -> None:
        # In place: recording a result never moves the position, so it makes no task ready.
        record_task_result(self._stored(instance_id), task_id, output, self._clock())

    async def load_snapshot(self, instance_id: str) -> pb.WorkflowSnapshot:
        return _copy(self._stored(instance_id))

    async def delete_snapshot(self, instance_id: str) -> None:
        if self._snapshots.pop(instance_id, None) is None:
            raise _not_found(instance_id)
        self._retained.pop(instance_id, None)

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
        return _copy(claim)

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

    def _has_live_claim(self, instance_id: str, task_id: bytes, now: datetime) -> bool:
        claim = self._claims.get((instance_id, task_id))
        return claim is not None and _is_live(claim, now)

    async def find_available_tasks(
        self, worker_id: str, limit: int, aging_interval: timedelta, worker_tags: Sequence[str]
    ) -> list[pb.AvailableTask]:
        now = self._clock()
        self._drop_expired_claims(now)
        candidates: list[pb.AvailableTask] = []
        for instance_id in list(self._snapshots):
            if self._has_pending_signal(instance_id):
                continue
            snapshot = self._advance(self._snapshots[instance_id], now)
            task = self._candidate(snapshot, worker_tags, now)
            if task is not None:
                candidates.append(task)
        interval = clamp_aging_interval(aging_interval)
        return dispatch.order_and_limit(candidates, worker_id, interval, now, max(limit, 0))

    def _drop_expired_claims(self, now: datetime) -> None:
        for key in [key for key, claim in self._claims.items() if not _is_live(claim, now)]:
            del self._claims[key]

    def _advance(self, current: pb.WorkflowSnapshot, now: datetime) -> pb.WorkflowSnapshot:
        """Rule 2: move a due delay, or a signal that got its event or timed out; returns what is stored now."""
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
        if updated is None:
            return current
        self._store(current, updated)
        return updated

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
