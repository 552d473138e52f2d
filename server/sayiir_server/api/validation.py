"""Request validation: every malformed field becomes one InvalidFieldError naming the field.

Pure functions over protobuf values, called by the servicers before any storage
access, so a malformed request never reaches a backend (docs/behaviour.md ID: a wrong id
is a client error, never a server error). Each function returns the value in
the form the storage Protocols take (timedelta for durations, None for absent).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import cast

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.domain.errors import InvalidFieldError
from sayiir_server.domain.listing import STATES, WorkflowFilter
from sayiir_server.domain.model import ID_BYTES, MAX_INSTANCE_ID_BYTES, ConflictPolicy, SignalKind, to_datetime
from sayiir_server.domain.sizes import MAX_TRACE_PARENT_BYTES
from sayiir_server.domain.traits import MAX_FIND_LIMIT

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_TTL = timedelta(days=36_500)
"""Longest claim lease: now + ttl must stay a representable time; absent ttl already means "never expires"."""

MIN_PRIORITY, MAX_PRIORITY = 1, 5

# google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_MIN_TIMESTAMP_SECONDS = -62_135_596_800
_MAX_TIMESTAMP_SECONDS = 253_402_300_799
# google.protobuf.Duration: about ±10,000 years.
_MAX_DURATION_SECONDS = 315_576_000_000
_MAX_NANOS = 999_999_999

_SIGNAL_KINDS = frozenset({enums.SIGNAL_KIND_CANCEL, enums.SIGNAL_KIND_PAUSE})
_STATE_NAMES = {value: name for name, value in STATES.items()}
_ORDERS = frozenset(enums.WorkflowOrder.values())
_CONFLICT_POLICIES = frozenset(enums.ConflictPolicy.values())


# --- scalars -------------------------------------------------------------------------------------------------------


def text(value: str, field: str) -> str:
    """Text that storage keeps in indexed columns: no NUL characters (PostgreSQL text cannot hold them)."""
    if "\x00" in value:
        raise InvalidFieldError(field, "must not contain NUL characters")
    return value


def tags(values: Iterable[str], field: str) -> tuple[str, ...]:
    return tuple(text(value, f"{field}[{index}]") for index, value in enumerate(values))


def instance_id(value: str, field: str = "instance_id") -> str:
    text(value, field)
    length = len(value.encode())
    if length == 0:
        raise InvalidFieldError(field, "must not be empty")
    if length > MAX_INSTANCE_ID_BYTES:
        raise InvalidFieldError(field, f"is {length} bytes long, the maximum is {MAX_INSTANCE_ID_BYTES}")
    return value


def id_bytes(value: bytes, field: str) -> bytes:
    """A task id, definition hash or node id: exactly 32 bytes."""
    if len(value) != ID_BYTES:
        raise InvalidFieldError(field, f"must be {ID_BYTES} bytes, got {len(value)}")
    return value


def optional_id_bytes(message: Message, name: str, field: str) -> bytes | None:
    """An `optional bytes` id: None when absent, else exactly 32 bytes."""
    if not message.HasField(name):
        return None
    value: bytes = getattr(message, name)
    return id_bytes(value, field)


MAX_WORKER_ID_BYTES = 256


def worker_id(value: str, field: str = "worker_id") -> str:
    """ID-1.4: 1 to 256 bytes of UTF-8, no NUL."""
    text(value, field)
    if not value:
        raise InvalidFieldError(field, "must not be empty")
    length = len(value.encode())
    if length > MAX_WORKER_ID_BYTES:
        raise InvalidFieldError(field, f"is {length} bytes long, the maximum is {MAX_WORKER_ID_BYTES}")
    return value


def definition_hashes(values: Iterable[bytes], field: str = "definition_hashes") -> tuple[bytes, ...]:
    return tuple(id_bytes(value, f"{field}[{index}]") for index, value in enumerate(values))


def signal_name(value: str, field: str = "signal_name") -> str:
    text(value, field)
    if not value:
        raise InvalidFieldError(field, "must not be empty")
    return value


def payload(value: bytes, limit: int, field: str = "payload") -> bytes:
    """SIZE-2.2: an event payload no snapshot could hold once recorded is refused when sent."""
    if len(value) > limit:
        raise InvalidFieldError(field, f"is {len(value)} bytes, over the limit of {limit} (--max-message-bytes)")
    return value


def signal_kind(value: int, field: str = "kind") -> SignalKind:
    if value not in _SIGNAL_KINDS:
        raise InvalidFieldError(field, f"must be SIGNAL_KIND_CANCEL or SIGNAL_KIND_PAUSE, got {value}")
    return cast(SignalKind, value)


def conflict_policy(value: int, field: str = "conflict_policy") -> ConflictPolicy:
    """A known ConflictPolicy; UNSPECIFIED means FAIL (the default)."""
    if value not in _CONFLICT_POLICIES:
        raise InvalidFieldError(field, f"unknown conflict policy {value}")
    if value == enums.CONFLICT_POLICY_UNSPECIFIED:
        return enums.CONFLICT_POLICY_FAIL
    return cast(ConflictPolicy, value)


def priority(value: int, field: str) -> int:
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise InvalidFieldError(field, f"must be {MIN_PRIORITY} to {MAX_PRIORITY}, got {value}")
    return value


def find_limit(value: int, field: str = "limit") -> int:
    if not 1 <= value <= MAX_FIND_LIMIT:
        raise InvalidFieldError(field, f"must be 1 to {MAX_FIND_LIMIT}, got {value}")
    return value


def page_size(value: int, field: str = "page_size") -> int:
    """0 means the default page size."""
    if value < 0 or value > MAX_PAGE_SIZE:
        raise InvalidFieldError(field, f"must be 0 (default {DEFAULT_PAGE_SIZE}) to {MAX_PAGE_SIZE}, got {value}")
    return value or DEFAULT_PAGE_SIZE


# --- well-known types ----------------------------------------------------------------------------------------------


def timestamp(value: Timestamp, field: str) -> Timestamp:
    if not _MIN_TIMESTAMP_SECONDS <= value.seconds <= _MAX_TIMESTAMP_SECONDS:
        raise InvalidFieldError(field, "seconds out of range (years 1 to 9999)")
    if not 0 <= value.nanos <= _MAX_NANOS:
        raise InvalidFieldError(field, "nanos must be 0 to 999999999")
    return value


def duration(value: Duration, field: str) -> timedelta:
    if abs(value.seconds) > _MAX_DURATION_SECONDS:
        raise InvalidFieldError(field, "seconds out of range (±315576000000)")
    if abs(value.nanos) > _MAX_NANOS:
        raise InvalidFieldError(field, "nanos must be -999999999 to 999999999")
    if (value.seconds > 0 and value.nanos < 0) or (value.seconds < 0 and value.nanos > 0):
        raise InvalidFieldError(field, "seconds and nanos must have the same sign")
    return value.ToTimedelta()


def non_negative_duration(value: Duration, field: str) -> timedelta:
    result = duration(value, field)
    # Checked on the fields: timedelta rounds a sub-microsecond negative duration to zero.
    if value.seconds < 0 or value.nanos < 0:
        raise InvalidFieldError(field, "must not be negative")
    return result


def required(message: Message, name: str, field: str) -> None:
    if not message.HasField(name):
        raise InvalidFieldError(field, "is required")


def claim_ttl(
    request: rr.ClaimTaskRequest | rr.ExtendTaskClaimRequest | rr.ClaimAvailableTasksRequest,
    *,
    is_required: bool,
    field: str = "ttl",
) -> timedelta | None:
    """A lease length: not negative, at most MAX_TTL; absent is None (never expires) unless required."""
    if not request.HasField("ttl"):
        if is_required:
            raise InvalidFieldError(field, "is required")
        return None
    ttl = non_negative_duration(request.ttl, field)
    if ttl > MAX_TTL:
        raise InvalidFieldError(field, f"must be at most {MAX_TTL.days} days")
    return ttl


def wait_timeout(request: rr.WaitForWakeupRequest, cap: timedelta, field: str = "timeout") -> timedelta:
    """WaitForWakeup's timeout: required, not negative; longer than the server's cap is clamped to the cap."""
    required(request, "timeout", field)
    return min(non_negative_duration(request.timeout, field), cap)


def claim_wait(request: rr.ClaimAvailableTasksRequest, cap: timedelta, field: str = "wait") -> timedelta:
    """ClaimAvailableTasks' wait: absent is zero (answer at once), not negative, longer than the cap is the cap."""
    if not request.HasField("wait"):
        return timedelta(0)
    return min(non_negative_duration(request.wait, field), cap)


