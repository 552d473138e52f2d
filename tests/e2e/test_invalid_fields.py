"""Every malformed request field is INVALID_ARGUMENT naming the field, and changes nothing (behaviour ID, ERR)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2

from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.backends.memory import InMemoryBackend
from sayiir_server.domain.model import SIGNAL_KINDS
from tests.e2e.wire import DEFINITION, at_task_snapshot, details, error_info, google_status, node_id

ORDER = "order-1"
FETCH = node_id("fetch")
SHORT = b"\x00" * 31
TOO_LONG_ID = "é" * 128 + "x"  # 257 bytes of UTF-8
CANCEL = enums.SIGNAL_KIND_CANCEL


def _snapshot(**fields: Any) -> pb.WorkflowSnapshot:
    snapshot = at_task_snapshot(ORDER)
    for name, value in fields.items():
        if isinstance(value, Message):
            getattr(snapshot, name).CopyFrom(value)
        else:
            setattr(snapshot, name, value)
    return snapshot


def _stateless() -> pb.WorkflowSnapshot:
    return pb.WorkflowSnapshot(instance_id=ORDER, definition_hash=DEFINITION)


def _first_task(**fields: Any) -> pb.FirstTask:
    values: dict[str, Any] = {"task_id": FETCH}
    values.update(fields)
    return pb.FirstTask(**values)


def _run(**fields: Any) -> rr.PrepareRunRequest:
    values: dict[str, Any] = {"instance_id": "order-new", "definition_hash": DEFINITION, "first_task": _first_task()}
    values.update(fields)
    return rr.PrepareRunRequest(**values)


def _completion(**fields: Any) -> rr.CompleteTaskRequest:
    values: dict[str, Any] = {"snapshot": _snapshot(), "task_id": FETCH, "worker_id": "w1"}
    values.update(fields)
    return rr.CompleteTaskRequest(**values)


def _claim(**fields: Any) -> rr.ClaimTaskRequest:
    values: dict[str, Any] = {"instance_id": ORDER, "task_id": FETCH, "worker_id": "w1"}
    values.update(fields)
    return rr.ClaimTaskRequest(**values)


def _find(**fields: Any) -> rr.FindAvailableTasksRequest:
    values: dict[str, Any] = {"worker_id": "w1", "limit": 10}
    values.update(fields)
    return rr.FindAvailableTasksRequest(**values)


def _hint(**fields: Any) -> pb.TaskWakeupHint:
    values: dict[str, Any] = {"instance_id": ORDER, "task_id": FETCH, "definition_hash": DEFINITION}
    values.update(fields)
    return pb.TaskWakeupHint(**values)


def _bad_snapshot_cases(rpc: str, wrap: Any) -> list[tuple[str, Message, str]]:
    """The snapshot rules, for both RPCs that carry a whole snapshot."""
    at_short_task = pb.InProgressState(position=pb.ExecutionPosition(at_task=pb.AtTask(task_id=SHORT)))
    fork = pb.AtFork(fork_id=FETCH, completed_branches={"left": pb.TaskResult(task_id=SHORT)})
    return [
        (rpc, wrap(_snapshot(instance_id="")), "snapshot.instance_id"),
        (rpc, wrap(_snapshot(instance_id=TOO_LONG_ID)), "snapshot.instance_id"),
        (rpc, wrap(_snapshot(definition_hash=SHORT)), "snapshot.definition_hash"),
        (rpc, wrap(_stateless()), "snapshot.state"),
        (rpc, wrap(_snapshot(task_priority=0)), "snapshot.task_priority"),
        (rpc, wrap(_snapshot(task_priority=6)), "snapshot.task_priority"),
        (rpc, wrap(_snapshot(created_at=Timestamp(seconds=253_402_300_800))), "snapshot.created_at"),
        (rpc, wrap(_snapshot(updated_at=Timestamp(nanos=-1))), "snapshot.updated_at"),
        (rpc, wrap(_snapshot(in_progress=at_short_task)), "snapshot.in_progress.position.at_task.task_id"),
        (
            rpc,
            wrap(_snapshot(in_progress=pb.InProgressState(position=pb.ExecutionPosition(at_fork=fork)))),
            "snapshot.in_progress.position.at_fork.completed_branches['left'].task_id",
        ),
        (
            rpc,
            wrap(_snapshot(cancelled=pb.CancelledState(interrupted_at_task=SHORT))),
            "snapshot.cancelled.interrupted_at_task",
        ),
        (
            rpc,
            wrap(_snapshot(task_deadline=pb.TaskDeadline(task_id=FETCH, timeout=Duration(seconds=-1, nanos=1)))),
            "snapshot.task_deadline.timeout",
        ),
    ]


def _fenced(snapshot: pb.WorkflowSnapshot) -> rr.SaveSnapshotFencedRequest:
    return rr.SaveSnapshotFencedRequest(snapshot=snapshot, task_id=FETCH, worker_id="w1")


CASES: list[tuple[str, Message, str]] = [
    # SnapshotStore
    ("SnapshotStore.SaveSnapshot", rr.SaveSnapshotRequest(), "snapshot"),
    *_bad_snapshot_cases("SnapshotStore.SaveSnapshot", lambda s: rr.SaveSnapshotRequest(snapshot=s)),
    ("SnapshotStore.SaveTaskResult", rr.SaveTaskResultRequest(task_id=FETCH, output=b"x"), "instance_id"),
    ("SnapshotStore.SaveTaskResult", rr.SaveTaskResultRequest(instance_id=ORDER, task_id=SHORT), "task_id"),
    ("SnapshotStore.LoadSnapshot", rr.LoadSnapshotRequest(instance_id=TOO_LONG_ID), "instance_id"),
    ("SnapshotStore.LoadSnapshot", rr.LoadSnapshotRequest(instance_id="order\x00"), "instance_id"),
    ("SnapshotStore.DeleteSnapshot", rr.DeleteSnapshotRequest(), "instance_id"),
    ("SnapshotStore.ListSnapshots", rr.ListSnapshotsRequest(page_size=-1), "page_size"),
    ("SnapshotStore.ListSnapshots", rr.ListSnapshotsRequest(page_size=1001), "page_size"),
    ("SnapshotStore.ListSnapshots", rr.ListSnapshotsRequest(page_token="not a token"), "page_token"),
    # SignalStore
    ("SignalStore.StoreSignal", rr.StoreSignalRequest(instance_id=ORDER, request=pb.SignalRequest()), "kind"),
    (
        "SignalStore.StoreSignal",
        rr.StoreSignalRequest(instance_id=ORDER, kind=7, request=pb.SignalRequest()),  # type: ignore[arg-type]
        "kind",
    ),
    ("SignalStore.StoreSignal", rr.StoreSignalRequest(instance_id=ORDER, kind=CANCEL), "request"),
    (
        "SignalStore.StoreSignal",
        rr.StoreSignalRequest(
            instance_id=ORDER, kind=CANCEL, request=pb.SignalRequest(requested_at=Timestamp(nanos=2_000_000_000))
        ),
        "request.requested_at",
    ),
    ("SignalStore.StoreSignal", rr.StoreSignalRequest(kind=CANCEL, request=pb.SignalRequest()), "instance_id"),
    ("SignalStore.GetSignal", rr.GetSignalRequest(instance_id=ORDER), "kind"),
    ("SignalStore.ClearSignal", rr.ClearSignalRequest(instance_id=ORDER, kind=-3), "kind"),  # type: ignore[arg-type]
    ("SignalStore.SendEvent", rr.SendEventRequest(instance_id=ORDER, payload=b"x"), "signal_name"),
    ("SignalStore.SendEvent", rr.SendEventRequest(signal_name="go", payload=b"x"), "instance_id"),
    ("SignalStore.ConsumeEvent", rr.ConsumeEventRequest(instance_id=ORDER), "signal_name"),
    (
        "SignalStore.CheckAndCancel",
        rr.CheckAndCancelRequest(instance_id=ORDER, interrupted_at_task=b"12345"),
        "interrupted_at_task",
    ),
    (
        "SignalStore.CheckControlSignals",
        rr.CheckControlSignalsRequest(instance_id=ORDER, interrupted_at_task=b""),
        "interrupted_at_task",
    ),
    ("SignalStore.CheckAndPause", rr.CheckAndPauseRequest(), "instance_id"),
    ("SignalStore.Unpause", rr.UnpauseRequest(instance_id=TOO_LONG_ID), "instance_id"),
    # TaskClaimStore
    ("TaskClaimStore.ClaimTask", _claim(task_id=SHORT), "task_id"),
    ("TaskClaimStore.ClaimTask", _claim(worker_id=""), "worker_id"),
    ("TaskClaimStore.ClaimTask", _claim(ttl=Duration(seconds=-1)), "ttl"),
    ("TaskClaimStore.ClaimTask", _claim(ttl=Duration(seconds=86_400 * 36_501)), "ttl"),
    ("TaskClaimStore.ClaimTask", _claim(ttl=Duration(seconds=1, nanos=-1)), "ttl"),
    ("TaskClaimStore.ClaimTask", _claim(instance_id=""), "instance_id"),
    ("TaskClaimStore.ReleaseTaskClaim", rr.ReleaseTaskClaimRequest(instance_id=ORDER, task_id=FETCH), "worker_id"),
    (
        "TaskClaimStore.ExtendTaskClaim",
        rr.ExtendTaskClaimRequest(instance_id=ORDER, task_id=FETCH, worker_id="w1"),
        "ttl",
    ),
    (
        "TaskClaimStore.ExtendTaskClaim",
        rr.ExtendTaskClaimRequest(instance_id=ORDER, task_id=FETCH, worker_id="w1", ttl=Duration(seconds=-5)),
        "ttl",
    ),
    ("TaskClaimStore.FindAvailableTasks", _find(worker_id=""), "worker_id"),
    ("TaskClaimStore.FindAvailableTasks", _find(worker_tags=["gpu", "a\x00b"]), "worker_tags[1]"),
    ("TaskClaimStore.ClaimTask", _claim(worker_id="w\x00"), "worker_id"),
    ("SignalStore.SendEvent", rr.SendEventRequest(instance_id=ORDER, signal_name="go\x00"), "signal_name"),
    ("TaskClaimStore.FindAvailableTasks", _find(limit=0), "limit"),
    ("TaskClaimStore.FindAvailableTasks", _find(limit=1001), "limit"),
    (
        "TaskClaimStore.FindAvailableTasks",
        _find(aging_interval=Duration(seconds=315_576_000_001)),
        "aging_interval",
    ),
    ("TaskClaimStore.WaitForWakeup", rr.WaitForWakeupRequest(), "timeout"),
    ("TaskClaimStore.WaitForWakeup", rr.WaitForWakeupRequest(timeout=Duration(nanos=-1)), "timeout"),
    ("TaskClaimStore.FindHintedTask", rr.FindHintedTaskRequest(), "hint"),
    ("TaskClaimStore.FindHintedTask", rr.FindHintedTaskRequest(hint=_hint(instance_id="")), "hint.instance_id"),
    ("TaskClaimStore.FindHintedTask", rr.FindHintedTaskRequest(hint=_hint(task_id=SHORT)), "hint.task_id"),
    (
        "TaskClaimStore.FindHintedTask",
        rr.FindHintedTaskRequest(hint=_hint(definition_hash=b"")),
        "hint.definition_hash",
    ),
    ("TaskClaimStore.SaveSnapshotFenced", rr.SaveSnapshotFencedRequest(task_id=FETCH, worker_id="w1"), "snapshot"),
    *_bad_snapshot_cases("TaskClaimStore.SaveSnapshotFenced", _fenced),
    (
        "TaskClaimStore.SaveSnapshotFenced",
        rr.SaveSnapshotFencedRequest(snapshot=_snapshot(), task_id=SHORT, worker_id="w1"),
        "task_id",
    ),
    (
        "TaskClaimStore.SaveSnapshotFenced",
        rr.SaveSnapshotFencedRequest(snapshot=_snapshot(), task_id=FETCH),
        "worker_id",
    ),
    (
        "TaskClaimStore.CompleteTasks",
        rr.CompleteTasksRequest(completions=[_completion(), _completion(task_id=SHORT)]),
        "completions[1].task_id",
    ),
    (
        "TaskClaimStore.CompleteTasks",
        rr.CompleteTasksRequest(completions=[_completion(snapshot=None)]),
        "completions[0].snapshot",
    ),
    (
        "TaskClaimStore.CompleteTasks",
        rr.CompleteTasksRequest(completions=[_completion(), _completion(snapshot=_snapshot(instance_id=""))]),
        "completions[1].snapshot.instance_id",
    ),
    (
        "TaskClaimStore.CompleteTasks",
        rr.CompleteTasksRequest(completions=[_completion(worker_id="")]),
        "completions[0].worker_id",
    ),
    # TaskResultStore
    ("TaskResultStore.LoadTaskResult", rr.LoadTaskResultRequest(instance_id=ORDER, task_id=b"abc"), "task_id"),
    ("TaskResultStore.LoadTaskResult", rr.LoadTaskResultRequest(task_id=FETCH), "instance_id"),
    # Lifecycle
    ("Lifecycle.PrepareRun", _run(definition_hash=SHORT), "definition_hash"),
    ("Lifecycle.PrepareRun", _run(instance_id="run\x00"), "instance_id"),
    ("Lifecycle.PrepareRun", _run(first_task=None), "first_task"),
    ("Lifecycle.PrepareRun", _run(first_task=_first_task(task_id=SHORT)), "first_task.task_id"),
    ("Lifecycle.PrepareRun", _run(first_task=_first_task(priority=0)), "first_task.priority"),
    ("Lifecycle.PrepareRun", _run(first_task=_first_task(priority=6)), "first_task.priority"),
    ("Lifecycle.PrepareRun", _run(conflict_policy=17), "conflict_policy"),
]


def _case_id(case: tuple[str, Message, str]) -> str:
    return f"{case[0]}:{case[2]}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(case) for case in CASES])
async def test_a_malformed_field_is_invalid_argument_naming_the_field(
    rpc: dict[str, Any], case: tuple[str, Message, str]
) -> None:
    method, request, field = case
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await rpc[method](request)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (error.details() or "")
    info = error_info(error)
    assert (info.reason, info.metadata["field"]) == ("INVALID_ARGUMENT", field)
    (bad_request,) = details(google_status(error), error_details_pb2.BadRequest)
    assert [violation.field for violation in bad_request.field_violations] == [field]


async def test_an_invalid_request_changes_no_stored_data(rpc: dict[str, Any], backend: InMemoryBackend) -> None:
    seed = at_task_snapshot(ORDER)
    await backend.save_snapshot(seed)
    for method, request, _ in CASES:
        with pytest.raises(grpc.aio.AioRpcError):
            await rpc[method](request)
    assert await backend.list_snapshots() == [ORDER]
    assert await backend.load_snapshot(ORDER) == seed
    for kind in SIGNAL_KINDS:
        assert await backend.get_signal(ORDER, kind) is None
    assert await backend.consume_event(ORDER, "go") is None
    assert await backend.claim_task(ORDER, FETCH, "checker", timedelta(seconds=5)) is not None


async def test_one_invalid_completion_refuses_complete_tasks_and_writes_none_of_its_completions(
    rpc: dict[str, Any], backend: InMemoryBackend
) -> None:
    """COMPLETE-2.2: every completion is checked before any is written."""
    await backend.save_snapshot(at_task_snapshot(ORDER))
    assert await backend.claim_task(ORDER, FETCH, "w1", timedelta(minutes=5)) is not None
    finished = at_task_snapshot(ORDER)
    finished.completed.final_output = b"done"
    request = rr.CompleteTasksRequest(completions=[_completion(snapshot=finished), _completion(task_id=SHORT)])

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await rpc["TaskClaimStore.CompleteTasks"](request)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await backend.load_snapshot(ORDER)).WhichOneof("state") == "in_progress"
    assert await backend.complete_task(finished, FETCH, "w1")  # the claim is still w1's
