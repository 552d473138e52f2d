"""prepare_run's rules: a valid instance id, the fresh snapshot, and what an existing run means under a policy."""

from __future__ import annotations

from datetime import datetime

from sayiir_client.errors import AlreadyExistsError, DefinitionMismatchError, InvalidInstanceIdError
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import MAX_INSTANCE_ID_BYTES, ConflictPolicy, state_of, timestamp
from sayiir_server.domain.status import workflow_status


def check_instance_id(instance_id: str) -> None:
    """RUN-1: an empty id, or one over 256 bytes of UTF-8, is InvalidInstanceIdError (with both lengths)."""
    length = len(instance_id.encode())
    if length == 0 or length > MAX_INSTANCE_ID_BYTES:
        raise InvalidInstanceIdError(length, MAX_INSTANCE_ID_BYTES)


def fresh_snapshot(
    instance_id: str,
    definition_hash: bytes,
    input: bytes,
    first_task: pb.FirstTask,
    now: datetime,
    trace_parent: str | None = None,
) -> pb.WorkflowSnapshot:
    """RUN-4: InProgress at AtTask(first task) with the input, the first task's priority and tags."""
    moment = timestamp(now)
    snapshot = pb.WorkflowSnapshot(
        instance_id=instance_id,
        definition_hash=definition_hash,
        in_progress=pb.InProgressState(position=pb.ExecutionPosition(at_task=pb.AtTask(task_id=first_task.task_id))),
        created_at=moment,
        updated_at=moment,
        initial_input=input,
        task_tags=first_task.tags,
    )
    if first_task.HasField("priority"):
        snapshot.task_priority = first_task.priority
    if trace_parent:
        snapshot.trace_parent = trace_parent
    return snapshot


def existing_run_outcome(
    existing: pb.WorkflowSnapshot, definition_hash: bytes, policy: ConflictPolicy
) -> pb.PrepareRunOutcome | None:
    """RUN-2, RUN-3: the outcome for an existing run, or None when it is to be terminated and started fresh.

    Raises DefinitionMismatchError whatever the policy, AlreadyExistsError under FAIL.
    """
    if existing.definition_hash != definition_hash:
        raise DefinitionMismatchError(expected=definition_hash, found=existing.definition_hash)
    if policy == enums.CONFLICT_POLICY_USE_EXISTING:
        status = pb.ExistingStatus(status=workflow_status(existing))
        if state_of(existing) == "completed":
            status.final_output = existing.completed.final_output
        return pb.PrepareRunOutcome(existing_status=status)
    if policy == enums.CONFLICT_POLICY_TERMINATE_EXISTING:
        return None
    raise AlreadyExistsError(existing.instance_id)
