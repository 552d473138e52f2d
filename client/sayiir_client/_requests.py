"""Every RPC of the clients without its I/O: the request built from the Python arguments, and the result.

A client method builds its call here, sends `call.request` through the stub of its
gRPC flavour, and returns `call.result(response)`. So what the blocking and the
asyncio client send and return is written once; they differ only in how they wait.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from grpc_health.v1 import health_pb2

from sayiir_client import _wire
from sayiir_client._wire import ConflictPolicy, ControlSignal, SignalKind, WorkflowOrder, WorkflowState
from sayiir_client.errors import BackendUnavailableError, FinalStateError
from sayiir_client.tasks import TaskCompletion, whole_task
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_Result = TypeVar("_Result", covariant=True)


@dataclass(frozen=True)
class UnaryCall(Generic[_Request, _Response, _Result]):
    """One unary call minus the sending: its request, and how its response becomes the method's result."""

    request: _Request
    result: Callable[[_Response], _Result]
    extra_wait: timedelta = _wire.NO_EXTRA_WAIT
    """Time the server is meant to hold the call (a long poll), added to the client's deadline."""


def _nothing(response: object) -> None:
    return None


# --- health ------------------------------------------------------------------------------------------------------


def check_health(description: str) -> UnaryCall[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse, None]:
    def require_serving(response: health_pb2.HealthCheckResponse) -> None:
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            raise BackendUnavailableError(f"{description} is {name}")

    return UnaryCall(health_pb2.HealthCheckRequest(service=_wire.HEALTH_SERVICE), require_serving)


# --- SnapshotStore -----------------------------------------------------------------------------------------------


def save_snapshot(snapshot: pb.WorkflowSnapshot) -> UnaryCall[rr.SaveSnapshotRequest, rr.SaveSnapshotResponse, None]:
    return UnaryCall(rr.SaveSnapshotRequest(snapshot=snapshot), _nothing)


def save_task_result(
    instance_id: str, task_id: bytes, output: bytes
) -> UnaryCall[rr.SaveTaskResultRequest, rr.SaveTaskResultResponse, None]:
    return UnaryCall(rr.SaveTaskResultRequest(instance_id=instance_id, task_id=task_id, output=output), _nothing)


def load_snapshot(instance_id: str) -> UnaryCall[rr.LoadSnapshotRequest, rr.LoadSnapshotResponse, pb.WorkflowSnapshot]:
    return UnaryCall(rr.LoadSnapshotRequest(instance_id=instance_id), _loaded_snapshot)


def _loaded_snapshot(response: rr.LoadSnapshotResponse) -> pb.WorkflowSnapshot:
    return response.snapshot


def delete_snapshot(instance_id: str) -> UnaryCall[rr.DeleteSnapshotRequest, rr.DeleteSnapshotResponse, None]:
    return UnaryCall(rr.DeleteSnapshotRequest(instance_id=instance_id), _nothing)


class SnapshotListing:
    """One walk through ListSnapshots pages: call `next_page()` until `done`; each result is that page's ids."""

    def __init__(self, page_size: int = _wire.MAX_PAGE_SIZE, after: str | None = None, limit: int | None = None):
        """Pages of `page_size` ids greater than `after`, until the last page or until `limit` ids were listed."""
        self._page_size = page_size
        self._limit = limit
        self._start_after = after or ""
        self._token = ""
        self._listed = 0
        self.done = limit is not None and limit <= 0

    def next_page(self) -> UnaryCall[rr.ListSnapshotsRequest, rr.ListSnapshotsResponse, Sequence[str]]:
        page_size = self._page_size if self._limit is None else min(self._limit - self._listed, self._page_size)
        start_after = "" if self._token else self._start_after
        request = rr.ListSnapshotsRequest(page_size=page_size, page_token=self._token, start_after=start_after)
        return UnaryCall(request, self._read)

    def _read(self, response: rr.ListSnapshotsResponse) -> Sequence[str]:
        self._listed += len(response.instance_ids)
        self._token = response.next_page_token
        self.done = not self._token or (self._limit is not None and self._listed >= self._limit)
        return response.instance_ids


