"""ID (field validation and its reporting) and ERR (the error model)."""

from __future__ import annotations

import grpc
from google.protobuf.wrappers_pb2 import BytesValue

from sayiir_client.conformance import _build as build
from sayiir_client.conformance._kit import Exchange, NotObservableError, Refusal, Trial, check, refusal_of
from sayiir_client.conformance._steps import load, save
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT
RawMethod = grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]
SHORT_ID = b"\x01" * 31
GARBAGE = (b"\x0a\x02\xff\xfe", b"\xff\xff\xff\xff", b"\x12\x7f")
"""Request bytes that are no valid message: a string field holding invalid UTF-8, a bad tag, a truncated field."""


def _task_snapshot(instance_id: str, definition_hash: bytes) -> pb.WorkflowSnapshot:
    return build.in_progress(instance_id, definition_hash, build.at_task("step"))


@check("ID-1.1", "an instance id of 257 bytes or with a NUL is invalid; 256 bytes of é is valid")
async def _instance_ids(t: Trial) -> None:
    for bad in ("x" * 257, "with\x00nul"):
        await t.invalid(t.stubs.snapshots.LoadSnapshot, rr.LoadSnapshotRequest(instance_id=bad), "instance_id")
    request = rr.LoadSnapshotRequest(instance_id="é" * 128)
    await t.refused(t.stubs.snapshots.LoadSnapshot, request, grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


@check("ID-1.2", "task ids, node ids and definition hashes are exactly 32 bytes, at every level of a snapshot")
async def _ids_are_32_bytes(t: Trial) -> None:
    request = rr.SaveTaskResultRequest(instance_id=t.instance(), task_id=SHORT_ID, output=b"x")
    await t.invalid(t.stubs.snapshots.SaveTaskResult, request, "task_id")
    snapshot = _task_snapshot(t.instance(), t.definition)
    snapshot.in_progress.position.at_task.task_id = SHORT_ID
    field = "snapshot.in_progress.position.at_task.task_id"
    await t.invalid(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=snapshot), field)
    cancelled = build.cancelled(t.instance(), t.definition, {"a": b"a", "b": b"b"})
    cancelled.cancelled.completed_tasks[1].task_id = b""
    field = "snapshot.cancelled.completed_tasks[1].task_id"
    await t.invalid(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=cancelled), field)
    hashless = _task_snapshot(t.instance(), SHORT_ID)
    await t.invalid(
        t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=hashless), "snapshot.definition_hash"
    )


@check("ID-1.4", "worker ids and event names are non-empty; tags contain no NUL")
async def _names(t: Trial) -> None:
    request = rr.ClaimTaskRequest(instance_id=t.instance(), task_id=build.task_id("step"), worker_id="")
    await t.invalid(t.stubs.claims.ClaimTask, request, "worker_id")
    event = rr.SendEventRequest(instance_id=t.instance(), signal_name="", payload=b"x")
    await t.invalid(t.stubs.signals.SendEvent, event, "signal_name")
    find = rr.FindAvailableTasksRequest(worker_id=t.worker(), limit=1, worker_tags=["fine", "not\x00fine"])
    await t.invalid(t.stubs.claims.FindAvailableTasks, find, "worker_tags[1]")


@check("ID-2.1", "SignalKind UNSPECIFIED and unknown ConflictPolicy numbers are invalid")
async def _enums(t: Trial) -> None:
    unspecified = rr.GetSignalRequest(instance_id=t.instance(), kind=enums.SIGNAL_KIND_UNSPECIFIED)
    await t.invalid(t.stubs.signals.GetSignal, unspecified, "kind")
    request = rr.PrepareRunRequest(
        instance_id=t.instance(),
        definition_hash=t.definition,
        first_task=pb.FirstTask(task_id=build.task_id("first")),
        conflict_policy=99,  # type: ignore[arg-type]
    )
    await t.invalid(t.stubs.lifecycle.PrepareRun, request, "conflict_policy")


@check("ID-2.2", "a priority outside 1 to 5 is invalid")
async def _priorities(t: Trial) -> None:
    request = rr.PrepareRunRequest(
        instance_id=t.instance(),
        definition_hash=t.definition,
        first_task=pb.FirstTask(task_id=build.task_id("a"), priority=6),
    )
    await t.invalid(t.stubs.lifecycle.PrepareRun, request, "first_task.priority")
    snapshot = _task_snapshot(t.instance(), t.definition)
    snapshot.task_priority = 0
    await t.invalid(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=snapshot), "snapshot.task_priority")