def aging_interval(
    request: rr.FindAvailableTasksRequest | rr.ClaimAvailableTasksRequest, field: str = "aging_interval"
) -> timedelta:
    """Any in-range duration; absent, zero or negative is allowed (the engine counts each as 1 s: DISP-4.3)."""
    if not request.HasField("aging_interval"):
        return timedelta(0)
    return duration(request.aging_interval, field)


def start_after(request: rr.ListSnapshotsRequest, field: str = "start_after") -> str:
    """ListSnapshots' resume point instead of a token: any text (no NUL); not together with a page_token."""
    if request.start_after and request.page_token:
        raise InvalidFieldError(field, "must not be given together with page_token")
    return text(request.start_after, field)


def workflow_filter(request: rr.ListWorkflowsRequest) -> WorkflowFilter:
    """LIST-1: the filters of a ListWorkflows request, each checked and named in errors."""
    states = []
    for index, state in enumerate(request.states):
        name = _STATE_NAMES.get(state)
        if name is None:
            raise InvalidFieldError(f"states[{index}]", f"must be a WorkflowState other than UNSPECIFIED, got {state}")
        states.append(name)
    if request.order not in _ORDERS:
        raise InvalidFieldError("order", f"unknown WorkflowOrder {request.order}")
    definition = id_bytes(request.definition_hash, "definition_hash") if request.HasField("definition_hash") else None
    prefix = text(request.instance_id_prefix, "instance_id_prefix")
    if len(prefix.encode()) > MAX_INSTANCE_ID_BYTES:
        raise InvalidFieldError("instance_id_prefix", f"must be at most {MAX_INSTANCE_ID_BYTES} bytes")
    return WorkflowFilter(
        states=tuple(dict.fromkeys(states)),
        definition_hash=definition,
        tag=text(request.tag, "tag") if request.HasField("tag") else None,
        prefix=prefix,
        updated_after=_optional_time(request, "updated_after"),
        updated_before=_optional_time(request, "updated_before"),
        newest_first=request.order != enums.WORKFLOW_ORDER_INSTANCE_ID,
    )