@dataclass(frozen=True)
class WorkflowPage:
    """One page of ListWorkflows: the summaries, and the token of the next page ("" after the last)."""

    workflows: list[pb.WorkflowSummary]
    next_page_token: str


def workflow_filters(
    states: Sequence[WorkflowState] = (),
    definition_hash: bytes | None = None,
    tag: str | None = None,
    prefix: str = "",
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    order: WorkflowOrder = enums.WORKFLOW_ORDER_NEWEST_FIRST,
) -> rr.ListWorkflowsRequest:
    """A ListWorkflows request holding the filters and order (no paging yet)."""
    request = rr.ListWorkflowsRequest(states=states, instance_id_prefix=prefix, order=order)
    if definition_hash is not None:
        request.definition_hash = definition_hash
    if tag is not None:
        request.tag = tag
    if updated_after is not None:
        request.updated_after.FromDatetime(updated_after)
    if updated_before is not None:
        request.updated_before.FromDatetime(updated_before)
    return request


def list_workflows(
    filters: rr.ListWorkflowsRequest, page_size: int, page_token: str
) -> UnaryCall[rr.ListWorkflowsRequest, rr.ListWorkflowsResponse, WorkflowPage]:
    request = rr.ListWorkflowsRequest()
    request.CopyFrom(filters)
    request.page_size = page_size
    request.page_token = page_token
    return UnaryCall(request, _workflow_page)


def _workflow_page(response: rr.ListWorkflowsResponse) -> WorkflowPage:
    return WorkflowPage(list(response.workflows), response.next_page_token)


# --- SignalStore -------------------------------------------------------------------------------------------------


def store_signal(
    instance_id: str, kind: SignalKind, request: pb.SignalRequest
) -> UnaryCall[rr.StoreSignalRequest, rr.StoreSignalResponse, None]:
    return UnaryCall(rr.StoreSignalRequest(instance_id=instance_id, kind=kind, request=request), _nothing)


def get_signal(
    instance_id: str, kind: SignalKind
) -> UnaryCall[rr.GetSignalRequest, rr.GetSignalResponse, pb.SignalRequest | None]:
    return UnaryCall(rr.GetSignalRequest(instance_id=instance_id, kind=kind), _pending_signal)


def _pending_signal(response: rr.GetSignalResponse) -> pb.SignalRequest | None:
    return response.request if response.HasField("request") else None


def clear_signal(instance_id: str, kind: SignalKind) -> UnaryCall[rr.ClearSignalRequest, rr.ClearSignalResponse, None]:
    return UnaryCall(rr.ClearSignalRequest(instance_id=instance_id, kind=kind), _nothing)


def send_event(
    instance_id: str, signal_name: str, payload: bytes
) -> UnaryCall[rr.SendEventRequest, rr.SendEventResponse, None]:
    return UnaryCall(rr.SendEventRequest(instance_id=instance_id, signal_name=signal_name, payload=payload), _nothing)


def consume_event(
    instance_id: str, signal_name: str
) -> UnaryCall[rr.ConsumeEventRequest, rr.ConsumeEventResponse, bytes | None]:
    return UnaryCall(rr.ConsumeEventRequest(instance_id=instance_id, signal_name=signal_name), _consumed_payload)


def _consumed_payload(response: rr.ConsumeEventResponse) -> bytes | None:
    return response.payload if response.HasField("payload") else None


def check_and_cancel(
    instance_id: str, interrupted_at_task: bytes | None
) -> UnaryCall[rr.CheckAndCancelRequest, rr.CheckAndCancelResponse, bool]:
    request = rr.CheckAndCancelRequest(instance_id=instance_id, interrupted_at_task=interrupted_at_task)
    return UnaryCall(request, _cancelled)


def _cancelled(response: rr.CheckAndCancelResponse) -> bool:
    return response.cancelled


def check_and_pause(instance_id: str) -> UnaryCall[rr.CheckAndPauseRequest, rr.CheckAndPauseResponse, bool]:
    return UnaryCall(rr.CheckAndPauseRequest(instance_id=instance_id), _paused)