@check("ID-2.3", "a Timestamp with nanos out of range, or a Duration with mixed signs, is invalid")
async def _times(t: Trial) -> None:
    signal = build.signal_request()
    signal.requested_at.nanos = 1_000_000_000
    request = rr.StoreSignalRequest(instance_id=t.instance(), kind=enums.SIGNAL_KIND_CANCEL, request=signal)
    await t.invalid(t.stubs.signals.StoreSignal, request, "request.requested_at")
    claim = rr.ClaimTaskRequest(instance_id=t.instance(), task_id=build.task_id("a"), worker_id=t.worker())
    claim.ttl.seconds, claim.ttl.nanos = 1, -1
    await t.invalid(t.stubs.claims.ClaimTask, claim, "ttl")


@check("ID-2.4", "required messages are required; a snapshot has exactly one state")
async def _required(t: Trial) -> None:
    await t.invalid(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(), "snapshot")
    extend = rr.ExtendTaskClaimRequest(instance_id=t.instance(), task_id=build.task_id("a"), worker_id=t.worker())
    await t.invalid(t.stubs.claims.ExtendTaskClaim, extend, "ttl")
    await t.invalid(t.stubs.claims.WaitForWakeup, rr.WaitForWakeupRequest(), "timeout")
    await t.invalid(t.stubs.claims.FindHintedTask, rr.FindHintedTaskRequest(), "hint")
    stateless = pb.WorkflowSnapshot(instance_id=t.instance(), definition_hash=t.definition)
    await t.invalid(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=stateless), "snapshot.state")


@check("ID-2.5", "limit 1 to 1000, page_size 0 to 1000, ttl not negative")
async def _ranges(t: Trial) -> None:
    for limit in (0, 1001):
        request = rr.FindAvailableTasksRequest(worker_id=t.worker(), limit=limit)
        await t.invalid(t.stubs.claims.FindAvailableTasks, request, "limit")
    await t.invalid(t.stubs.snapshots.ListSnapshots, rr.ListSnapshotsRequest(page_size=1001), "page_size")
    claim = rr.ClaimTaskRequest(instance_id=t.instance(), task_id=build.task_id("a"), worker_id=t.worker())
    claim.ttl.seconds = -1
    await t.invalid(t.stubs.claims.ClaimTask, claim, "ttl")


@check("ID-3.3", "an invalid request changes no stored data")
async def _invalid_changes_nothing(t: Trial) -> None:
    snapshot = _task_snapshot(t.instance(), t.definition)
    await save(t, snapshot)
    broken = build.in_progress(snapshot.instance_id, t.definition, build.at_task("next"), outputs={"a": b"a"})
    broken.in_progress.completed_tasks[0].task_id = SHORT_ID
    field = "snapshot.in_progress.completed_tasks[0].task_id"
    await t.invalid(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=broken), field)
    t.expect(await load(t, snapshot.instance_id) == snapshot, "the stored snapshot unchanged")


@check("ID-3.4", "request bytes that do not decode are INVALID_ARGUMENT with reason SERIALIZATION")
async def _undecodable(t: Trial) -> None:
    method = "/sayiir.persistence.v1.SnapshotStore/LoadSnapshot"
    call: RawMethod = t.channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    for raw in GARBAGE[:1]:
        exchange = Exchange("LoadSnapshot (raw bytes)", BytesValue(value=raw))
        t.exchanges.append(exchange)
        try:
            await call(raw, timeout=t.settings.deadline.total_seconds(), metadata=t.settings.metadata)
        except grpc.aio.AioRpcError as error:
            exchange.refusal = refusal_of(error)
        refusal = exchange.refusal
        t.expect(
            refusal is not None and refusal.code == INVALID and refusal.reason == "SERIALIZATION",
            "INVALID_ARGUMENT with ErrorInfo reason SERIALIZATION",
        )


@check("ID-3.5", "payloads and free text are opaque: stored and returned as sent")
async def _opaque(t: Trial) -> None:
    opaque = bytes(range(256))
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("b"), outputs={"a": opaque})
    snapshot.initial_input = b"\x00\xff\xfe"
    await save(t, snapshot)
    t.expect(await load(t, snapshot.instance_id) == snapshot, "the bytes as sent")
    failed = build.failed(t.instance(), t.definition, "a NUL \x00 and ünïcode ✓")
    await save(t, failed)
    t.expect(await load(t, failed.instance_id) == failed, "the error text as sent")


