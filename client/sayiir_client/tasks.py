"""Reading a dispatched task (docs/behaviour.md SIZE-1.1): its input travels once, inside its snapshot."""

from __future__ import annotations

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
