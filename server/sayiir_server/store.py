"""The storage traits, as async Protocols mirroring the Rust crate `sayiir_persistence`.

A backend subclasses the Protocols it implements. The methods marked
"default" are built on the required primitives, so a backend that implements
only the primitives works (not atomically: the defaults say where); real
backends override them with single transactions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Protocol, runtime_checkable

from sayiir_client.errors import NotFoundError
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.model import CANCEL, PAUSE, ControlSignal, SignalKind, state_of, utc_now
from sayiir_server.signals import apply_cancel, apply_pause, apply_unpause

MAX_FIND_LIMIT = 1000
"""Largest `limit` FindAvailableTasks accepts."""


@runtime_checkable
class SnapshotStore(Protocol):
    """Core snapshot CRUD (SPEC.md §3)."""

    async def save_snapshot(self, snapshot: pb.WorkflowSnapshot) -> None:
        """Insert or overwrite by instance id; Completed/Failed retains the previous task results."""
        ...

    async def save_task_result(self, instance_id: str, task_id: bytes, output: bytes) -> None:
        """Record one task's output while InProgress; NotFoundError without a snapshot."""
        ...

    async def load_snapshot(self, instance_id: str) -> pb.WorkflowSnapshot:
        """The stored snapshot; NotFoundError when missing."""
        ...

    async def delete_snapshot(self, instance_id: str) -> None:
        """Delete the snapshot and its retained results (not its signals); NotFoundError when missing."""
        ...

    async def list_snapshots(self) -> list[str]:
        """Every instance id."""
        ...

    async def list_snapshots_page(self, after: str | None, limit: int) -> list[str]:
        """Default: up to `limit` instance ids greater than `after`, in ascending order (paging)."""
        ids = sorted(await self.list_snapshots(), key=str.encode)
        if after is not None:
            ids = [i for i in ids if i.encode() > after.encode()]
        return ids[:limit]

    async def insert_snapshot_if_absent(self, snapshot: pb.WorkflowSnapshot) -> bool:
        """Default: save unless a snapshot exists; True when saved. Not atomic: backends override."""
        try:
            await self.load_snapshot(snapshot.instance_id)
        except NotFoundError:
            await self.save_snapshot(snapshot)
            return True
        return False


@runtime_checkable
class SignalStore(SnapshotStore, Protocol):
    """Cancel and pause signals plus external events (SPEC.md §4)."""

    async def store_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        """Store a request per the state rules; NotFoundError, CannotCancelError, CannotPauseError."""
        ...

    async def get_signal(self, instance_id: str, kind: SignalKind) -> pb.SignalRequest | None:
        """The pending request of this kind, or None."""
        ...

    async def clear_signal(self, instance_id: str, kind: SignalKind) -> None:
        """Remove the pending request of this kind; never an error."""
        ...

    async def send_event(self, instance_id: str, signal_name: str, payload: bytes) -> None:
        """Append to the FIFO of (instance, name), whether or not the instance exists."""
        ...

    async def consume_event(self, instance_id: str, signal_name: str) -> bytes | None:
        """Remove and return the oldest payload of (instance, name), or None."""
        ...

    async def check_and_cancel(self, instance_id: str, interrupted_at_task: bytes | None = None) -> bool:
        """Default: apply a pending cancel to an InProgress instance. Not atomic: backends override."""

        def cancel(snapshot: pb.WorkflowSnapshot, request: pb.SignalRequest) -> None:
            apply_cancel(snapshot, request, interrupted_at_task, utc_now())

        return await _apply_pending_signal(self, instance_id, CANCEL, cancel)

    async def check_and_pause(self, instance_id: str) -> bool:
        """Default: apply a pending pause to an InProgress instance. Not atomic: backends override."""

        def pause(snapshot: pb.WorkflowSnapshot, request: pb.SignalRequest) -> None:
            apply_pause(snapshot, request, utc_now())

        return await _apply_pending_signal(self, instance_id, PAUSE, pause)

    async def check_control_signals(
        self, instance_id: str, interrupted_at_task: bytes | None = None
    ) -> ControlSignal | None:
        """Default: cancel first, then pause."""
        if await self.check_and_cancel(instance_id, interrupted_at_task):
            return enums.CONTROL_SIGNAL_CANCELLED
        if await self.check_and_pause(instance_id):
            return enums.CONTROL_SIGNAL_PAUSED
        return None

    async def unpause(self, instance_id: str) -> pb.WorkflowSnapshot:
        """Default: resume a Paused instance; NotFoundError, CannotPauseError. Not atomic: backends override."""
        snapshot = await self.load_snapshot(instance_id)
        apply_unpause(snapshot, utc_now())
        await self.save_snapshot(snapshot)
        return snapshot