@check("ERR-1.1", "a refusal carries one ErrorInfo of domain persistence.sayiir.dev with a listed reason")
async def _error_info(t: Trial) -> None:
    request = rr.LoadSnapshotRequest(instance_id=t.instance())
    refusal = await t.refused(t.stubs.snapshots.LoadSnapshot, request, grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    t.expect(refusal.has_details and not refusal.foreign_infos, "a google.rpc.Status holding only our ErrorInfo")


@check("ERR-1.3", "ErrorInfo metadata names the instance: instance_id, snapshot.instance_id or hint.instance_id")
async def _instance_in_metadata(t: Trial) -> None:
    missing = t.instance()
    request = rr.LoadSnapshotRequest(instance_id=missing)
    await t.refused(
        t.stubs.snapshots.LoadSnapshot, request, grpc.StatusCode.NOT_FOUND, "NOT_FOUND", {"instance_id": missing}
    )
    snapshot = _task_snapshot(t.instance(), t.definition)
    snapshot.in_progress.position.at_task.task_id = SHORT_ID
    save_request = rr.SaveSnapshotRequest(snapshot=snapshot)
    refusal = await t.invalid(
        t.stubs.snapshots.SaveSnapshot, save_request, "snapshot.in_progress.position.at_task.task_id"
    )
    t.expect(refusal.metadata.get("instance_id") == snapshot.instance_id, "metadata instance_id = snapshot.instance_id")
    hinted = t.instance()
    hint = rr.FindHintedTaskRequest(
        hint=pb.TaskWakeupHint(instance_id=hinted, task_id=SHORT_ID, definition_hash=t.definition)
    )
    refusal = await t.invalid(t.stubs.claims.FindHintedTask, hint, "hint.task_id")
    t.expect(refusal.metadata.get("instance_id") == hinted, "metadata instance_id = hint.instance_id")


@check("ERR-1.4", "a field error of PrepareRun carries no RunConflict")
async def _field_error_without_conflict(t: Trial) -> None:
    request = rr.PrepareRunRequest(
        instance_id=t.instance(), definition_hash=SHORT_ID, first_task=pb.FirstTask(task_id=build.task_id("a"))
    )
    refusal = await t.invalid(t.stubs.lifecycle.PrepareRun, request, "definition_hash")
    t.expect(refusal.conflict is None, "no RunConflict detail")


@check("ERR-2.1", "no request bytes make the server answer INTERNAL or UNKNOWN")
async def _no_internal(t: Trial) -> None:
    for service in service_pb2.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            if method.server_streaming:
                continue
            path = f"/{service.full_name}/{method.name}"
            call: RawMethod = t.channel.unary_unary(path, request_serializer=None, response_deserializer=None)
            for raw in GARBAGE:
                exchange = Exchange(f"{method.name} (raw bytes)", BytesValue(value=raw))
                t.exchanges.append(exchange)
                try:
                    await call(raw, timeout=t.settings.deadline.total_seconds(), metadata=t.settings.metadata)
                except grpc.aio.AioRpcError as error:
                    exchange.refusal = refusal_of(error)
                code = exchange.refusal.code if exchange.refusal is not None else grpc.StatusCode.OK
                t.expect(
                    code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN),
                    "any status but INTERNAL or UNKNOWN (those mean a server bug)",
                )


@check("ERR-5.1", "with tokens enabled, a call without a token is UNAUTHENTICATED naming the method")
async def _unauthenticated(t: Trial) -> None:
    if not t.settings.token_given:
        raise NotObservableError("give --token to check a server with bearer tokens")
    method = "/sayiir.persistence.v1.SnapshotStore/LoadSnapshot"
    call = t.channel.unary_unary(
        method,
        request_serializer=rr.LoadSnapshotRequest.SerializeToString,
        response_deserializer=rr.LoadSnapshotResponse.FromString,
    )
    request = rr.LoadSnapshotRequest(instance_id=t.instance())
    exchange = Exchange("LoadSnapshot (without a token)", request)
    t.exchanges.append(exchange)
    try:
        await call(request, timeout=t.settings.deadline.total_seconds())
    except grpc.aio.AioRpcError as error:
        exchange.refusal = refusal_of(error)
    refusal: Refusal | None = exchange.refusal
    t.expect(
        refusal is not None
        and refusal.code == grpc.StatusCode.UNAUTHENTICATED
        and refusal.reason == "UNAUTHENTICATED"
        and refusal.metadata.get("method") == method,
        f"UNAUTHENTICATED, reason UNAUTHENTICATED, metadata method = {method}",
    )


