"""Reading a dispatched task (docs/behaviour.md SIZE-1.1): its input travels once, inside its snapshot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from sayiir_client.v1 import messages_pb2 as pb


def task_input(snapshot: pb.WorkflowSnapshot) -> bytes:
    """The input of the snapshot's current task: the initial input before any task completed, else the output
    of the last completed task (empty when there is none)."""
    running = snapshot.in_progress
    if not running.HasField("last_completed_task_id"):
        return snapshot.initial_input
    for result in running.completed_tasks:
        if result.task_id == running.last_completed_task_id:
            return result.output
    return b""


def whole_task(task: pb.AvailableTask) -> pb.AvailableTask:
    """The task with `input` filled in from its snapshot when the server sent it once (input_in_snapshot)."""
    if task.input_in_snapshot:
        task.input = task_input(task.snapshot)
        task.input_in_snapshot = False
    return task


class TaskCompletion(NamedTuple):
    """One completion of a CompleteTasks call: what CompleteTask takes."""

    snapshot: pb.WorkflowSnapshot
    """The snapshot after the task (completed_with, advanced_to, failed_attempt)."""
    task_id: bytes
    worker_id: str


def _copy(snapshot: pb.WorkflowSnapshot) -> pb.WorkflowSnapshot:
    duplicate = pb.WorkflowSnapshot()
    duplicate.CopyFrom(snapshot)
    return duplicate


def completed_with(snapshot: pb.WorkflowSnapshot, output: bytes) -> pb.WorkflowSnapshot:
    """The snapshot of a workflow whose last task returned `output`: Completed with it as the final output."""
    done = _copy(snapshot)
    done.completed.final_output = output
    done.ClearField("task_deadline")
    done.updated_at.GetCurrentTime()
    return done


def advanced_to(
    snapshot: pb.WorkflowSnapshot,
    task_id: bytes,
    output: bytes,
    next_task_id: bytes,
    next_task_tags: Sequence[str] = (),
) -> pb.WorkflowSnapshot:
    """The snapshot after task `task_id` returned `output`: its result recorded, positioned at `next_task_id`
    (which only workers carrying every one of `next_task_tags` are offered)."""
    advanced = _copy(snapshot)
    running = advanced.in_progress
    for result in running.completed_tasks:
        if result.task_id == task_id:
            result.output = output
            break
    else:
        running.completed_tasks.add(task_id=task_id, output=output)
    running.last_completed_task_id = task_id
    running.position.CopyFrom(pb.ExecutionPosition(at_task=pb.AtTask(task_id=next_task_id)))
    del advanced.task_tags[:]
    advanced.task_tags.extend(next_task_tags)
    advanced.ClearField("task_deadline")
    advanced.updated_at.GetCurrentTime()
    return advanced


def failed_attempt(
    snapshot: pb.WorkflowSnapshot,
    task_id: bytes,
    worker_id: str,
    error: BaseException,
    now: datetime,
    backoff: Callable[[int], timedelta],
) -> pb.WorkflowSnapshot:
    """The snapshot after an attempt of `task_id` failed on `worker_id` (WORKER-4): the retry recorded.

    attempts + 1, the error, this worker (anti-affinity sends the task elsewhere first) and the next try after
    the backoff (the policy's when the retry state has one, else `backoff(attempts)`). Past the policy's
    max_retries the workflow fails with the error instead.
    """
    retried = _copy(snapshot)
    retry = next((entry for entry in retried.task_retries if entry.task_id == task_id), None)
    if retry is None:
        retry = retried.task_retries.add(task_id=task_id)
    retry.attempts += 1
    retry.last_error = f"{type(error).__name__}: {error}"
    retry.last_failed_worker = worker_id
    policy = retry.policy if retry.HasField("policy") else None
    if policy is not None and policy.max_retries and retry.attempts > policy.max_retries:
        retried.failed.error = retry.last_error
    else:
        retry.next_retry_at.FromDatetime(now + _delay(policy, retry.attempts, backoff))
    retried.ClearField("task_deadline")
    retried.updated_at.FromDatetime(now)
    return retried


def _delay(policy: pb.RetryPolicy | None, attempts: int, backoff: Callable[[int], timedelta]) -> timedelta:
    if policy is None or not policy.HasField("initial_delay"):
        return backoff(attempts)
    delay = policy.initial_delay.ToTimedelta() * (policy.backoff_multiplier or 1.0) ** (attempts - 1)
    return min(delay, policy.max_delay.ToTimedelta()) if policy.HasField("max_delay") else delay
