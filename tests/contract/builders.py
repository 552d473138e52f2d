"""Ids, clocks and snapshots in every state and position, for the contract tests.

Tasks are named by strings ("fetch", "charge") and stored under task_id(name),
the SHA-256 convention of docs/behaviour.md ID-1.3. Time-dependent rules are exercised with
timestamps in the past or future, never with long sleeps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType

from google.protobuf.timestamp_pb2 import Timestamp

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import timestamp, to_datetime, utc_now

CLOCK_SLACK = timedelta(seconds=1)
"""How far a stored "now" may stray from the test's clock readings around the call."""

NO_RESULTS: Mapping[str, bytes] = MappingProxyType({})


def task_id(name: str) -> bytes:
    """The 32-byte id of a task (or node) named `name`: SHA-256 of the name."""
    return hashlib.sha256(name.encode()).digest()


DEFINITION_HASH = task_id("definition: orders v1")
OTHER_DEFINITION_HASH = task_id("definition: orders v2")


def seconds_ago(seconds: float) -> datetime:
    return utc_now() - timedelta(seconds=seconds)


def seconds_from_now(seconds: float) -> datetime:
    return utc_now() + timedelta(seconds=seconds)


def assert_between(moment: Timestamp, before: datetime, after: datetime) -> None:
    """The stored moment was taken between the two readings (give or take CLOCK_SLACK)."""
    taken = to_datetime(moment)
    assert before - CLOCK_SLACK <= taken <= after + CLOCK_SLACK, f"{taken} not within [{before}, {after}]"


def task_results(outputs: Mapping[str, bytes]) -> list[pb.TaskResult]:
    return [pb.TaskResult(task_id=task_id(name), output=output) for name, output in outputs.items()]


def task_position(task: str) -> pb.ExecutionPosition:
    return pb.ExecutionPosition(at_task=pb.AtTask(task_id=task_id(task)))


def delay_position(delay: str, wake_at: datetime, next_task: str | None) -> pb.ExecutionPosition:
    at_delay = pb.AtDelay(delay_id=task_id(delay), entered_at=timestamp(seconds_ago(60)), wake_at=timestamp(wake_at))
    if next_task is not None:
        at_delay.next_task_id = task_id(next_task)
    return pb.ExecutionPosition(at_delay=at_delay)


def signal_position(signal_name: str, wake_at: datetime | None, next_task: str | None) -> pb.ExecutionPosition:
    at_signal = pb.AtSignal(signal_id=task_id(f"wait for {signal_name}"), signal_name=signal_name)
    if wake_at is not None:
        at_signal.wake_at.CopyFrom(timestamp(wake_at))
    if next_task is not None:
        at_signal.next_task_id = task_id(next_task)
    return pb.ExecutionPosition(at_signal=at_signal)


def _snapshot(instance_id: str, updated_at: datetime | None) -> pb.WorkflowSnapshot:
    updated = updated_at or utc_now()
    return pb.WorkflowSnapshot(
        instance_id=instance_id,
        definition_hash=DEFINITION_HASH,
        created_at=timestamp(updated - timedelta(minutes=5)),
        updated_at=timestamp(updated),
    )


def _last_of(completed: Mapping[str, bytes], last_completed: str | None) -> bytes | None:
    if last_completed is not None:
        return task_id(last_completed)
    return task_id(list(completed)[-1]) if completed else None


def in_progress(
    instance_id: str,
    position: pb.ExecutionPosition,
    *,
    completed: Mapping[str, bytes] = NO_RESULTS,
    last_completed: str | None = None,
    initial_input: bytes | None = b"initial input",
    updated_at: datetime | None = None,
    priority: int | None = None,
    tags: Sequence[str] = (),
) -> pb.WorkflowSnapshot:
    """An InProgress snapshot; the last completed task defaults to the last entry of `completed`."""
    snapshot = _snapshot(instance_id, updated_at)
    snapshot.in_progress.CopyFrom(pb.InProgressState(position=position, completed_tasks=task_results(completed)))
    last = _last_of(completed, last_completed)
    if last is not None:
        snapshot.in_progress.last_completed_task_id = last
    if initial_input is not None:
        snapshot.initial_input = initial_input
    if priority is not None:
        snapshot.task_priority = priority
    snapshot.task_tags.extend(tags)
    return snapshot


def at_task(
    instance_id: str,
    task: str = "fetch",
    *,
    completed: Mapping[str, bytes] = NO_RESULTS,
    last_completed: str | None = None,
    initial_input: bytes | None = b"initial input",
    updated_at: datetime | None = None,
    priority: int | None = None,
    tags: Sequence[str] = (),
) -> pb.WorkflowSnapshot:
    """InProgress, positioned AtTask(task)."""
    return in_progress(
        instance_id,
        task_position(task),
        completed=completed,
        last_completed=last_completed,
        initial_input=initial_input,
        updated_at=updated_at,
        priority=priority,
        tags=tags,
    )