def _optional_time(message: Message, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    return to_datetime(timestamp(getattr(message, name), name))


# --- messages ------------------------------------------------------------------------------------------------------


def signal_request(value: pb.SignalRequest, field: str = "request") -> pb.SignalRequest:
    _optional_timestamp(value, "requested_at", field)
    return value


def first_task(value: pb.FirstTask, field: str = "first_task") -> pb.FirstTask:
    id_bytes(value.task_id, f"{field}.task_id")
    if value.HasField("priority"):
        priority(value.priority, f"{field}.priority")
    tags(value.tags, f"{field}.tags")
    return value


def wakeup_hint(value: pb.TaskWakeupHint, field: str = "hint") -> pb.TaskWakeupHint:
    instance_id(value.instance_id, f"{field}.instance_id")
    id_bytes(value.task_id, f"{field}.task_id")
    id_bytes(value.definition_hash, f"{field}.definition_hash")
    tags(value.task_tags, f"{field}.task_tags")
    return value


def snapshot(value: pb.WorkflowSnapshot, field: str = "snapshot") -> pb.WorkflowSnapshot:
    """A whole snapshot: instance id, every id, every time, the priority, and exactly one state."""
    instance_id(value.instance_id, f"{field}.instance_id")
    id_bytes(value.definition_hash, f"{field}.definition_hash")
    _state(value, field)
    _optional_timestamp(value, "created_at", field)
    _optional_timestamp(value, "updated_at", field)
    if value.HasField("task_deadline"):
        _task_deadline(value.task_deadline, f"{field}.task_deadline")
    for index, retry in enumerate(value.task_retries):
        _retry_state(retry, f"{field}.task_retries[{index}]")
    for index, loop in enumerate(value.loop_iterations):
        id_bytes(loop.task_id, f"{field}.loop_iterations[{index}].task_id")
    if value.HasField("task_priority"):
        priority(value.task_priority, f"{field}.task_priority")
    tags(value.task_tags, f"{field}.task_tags")
    if value.HasField("trace_parent") and len(value.trace_parent.encode()) > MAX_TRACE_PARENT_BYTES:
        raise InvalidFieldError(f"{field}.trace_parent", f"must be at most {MAX_TRACE_PARENT_BYTES} bytes")
    return value


def _state(value: pb.WorkflowSnapshot, field: str) -> None:
    state = value.WhichOneof("state")
    if state is None:
        raise InvalidFieldError(f"{field}.state", "exactly one state must be set")
    path = f"{field}.{state}"
    if state == "in_progress":
        _position(value.in_progress.position, f"{path}.position")
        _task_results(value.in_progress.completed_tasks, f"{path}.completed_tasks")
        optional_id_bytes(value.in_progress, "last_completed_task_id", f"{path}.last_completed_task_id")
    elif state == "cancelled":
        _optional_timestamp(value.cancelled, "cancelled_at", path)
        _task_results(value.cancelled.completed_tasks, f"{path}.completed_tasks")
        optional_id_bytes(value.cancelled, "interrupted_at_task", f"{path}.interrupted_at_task")
    elif state == "paused":
        _optional_timestamp(value.paused, "paused_at", path)
        _task_results(value.paused.completed_tasks, f"{path}.completed_tasks")
        _position(value.paused.position, f"{path}.position")
        optional_id_bytes(value.paused, "last_completed_task_id", f"{path}.last_completed_task_id")


def _position(value: pb.ExecutionPosition, field: str) -> None:
    """An unset position is stored as sent; a set one must carry valid node ids and times."""
    kind = value.WhichOneof("position")
    path = f"{field}.{kind}"
    if kind == "at_task":
        id_bytes(value.at_task.task_id, f"{path}.task_id")
    elif kind == "at_fork":
        id_bytes(value.at_fork.fork_id, f"{path}.fork_id")
        _branches(value.at_fork.completed_branches, f"{path}.completed_branches")
        _optional_timestamp(value.at_fork, "wake_at", path)
    elif kind == "at_join":
        id_bytes(value.at_join.join_id, f"{path}.join_id")
        _branches(value.at_join.completed_branches, f"{path}.completed_branches")
    elif kind == "at_delay":
        id_bytes(value.at_delay.delay_id, f"{path}.delay_id")
        _optional_timestamp(value.at_delay, "entered_at", path)
        _optional_timestamp(value.at_delay, "wake_at", path)
        optional_id_bytes(value.at_delay, "next_task_id", f"{path}.next_task_id")
    elif kind == "at_signal":
        id_bytes(value.at_signal.signal_id, f"{path}.signal_id")
        text(value.at_signal.signal_name, f"{path}.signal_name")
        _optional_timestamp(value.at_signal, "wake_at", path)
        optional_id_bytes(value.at_signal, "next_task_id", f"{path}.next_task_id")
    elif kind == "in_loop":
        id_bytes(value.in_loop.loop_id, f"{path}.loop_id")
        optional_id_bytes(value.in_loop, "next_task_id", f"{path}.next_task_id")


def _task_results(results: Iterable[pb.TaskResult], field: str) -> None:
    for index, result in enumerate(results):
        id_bytes(result.task_id, f"{field}[{index}].task_id")


def _branches(branches: Mapping[str, pb.TaskResult], field: str) -> None:
    for name, result in branches.items():
        id_bytes(result.task_id, f"{field}[{name!r}].task_id")


def _task_deadline(value: pb.TaskDeadline, field: str) -> None:
    id_bytes(value.task_id, f"{field}.task_id")
    _optional_timestamp(value, "deadline", field)
    if value.HasField("timeout"):
        duration(value.timeout, f"{field}.timeout")


def _retry_state(value: pb.TaskRetryState, field: str) -> None:
    id_bytes(value.task_id, f"{field}.task_id")
    _optional_timestamp(value, "next_retry_at", field)
    if value.HasField("last_failed_worker"):
        text(value.last_failed_worker, f"{field}.last_failed_worker")
    policy = value.policy
    for name in ("initial_delay", "max_delay"):
        if policy.HasField(name):
            duration(getattr(policy, name), f"{field}.policy.{name}")


def _optional_timestamp(message: Message, name: str, parent: str) -> None:
    if message.HasField(name):
        timestamp(getattr(message, name), f"{parent}.{name}")