async def _apply_pending_signal(
    store: SignalStore,
    instance_id: str,
    kind: SignalKind,
    apply: Callable[[pb.WorkflowSnapshot, pb.SignalRequest], None],
) -> bool:
    """The default check_and_cancel/check_and_pause: apply the pending request of `kind`, save, then clear it."""
    request = await store.get_signal(instance_id, kind)
    if request is None:
        return False
    try:
        snapshot = await store.load_snapshot(instance_id)
    except NotFoundError:
        return False
    if state_of(snapshot) != "in_progress":
        return False
    apply(snapshot, request)
    await store.save_snapshot(snapshot)
    await store.clear_signal(instance_id, kind)
    return True


@runtime_checkable
class PersistentBackend(SignalStore, SnapshotStore, Protocol):
    """SnapshotStore + SignalStore: what prepare_run and a worker's checkpoints need."""


@runtime_checkable
class TaskClaimStore(PersistentBackend, Protocol):
    """Leases on tasks, dispatch and wakeups (SPEC.md §5)."""

    async def claim_task(
        self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta | None
    ) -> pb.TaskClaim | None:
        """A new claim, or None while a live claim exists; an expired claim is replaced."""
        ...

    async def release_task_claim(self, instance_id: str, task_id: bytes, worker_id: str) -> None:
        """Remove the worker's claim; NotFoundError without a claim, ClaimLostError when held by another."""
        ...

    async def extend_task_claim(self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta) -> None:
        """expires_at = now + ttl (a claim without expiry stays so); NotFoundError, ClaimLostError."""
        ...

    async def find_available_tasks(
        self, worker_id: str, limit: int, aging_interval: timedelta, worker_tags: Sequence[str]
    ) -> list[pb.AvailableTask]:
        """Advance due delays and signals, then return ready tasks in dispatch order (SPEC.md §5)."""
        ...

    async def wait_for_wakeup(self, timeout: timedelta, worker_tags: Sequence[str] = ()) -> pb.TaskWakeupHint | None:
        """Default: no wakeup source, so wait out the timeout and return None."""
        import asyncio

        await asyncio.sleep(max(timeout.total_seconds(), 0.0))
        return None

    def watch_wakeups(self, worker_tags: Sequence[str] = ()) -> AsyncIterator[pb.TaskWakeupHint]:
        """Default: a stream built from repeated wait_for_wakeup calls."""
        return _repeat_wait_for_wakeup(self, worker_tags)

    async def find_hinted_task(self, hint: pb.TaskWakeupHint) -> pb.AvailableTask | None:
        """Default: search find_available_tasks for the hinted task. Backends override with a keyed lookup."""
        tasks = await self.find_available_tasks("", MAX_FIND_LIMIT, timedelta(seconds=1), hint.task_tags)
        for task in tasks:
            if task.instance_id == hint.instance_id and task.task_id == hint.task_id:
                return task
        return None

    async def save_snapshot_fenced(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        """Default: an unfenced save that always succeeds; a backend must override it to fence writes."""
        await self.save_snapshot(snapshot)
        return True


async def _repeat_wait_for_wakeup(
    store: TaskClaimStore, worker_tags: Sequence[str]
) -> AsyncIterator[pb.TaskWakeupHint]:
    while True:
        hint = await store.wait_for_wakeup(timedelta(seconds=30), worker_tags)
        if hint is not None:
            yield hint


@runtime_checkable
class TaskResultStore(Protocol):
    """Read access to single task results (SPEC.md §6)."""

    async def load_task_result(self, instance_id: str, task_id: bytes) -> bytes | None:
        """The task's output, None when it never ran; NotFoundError when the instance is missing."""
        ...


@runtime_checkable
class Backend(TaskClaimStore, TaskResultStore, Protocol):
    """Everything the server needs from a storage backend, plus its lifecycle."""

    async def check_health(self) -> None:
        """Raise BackendUnavailableError when the storage cannot serve requests."""
        ...

    async def close(self) -> None:
        """Release connections and files; the backend is unusable afterwards."""
        ...

    @property
    def description(self) -> str:
        """A short, credential-free description for logs ("sqlite:///var/lib/sayiir.db")."""
        ...