@check("ID-2.6", "a snapshot is checked whole: retries, loop counts and deadlines too")
async def _whole_snapshot(t: Trial) -> None:
    retried = _task_snapshot(t.instance(), t.definition)
    retried.task_retries.append(pb.TaskRetryState(task_id=SHORT_ID, attempts=1))
    await t.invalid(
        t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=retried), "snapshot.task_retries[0].task_id"
    )
    looped = _task_snapshot(t.instance(), t.definition)
    looped.loop_iterations.append(pb.LoopIterationCount(task_id=SHORT_ID, count=1))
    field = "snapshot.loop_iterations[0].task_id"
    await t.invalid(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=looped), field)
    late = _task_snapshot(t.instance(), t.definition)
    late.task_deadline.task_id = SHORT_ID
    field = "snapshot.task_deadline.task_id"
    await t.invalid(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=late), field)


@check(
    "ID-3.1", "a malformed field: ErrorInfo INVALID_ARGUMENT with field, one BadRequest violation, named in the message"
)
async def _field_error_shape(t: Trial) -> None:
    await t.invalid(t.stubs.claims.ClaimTask, rr.ClaimTaskRequest(instance_id="", task_id=SHORT_ID), "instance_id")


@check("ID-3.2", "field paths index repeated fields with [i] and map entries with ['key']")
async def _field_paths(t: Trial) -> None:
    fork = pb.AtFork(fork_id=build.task_id("fork"))
    fork.completed_branches["left"].CopyFrom(pb.TaskResult(task_id=SHORT_ID))
    snapshot = build.in_progress(t.instance(), t.definition, pb.ExecutionPosition(at_fork=fork))
    field = "snapshot.in_progress.position.at_fork.completed_branches['left'].task_id"
    await t.invalid(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=snapshot), field)
    tagged = _task_snapshot(t.instance(), t.definition)
    tagged.task_tags.extend(["fine", "bad\x00tag"])
    await t.invalid(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=tagged), "snapshot.task_tags[1]")


@check("ERR-2.2", "a message over the size limit is RESOURCE_EXHAUSTED, produced by gRPC without an ErrorInfo")
async def _too_large(t: Trial) -> None:
    limit = t.settings.max_message_bytes
    if limit is None:
        raise NotObservableError("give --max-message-bytes (the server's limit) to check it")
    snapshot = _task_snapshot(t.instance(), t.definition)
    snapshot.initial_input = b"\0" * (limit + 1)
    refusal = await t.attempt(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=snapshot))
    t.expect(
        isinstance(refusal, Refusal) and refusal.code == grpc.StatusCode.RESOURCE_EXHAUSTED and refusal.info is None,
        f"RESOURCE_EXHAUSTED without an ErrorInfo for a message of more than {limit} bytes",
    )


@check("ERR-5.2", "the reader role may read but not write: a write is PERMISSION_DENIED naming the method")
async def _reader_role(t: Trial) -> None:
    if t.settings.reader_metadata is None:
        raise NotObservableError("give --reader-token to check the reader role")
    instance_id = t.instance()
    await save(t, build.completed(instance_id, t.definition))
    reader = t.settings.reader_metadata
    for method, request in (
        ("LoadSnapshot", rr.LoadSnapshotRequest(instance_id=instance_id).SerializeToString()),
        ("ListSnapshots", rr.ListSnapshotsRequest(page_size=1).SerializeToString()),
    ):
        answer = await _raw(t, f"/sayiir.persistence.v1.SnapshotStore/{method}", method, request, reader)
        t.expect(answer is None, f"the reader may call {method}")
    path = "/sayiir.persistence.v1.SnapshotStore/DeleteSnapshot"
    delete = rr.DeleteSnapshotRequest(instance_id=instance_id).SerializeToString()
    refusal = await _raw(t, path, "DeleteSnapshot (reader)", delete, reader)
    t.expect(
        refusal is not None
        and refusal.code == grpc.StatusCode.PERMISSION_DENIED
        and refusal.reason == "PERMISSION_DENIED"
        and refusal.metadata.get("method") == path,
        f"PERMISSION_DENIED, reason PERMISSION_DENIED, metadata method = {path}",
    )
    t.expect(build.state_of(await load(t, instance_id)) == "completed", "the refused delete changed nothing")


async def _raw(t: Trial, path: str, name: str, request: bytes, metadata: tuple[tuple[str, str], ...]) -> Refusal | None:
    """Send serialized request bytes with other metadata than the kit's own; the refusal, or None on success."""
    call: RawMethod = t.channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    exchange = Exchange(name, BytesValue(value=request))
    t.exchanges.append(exchange)
    try:
        await call(request, timeout=t.settings.deadline.total_seconds(), metadata=metadata)
    except grpc.aio.AioRpcError as error:
        exchange.refusal = refusal_of(error)
    return exchange.refusal