def _paused(response: rr.CheckAndPauseResponse) -> bool:
    return response.paused


def check_control_signals(
    instance_id: str, interrupted_at_task: bytes | None
) -> UnaryCall[rr.CheckControlSignalsRequest, rr.CheckControlSignalsResponse, ControlSignal | None]:
    request = rr.CheckControlSignalsRequest(instance_id=instance_id, interrupted_at_task=interrupted_at_task)
    return UnaryCall(request, _applied_control_signal)


def _applied_control_signal(response: rr.CheckControlSignalsResponse) -> ControlSignal | None:
    return response.control_signal if response.HasField("control_signal") else None


def unpause(instance_id: str) -> UnaryCall[rr.UnpauseRequest, rr.UnpauseResponse, pb.WorkflowSnapshot]:
    return UnaryCall(rr.UnpauseRequest(instance_id=instance_id), _unpaused_snapshot)


def _unpaused_snapshot(response: rr.UnpauseResponse) -> pb.WorkflowSnapshot:
    return response.snapshot


# --- TaskClaimStore ----------------------------------------------------------------------------------------------


def claim_task(
    instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta | None
) -> UnaryCall[rr.ClaimTaskRequest, rr.ClaimTaskResponse, pb.TaskClaim | None]:
    request = rr.ClaimTaskRequest(
        instance_id=instance_id, task_id=task_id, worker_id=worker_id, ttl=_wire.optional_duration(ttl)
    )
    return UnaryCall(request, _new_claim)


def _new_claim(response: rr.ClaimTaskResponse) -> pb.TaskClaim | None:
    return response.claim if response.HasField("claim") else None


def release_task_claim(
    instance_id: str, task_id: bytes, worker_id: str
) -> UnaryCall[rr.ReleaseTaskClaimRequest, rr.ReleaseTaskClaimResponse, None]:
    request = rr.ReleaseTaskClaimRequest(instance_id=instance_id, task_id=task_id, worker_id=worker_id)
    return UnaryCall(request, _nothing)


def extend_task_claim(
    instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta
) -> UnaryCall[rr.ExtendTaskClaimRequest, rr.ExtendTaskClaimResponse, None]:
    request = rr.ExtendTaskClaimRequest(
        instance_id=instance_id, task_id=task_id, worker_id=worker_id, ttl=_wire.duration(ttl)
    )
    return UnaryCall(request, _nothing)


def find_available_tasks(
    worker_id: str, limit: int, aging_interval: timedelta, worker_tags: Sequence[str]
) -> UnaryCall[rr.FindAvailableTasksRequest, rr.FindAvailableTasksResponse, list[pb.AvailableTask]]:
    request = rr.FindAvailableTasksRequest(
        worker_id=worker_id, limit=limit, aging_interval=_wire.duration(aging_interval), worker_tags=worker_tags
    )
    return UnaryCall(request, _available_tasks)


def _available_tasks(response: rr.FindAvailableTasksResponse) -> list[pb.AvailableTask]:
    return [whole_task(task) for task in response.tasks]


def claim_available_tasks(
    worker_id: str,
    limit: int,
    ttl: timedelta,
    aging_interval: timedelta,
    worker_tags: Sequence[str],
    definition_hashes: Sequence[bytes],
    wait: timedelta,
) -> UnaryCall[rr.ClaimAvailableTasksRequest, rr.ClaimAvailableTasksResponse, list[pb.ClaimedTask]]:
    request = rr.ClaimAvailableTasksRequest(
        worker_id=worker_id,
        limit=limit,
        ttl=_wire.duration(ttl),
        aging_interval=_wire.duration(aging_interval),
        worker_tags=worker_tags,
        definition_hashes=definition_hashes,
        wait=_wire.duration(wait),
    )
    return UnaryCall(request, _claimed_tasks, extra_wait=wait)


def _claimed_tasks(response: rr.ClaimAvailableTasksResponse) -> list[pb.ClaimedTask]:
    return [pb.ClaimedTask(task=whole_task(claimed.task), claim=claimed.claim) for claimed in response.tasks]


