"""The data the benchmarks send: snapshots of an exact serialized size, task ids, seeded populations."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import timestamp, utc_now

DEFINITION_HASH = hashlib.sha256(b"benchmark-workflow").digest()
TASK_A = hashlib.sha256(b"benchmark-task-a").digest()
TASK_B = hashlib.sha256(b"benchmark-task-b").digest()
SMALL_INPUT = b"i" * 100
"""Initial input of the instances seeded for dispatch and scaling: a small, realistic task argument."""
UNROUTED_TAG = "bench-no-worker"
"""Carried by the instances of the non-dispatch rows: no benchmark worker has it, so none takes their tasks."""


def other_task(task_id: bytes) -> bytes:
    """The task that follows `task_id` in the two-task loop the worker cycle runs forever."""
    return TASK_B if task_id == TASK_A else TASK_A


def ready_snapshot(
    instance_id: str,
    *,
    task_id: bytes = TASK_A,
    initial_input: bytes = SMALL_INPUT,
    tags: tuple[str, ...] = (),
    priority: int | None = None,
    updated_at: datetime | None = None,
) -> pb.WorkflowSnapshot:
    """An InProgress snapshot at AtTask(task_id) with nothing completed: a task ready for dispatch."""
    now = utc_now()
    snapshot = pb.WorkflowSnapshot(
        instance_id=instance_id,
        definition_hash=DEFINITION_HASH,
        in_progress=pb.InProgressState(position=pb.ExecutionPosition(at_task=pb.AtTask(task_id=task_id))),
        created_at=timestamp(now),
        updated_at=timestamp(updated_at or now),
        initial_input=initial_input,
        task_tags=tags,
    )
    if priority is not None:
        snapshot.task_priority = priority
    return snapshot


def completed_snapshot(instance_id: str) -> pb.WorkflowSnapshot:
    """A Completed snapshot: history that dispatch queries must not pay for."""
    now = timestamp(utc_now())
    return pb.WorkflowSnapshot(
        instance_id=instance_id,
        definition_hash=DEFINITION_HASH,
        completed=pb.CompletedState(final_output=SMALL_INPUT),
        created_at=now,
        updated_at=now,
    )


def sized_snapshot(instance_id: str, size: int) -> pb.WorkflowSnapshot:
    """A ready snapshot whose serialized size is exactly `size` bytes, padded through initial_input."""
    snapshot = ready_snapshot(instance_id, initial_input=b"", tags=(UNROUTED_TAG,))
    padding = size - snapshot.ByteSize()
    # The length prefix of initial_input grows with it, so shrink the padding until the total fits.
    while padding > 0:
        snapshot.initial_input = b"x" * padding
        excess = snapshot.ByteSize() - size
        if excess <= 0:
            break
        padding -= excess
    if snapshot.ByteSize() != size:
        raise ValueError(f"cannot build a snapshot of exactly {size} bytes for {instance_id!r}")
    return snapshot


def advanced_snapshot(current: pb.WorkflowSnapshot, output: bytes) -> pb.WorkflowSnapshot:
    """What a worker saves after running the current task: its result recorded, the other task next.

    Only the latest result is kept, so the snapshot keeps a constant size however many cycles run.
    """
    done = current.in_progress.position.at_task.task_id
    advanced = pb.WorkflowSnapshot()
    advanced.CopyFrom(current)
    running = advanced.in_progress
    del running.completed_tasks[:]
    running.completed_tasks.add(task_id=done, output=output)
    running.last_completed_task_id = done
    running.position.CopyFrom(pb.ExecutionPosition(at_task=pb.AtTask(task_id=other_task(done))))
    advanced.updated_at.CopyFrom(timestamp(utc_now()))
    return advanced


def scaling_snapshot(index: int, now: datetime) -> pb.WorkflowSnapshot:
    """The `index`-th seeded InProgress instance: ready, priorities 1–5, updated over the last hour."""
    return ready_snapshot(
        f"scale-{index:07d}",
        priority=1 + index % 5,
        updated_at=now - timedelta(seconds=index % 3600),
    )