def at_delay(
    instance_id: str,
    *,
    wake_at: datetime,
    next_task: str | None = None,
    delay: str = "cool-off",
    completed: Mapping[str, bytes] = NO_RESULTS,
) -> pb.WorkflowSnapshot:
    """InProgress, sleeping AtDelay(delay) until wake_at."""
    return in_progress(instance_id, delay_position(delay, wake_at, next_task), completed=completed)


def at_signal(
    instance_id: str,
    signal_name: str,
    *,
    wake_at: datetime | None = None,
    next_task: str | None = None,
    completed: Mapping[str, bytes] = NO_RESULTS,
) -> pb.WorkflowSnapshot:
    """InProgress, waiting AtSignal for an event named signal_name."""
    return in_progress(instance_id, signal_position(signal_name, wake_at, next_task), completed=completed)


def completed(instance_id: str, final_output: bytes = b"final output") -> pb.WorkflowSnapshot:
    snapshot = _snapshot(instance_id, None)
    snapshot.completed.final_output = final_output
    return snapshot


def failed(instance_id: str, error: str = "card declined") -> pb.WorkflowSnapshot:
    snapshot = _snapshot(instance_id, None)
    snapshot.failed.error = error
    return snapshot


def cancelled(instance_id: str, *, completed: Mapping[str, bytes] = NO_RESULTS) -> pb.WorkflowSnapshot:
    snapshot = _snapshot(instance_id, None)
    snapshot.cancelled.CopyFrom(
        pb.CancelledState(
            reason="customer changed their mind",
            cancelled_by="support",
            cancelled_at=timestamp(utc_now()),
            completed_tasks=task_results(completed),
        )
    )
    return snapshot


def paused(
    instance_id: str,
    task: str = "fetch",
    *,
    completed: Mapping[str, bytes] = NO_RESULTS,
    last_completed: str | None = None,
) -> pb.WorkflowSnapshot:
    """Paused, to resume AtTask(task)."""
    snapshot = _snapshot(instance_id, None)
    snapshot.initial_input = b"initial input"
    snapshot.paused.CopyFrom(
        pb.PausedState(
            reason="maintenance",
            paused_by="operator",
            paused_at=timestamp(utc_now()),
            completed_tasks=task_results(completed),
            position=task_position(task),
        )
    )
    last = _last_of(completed, last_completed)
    if last is not None:
        snapshot.paused.last_completed_task_id = last
    return snapshot


def with_retry(
    snapshot: pb.WorkflowSnapshot, task: str, *, next_retry_at: datetime, last_failed_worker: str | None = None
) -> pb.WorkflowSnapshot:
    """Record that `task` failed once and may be retried from next_retry_at."""
    retry = snapshot.task_retries.add(
        task_id=task_id(task),
        attempts=1,
        policy=pb.RetryPolicy(max_retries=3, backoff_multiplier=2.0),
        last_error="timeout",
        next_retry_at=timestamp(next_retry_at),
    )
    retry.policy.initial_delay.FromSeconds(1)
    if last_failed_worker is not None:
        retry.last_failed_worker = last_failed_worker
    return snapshot


def with_deadline(snapshot: pb.WorkflowSnapshot, task: str) -> pb.WorkflowSnapshot:
    """Give the running `task` a deadline, as a worker does when it starts a task with a timeout."""
    snapshot.task_deadline.task_id = task_id(task)
    snapshot.task_deadline.deadline.CopyFrom(timestamp(seconds_from_now(30)))
    snapshot.task_deadline.timeout.FromSeconds(30)
    return snapshot


def signal_request(reason: str = "requested in a test", requested_by: str = "tester") -> pb.SignalRequest:
    return pb.SignalRequest(reason=reason, requested_by=requested_by, requested_at=timestamp(utc_now()))


def first_task(task: str = "fetch", *, priority: int | None = None, tags: Sequence[str] = ()) -> pb.FirstTask:
    first = pb.FirstTask(task_id=task_id(task), tags=tags)
    if priority is not None:
        first.priority = priority
    return first


def hint_for(snapshot: pb.WorkflowSnapshot, task: str) -> pb.TaskWakeupHint:
    """The wakeup hint a producer would publish when `task` of this snapshot became ready."""
    return pb.TaskWakeupHint(
        instance_id=snapshot.instance_id,
        task_id=task_id(task),
        definition_hash=snapshot.definition_hash,
        task_tags=snapshot.task_tags,
    )