def complete_task(
    snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str
) -> UnaryCall[rr.CompleteTaskRequest, rr.CompleteTaskResponse, bool]:
    request = rr.CompleteTaskRequest(snapshot=snapshot, task_id=task_id, worker_id=worker_id)
    return UnaryCall(request, _completed)


def _completed(response: rr.CompleteTaskResponse) -> bool:
    return response.saved


def complete_tasks(
    completions: Sequence[TaskCompletion],
) -> UnaryCall[rr.CompleteTasksRequest, rr.CompleteTasksResponse, list[bool | FinalStateError]]:
    request = rr.CompleteTasksRequest(
        completions=[
            rr.CompleteTaskRequest(snapshot=snapshot, task_id=task_id, worker_id=worker_id)
            for snapshot, task_id, worker_id in completions
        ]
    )
    return UnaryCall(request, _each_completed)


def _each_completed(response: rr.CompleteTasksResponse) -> list[bool | FinalStateError]:
    return [FinalStateError(result.final_state) if result.final_state else result.saved for result in response.results]


def wait_for_wakeup(
    timeout: timedelta, worker_tags: Sequence[str]
) -> UnaryCall[rr.WaitForWakeupRequest, rr.WaitForWakeupResponse, pb.TaskWakeupHint | None]:
    request = rr.WaitForWakeupRequest(timeout=_wire.duration(timeout), worker_tags=worker_tags)
    return UnaryCall(request, _hint_before_timeout, extra_wait=timeout)


def _hint_before_timeout(response: rr.WaitForWakeupResponse) -> pb.TaskWakeupHint | None:
    return response.hint if response.HasField("hint") else None


def watch_wakeups(worker_tags: Sequence[str]) -> rr.WatchWakeupsRequest:
    """The request opening a WatchWakeups stream (each response carries one hint)."""
    return rr.WatchWakeupsRequest(worker_tags=worker_tags)


def find_hinted_task(
    hint: pb.TaskWakeupHint,
) -> UnaryCall[rr.FindHintedTaskRequest, rr.FindHintedTaskResponse, pb.AvailableTask | None]:
    return UnaryCall(rr.FindHintedTaskRequest(hint=hint), _hinted_task)


def _hinted_task(response: rr.FindHintedTaskResponse) -> pb.AvailableTask | None:
    return whole_task(response.task) if response.HasField("task") else None


def save_snapshot_fenced(
    snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str
) -> UnaryCall[rr.SaveSnapshotFencedRequest, rr.SaveSnapshotFencedResponse, bool]:
    request = rr.SaveSnapshotFencedRequest(snapshot=snapshot, task_id=task_id, worker_id=worker_id)
    return UnaryCall(request, _saved)


def _saved(response: rr.SaveSnapshotFencedResponse) -> bool:
    return response.saved


# --- TaskResultStore ---------------------------------------------------------------------------------------------


def load_task_result(
    instance_id: str, task_id: bytes
) -> UnaryCall[rr.LoadTaskResultRequest, rr.LoadTaskResultResponse, bytes | None]:
    return UnaryCall(rr.LoadTaskResultRequest(instance_id=instance_id, task_id=task_id), _task_output)


def _task_output(response: rr.LoadTaskResultResponse) -> bytes | None:
    return response.output if response.HasField("output") else None


# --- Lifecycle ---------------------------------------------------------------------------------------------------


def prepare_run(
    instance_id: str, definition_hash: bytes, input: bytes, first_task: pb.FirstTask, conflict_policy: ConflictPolicy
) -> UnaryCall[rr.PrepareRunRequest, rr.PrepareRunResponse, pb.PrepareRunOutcome]:
    request = rr.PrepareRunRequest(
        instance_id=instance_id,
        definition_hash=definition_hash,
        input=input,
        first_task=first_task,
        conflict_policy=conflict_policy,
    )
    return UnaryCall(request, _run_outcome)


def _run_outcome(response: rr.PrepareRunResponse) -> pb.PrepareRunOutcome:
    return response.outcome
