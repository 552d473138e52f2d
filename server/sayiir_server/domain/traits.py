"""The storage traits of the Rust crate `sayiir_persistence`, as async Protocols.

The engine implements them over any storage port; the remote clients implement
them over gRPC, so code written against one runs against the other. Rule ids
refer to docs/behaviour.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Protocol, runtime_checkable

from sayiir_client.errors import FinalStateError
from sayiir_client.tasks import TaskCompletion
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import ConflictPolicy, ControlSignal, SignalKind

MAX_FIND_LIMIT = 1000
"""Largest `limit` FindAvailableTasks accepts."""


@runtime_checkable
class SnapshotStore(Protocol):
    """Core snapshot CRUD."""

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
        """Up to `limit` instance ids greater than `after`, in ascending byte order (paging)."""
        ...

    async def insert_snapshot_if_absent(self, snapshot: pb.WorkflowSnapshot) -> bool:
        """Save unless a snapshot exists; True when saved."""
        ...


@runtime_checkable
class SignalStore(SnapshotStore, Protocol):
    """Cancel and pause signals plus external events."""

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
        """Apply a pending cancel to an InProgress instance, atomically."""
        ...

    async def check_and_pause(self, instance_id: str) -> bool:
        """Apply a pending pause to an InProgress instance, atomically."""
        ...

    async def check_control_signals(
        self, instance_id: str, interrupted_at_task: bytes | None = None
    ) -> ControlSignal | None:
        """Cancel first, then pause."""
        ...

    async def unpause(self, instance_id: str) -> pb.WorkflowSnapshot:
        """Resume a Paused instance; NotFoundError, CannotPauseError."""
        ...


@runtime_checkable
class PersistentBackend(SignalStore, SnapshotStore, Protocol):
    """SnapshotStore + SignalStore: what a worker's checkpoints need."""


@runtime_checkable
class TaskClaimStore(PersistentBackend, Protocol):
    """Leases on tasks, dispatch and wakeups."""

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
        """Advance due delays and signals, then return ready tasks in dispatch order."""
        ...

    async def wait_for_wakeup(self, timeout: timedelta, worker_tags: Sequence[str] = ()) -> pb.TaskWakeupHint | None:
        """A task-ready hint, or None once `timeout` passed."""
        ...

    def watch_wakeups(self, worker_tags: Sequence[str] = ()) -> AsyncIterator[pb.TaskWakeupHint]:
        """Every task-ready hint from now on."""
        ...

    async def find_hinted_task(self, hint: pb.TaskWakeupHint) -> pb.AvailableTask | None:
        """The task a hint names, if it still is a candidate; does not claim."""
        ...

    async def save_snapshot_fenced(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        """Save only while the worker holds a live claim on the task; False writes nothing."""
        ...


@runtime_checkable
class WorkerPath(Protocol):
    """Beyond the crate's traits: the worker loop in two round trips (CLAIM-AVAIL-*, COMPLETE-*)."""

    async def claim_available_tasks(
        self,
        worker_id: str,
        limit: int,
        ttl: timedelta,
        *,
        aging_interval: timedelta = ...,
        worker_tags: Sequence[str] = (),
        definition_hashes: Sequence[bytes] = (),
        wait: timedelta = ...,
    ) -> list[pb.ClaimedTask]:
        """Find, claim and guard up to `limit` tasks at once; with none available, wait up to `wait`."""
        ...

    async def complete_task(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        """The fenced save and the release of the claim in one transaction; False writes nothing."""
        ...

    async def complete_tasks(self, completions: Sequence[TaskCompletion]) -> list[bool | FinalStateError]:
        """complete_task for each, in one call: what each would have answered, FinalStateError in its place."""
        ...


@runtime_checkable
class TaskResultStore(Protocol):
    """Read access to single task results."""

    async def load_task_result(self, instance_id: str, task_id: bytes) -> bytes | None:
        """The task's output, None when it never ran; NotFoundError when the instance is missing."""
        ...


@runtime_checkable
class Lifecycle(Protocol):
    """Starting runs (the crate's prepare_run)."""

    async def prepare_run(
        self,
        instance_id: str,
        definition_hash: bytes,
        input: bytes,
        first_task: pb.FirstTask,
        conflict_policy: ConflictPolicy = enums.CONFLICT_POLICY_FAIL,
    ) -> pb.PrepareRunOutcome:
        """Create a run or resolve the conflict under the policy; raises a RunConflictError subclass."""
        ...


@runtime_checkable
class Backend(TaskClaimStore, WorkerPath, TaskResultStore, Lifecycle, Protocol):
    """Every trait and prepare_run, plus the lifecycle of what serves them."""

    async def check_health(self) -> None:
        """Raise BackendUnavailableError when the storage cannot serve requests."""
        ...

    async def close(self) -> None:
        """Release connections and files; unusable afterwards."""
        ...

    @property
    def description(self) -> str:
        """A short, credential-free description for logs ("sqlite:///var/lib/sayiir.db")."""
        ...
