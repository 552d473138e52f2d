"""Workflows in every state, saved through the typed client, for the console's pages to show."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration

from sayiir_client import PersistenceClient
from sayiir_client.v1 import messages_pb2 as pb


def node_id(name: str) -> bytes:
    """A 32-byte id: SHA-256 of a name, as TaskId.from_name makes them."""
    return hashlib.sha256(name.encode()).digest()


DEFINITION = node_id("definition: console tests")
OTHER_DEFINITION = node_id("definition: another workflow")


def _stamped(snapshot: pb.WorkflowSnapshot, updated: datetime) -> pb.WorkflowSnapshot:
    snapshot.created_at.FromDatetime(updated - timedelta(minutes=5))
    snapshot.updated_at.FromDatetime(updated)
    return snapshot


def at_task(
    instance_id: str,
    task: str = "charge-card",
    *,
    done: tuple[tuple[str, bytes], ...] = (),
    tags: tuple[str, ...] = (),
    priority: int | None = None,
    definition: bytes = DEFINITION,
    updated: datetime | None = None,
    **fields: Any,
) -> pb.WorkflowSnapshot:
    """InProgress at `task`, after the (name, output) tasks of `done`."""
    completed = [pb.TaskResult(task_id=node_id(name), output=output) for name, output in done]
    state = pb.InProgressState(
        position=pb.ExecutionPosition(at_task=pb.AtTask(task_id=node_id(task))), completed_tasks=completed
    )
    if done:
        state.last_completed_task_id = node_id(done[-1][0])
    snapshot = pb.WorkflowSnapshot(
        instance_id=instance_id,
        definition_hash=definition,
        in_progress=state,
        initial_input=b'{"order": 42}',
        task_tags=tags,
        **fields,
    )
    if priority is not None:
        snapshot.task_priority = priority
    return _stamped(snapshot, updated or datetime.now(UTC))


def failing(instance_id: str, task: str = "charge-card", *, attempts: int = 2, **fields: Any) -> pb.WorkflowSnapshot:
    """InProgress at `task`, which failed `attempts` times and waits for its next retry."""
    snapshot = at_task(instance_id, task, **fields)
    retry = pb.TaskRetryState(
        task_id=node_id(task),
        attempts=attempts,
        policy=pb.RetryPolicy(max_retries=5, initial_delay=Duration(seconds=30), backoff_multiplier=2.0),
        last_error="card declined: insufficient funds",
        last_failed_worker="worker-b",
    )
    retry.next_retry_at.FromDatetime(datetime.now(UTC) + timedelta(minutes=10))
    snapshot.task_retries.append(retry)
    return snapshot


def completed(instance_id: str, output: bytes = b'{"receipt": "R-1"}', **fields: Any) -> pb.WorkflowSnapshot:
    snapshot = pb.WorkflowSnapshot(
        instance_id=instance_id, definition_hash=DEFINITION, completed=pb.CompletedState(final_output=output)
    )
    return _stamped(snapshot, fields.get("updated") or datetime.now(UTC))


def failed(instance_id: str, error: str = "inventory service: timeout") -> pb.WorkflowSnapshot:
    snapshot = pb.WorkflowSnapshot(
        instance_id=instance_id, definition_hash=DEFINITION, failed=pb.FailedState(error=error)
    )
    return _stamped(snapshot, datetime.now(UTC))


def save(client: PersistenceClient, *snapshots: pb.WorkflowSnapshot) -> None:
    for snapshot in snapshots:
        client.save_snapshot(snapshot)


def claim(
    client: PersistenceClient, instance_id: str, worker: str, task: str = "charge-card", ttl_seconds: int = 300
) -> None:
    assert client.claim_task(instance_id, node_id(task), worker, timedelta(seconds=ttl_seconds)) is not None
