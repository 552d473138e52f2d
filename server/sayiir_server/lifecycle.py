"""prepare_run: start a workflow run under a conflict policy (SPEC.md §7)."""

from __future__ import annotations

import contextlib

from sayiir_client.errors import (
    AlreadyExistsError,
    BackendError,
    DefinitionMismatchError,
    InvalidInstanceIdError,
    NotFoundError,
    RunBackendFailureError,
)
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.model import MAX_INSTANCE_ID_BYTES, SIGNAL_KINDS, ConflictPolicy, state_of, timestamp, utc_now
from sayiir_server.status import workflow_status
from sayiir_server.store import PersistentBackend

_ATTEMPTS = 3  # a lost insert race re-reads the winner's snapshot; more than one loss in a row is pathological
# Under TERMINATE_EXISTING every lost insert terminates the winner and tries again: with N concurrent
# callers one gets through per round, so a caller may lose up to N - 1 rounds before its own insert lands.
_TERMINATE_ATTEMPTS = 64


async def prepare_run(
    backend: PersistentBackend,
    instance_id: str,
    definition_hash: bytes,
    input: bytes,
    first_task: pb.FirstTask,
    conflict_policy: ConflictPolicy = enums.CONFLICT_POLICY_FAIL,
    trace_parent: str | None = None,
) -> pb.PrepareRunOutcome:
    """Create a run or resolve the conflict; raises a RunConflictError subclass.

    `trace_parent` (the caller's W3C traceparent) goes into a fresh run's snapshot.
    """
    length = len(instance_id.encode())
    if length == 0 or length > MAX_INSTANCE_ID_BYTES:
        raise InvalidInstanceIdError(length, MAX_INSTANCE_ID_BYTES)
    try:
        attempts = _TERMINATE_ATTEMPTS if conflict_policy == enums.CONFLICT_POLICY_TERMINATE_EXISTING else _ATTEMPTS
        for _ in range(attempts):
            existing = await _load_or_none(backend, instance_id)
            if existing is not None:
                outcome = await _resolve_conflict(backend, existing, definition_hash, conflict_policy)
                if outcome is not None:
                    return outcome
            snapshot = fresh_snapshot(instance_id, definition_hash, input, first_task, trace_parent)
            if await backend.insert_snapshot_if_absent(snapshot):
                return pb.PrepareRunOutcome(fresh=pb.FreshRun(snapshot=snapshot))
        raise AlreadyExistsError(instance_id)
    except BackendError as error:
        raise RunBackendFailureError(str(error)) from error


def fresh_snapshot(
    instance_id: str, definition_hash: bytes, input: bytes, first_task: pb.FirstTask, trace_parent: str | None = None
) -> pb.WorkflowSnapshot:
    now = timestamp(utc_now())
    snapshot = pb.WorkflowSnapshot(
        instance_id=instance_id,
        definition_hash=definition_hash,
        in_progress=pb.InProgressState(position=pb.ExecutionPosition(at_task=pb.AtTask(task_id=first_task.task_id))),
        created_at=now,
        updated_at=now,
        initial_input=input,
        task_tags=first_task.tags,
    )
    if first_task.HasField("priority"):
        snapshot.task_priority = first_task.priority
    if trace_parent:
        snapshot.trace_parent = trace_parent
    return snapshot


async def _load_or_none(backend: PersistentBackend, instance_id: str) -> pb.WorkflowSnapshot | None:
    try:
        return await backend.load_snapshot(instance_id)
    except NotFoundError:
        return None


async def _resolve_conflict(
    backend: PersistentBackend,
    existing: pb.WorkflowSnapshot,
    definition_hash: bytes,
    conflict_policy: ConflictPolicy,
) -> pb.PrepareRunOutcome | None:
    """Outcome for an existing run, or None when the caller should go on as fresh (TERMINATE_EXISTING)."""
    if existing.definition_hash != definition_hash:
        raise DefinitionMismatchError(expected=definition_hash, found=existing.definition_hash)
    if conflict_policy == enums.CONFLICT_POLICY_USE_EXISTING:
        status = pb.ExistingStatus(status=workflow_status(existing))
        if state_of(existing) == "completed":
            status.final_output = existing.completed.final_output
        return pb.PrepareRunOutcome(existing_status=status)
    if conflict_policy == enums.CONFLICT_POLICY_TERMINATE_EXISTING:
        with contextlib.suppress(NotFoundError):
            await backend.delete_snapshot(existing.instance_id)
        for kind in SIGNAL_KINDS:
            await backend.clear_signal(existing.instance_id, kind)
        return None
    raise AlreadyExistsError(existing.instance_id)
