# ruff: noqa: N802 - servicer methods carry the proto's PascalCase RPC names.
"""The five gRPC services over any storage Backend: validate, call the backend, build the response.

Servicers never touch storage details and never build statuses: every method is
wrapped by `translate_errors`, which maps the error tree to gRPC statuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from sayiir_client.errors import FinalStateError
from sayiir_client.tasks import TaskCompletion
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2, service_pb2_grpc
from sayiir_server.api import validation
from sayiir_server.api.grpc_errors import MalformedRequest, translate_errors
from sayiir_server.api.page_tokens import PageTokens, decode_list_cursor, encode_list_cursor, fingerprint
from sayiir_server.domain.engine import Engine
from sayiir_server.domain.sizes import wire_task
from sayiir_server.mesh.tracing import call_trace_parent, inherit_trace_parent

_T = TypeVar("_T")
Context = grpc.aio.ServicerContext[Any, Any]

SERVICE_NAMES: Final = tuple(service.full_name for service in service_pb2.DESCRIPTOR.services_by_name.values())
"""Full names of the persistence services ("sayiir.persistence.v1.SnapshotStore", ...)."""


class Drain:
    """Set once the server starts shutting down: open waits (WaitForWakeup, WatchWakeups) end early."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def start(self) -> None:
        self._event.set()

    @property
    def started(self) -> bool:
        return self._event.is_set()

    async def race(self, awaitable: Awaitable[_T]) -> tuple[bool, _T | None]:
        """(True, result) when `awaitable` finishes first; (False, None) when the drain starts first."""
        work = asyncio.ensure_future(awaitable)
        drained = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait({work, drained}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drained.cancel()
            if not work.done():
                work.cancel()
                # Let the cancelled work unwind (e.g. an async generator's cleanup) before the caller goes on.
                await asyncio.wait({work})
        if work.cancelled():
            return False, None
        return True, work.result()


class SnapshotStoreServicer(service_pb2_grpc.SnapshotStoreServicer):
    """Core snapshot CRUD (docs/behaviour.md SNAP)."""

    def __init__(self, backend: Engine) -> None:
        self._backend = backend
        self._tokens: PageTokens | None = None

    async def _page_tokens(self) -> PageTokens:
        if self._tokens is None:
            self._tokens = PageTokens(await self._backend.page_token_key())
        return self._tokens

    @translate_errors
    async def SaveSnapshot(self, request: rr.SaveSnapshotRequest, context: Context) -> rr.SaveSnapshotResponse:
        validation.required(request, "snapshot", "snapshot")
        await self._backend.save_snapshot(inherit_trace_parent(validation.snapshot(request.snapshot), context))
        return rr.SaveSnapshotResponse()

    @translate_errors
    async def SaveTaskResult(self, request: rr.SaveTaskResultRequest, context: Context) -> rr.SaveTaskResultResponse:
        instance_id = validation.instance_id(request.instance_id)
        task_id = validation.id_bytes(request.task_id, "task_id")
        await self._backend.save_task_result(instance_id, task_id, request.output)
        return rr.SaveTaskResultResponse()

    @translate_errors
    async def LoadSnapshot(self, request: rr.LoadSnapshotRequest, context: Context) -> rr.LoadSnapshotResponse:
        snapshot = await self._backend.load_snapshot(validation.instance_id(request.instance_id))
        return rr.LoadSnapshotResponse(snapshot=snapshot)

    @translate_errors
    async def DeleteSnapshot(self, request: rr.DeleteSnapshotRequest, context: Context) -> rr.DeleteSnapshotResponse:
        await self._backend.delete_snapshot(validation.instance_id(request.instance_id))
        return rr.DeleteSnapshotResponse()

    @translate_errors
    async def ListSnapshots(self, request: rr.ListSnapshotsRequest, context: Context) -> rr.ListSnapshotsResponse:
        page_size = validation.page_size(request.page_size)
        tokens = await self._page_tokens()
        after = validation.start_after(request) or None
        if request.page_token:
            after = tokens.read(request.page_token, "ListSnapshots", b"").decode()
        # One id more than asked tells whether another page follows.
        ids = await self._backend.list_snapshots_page(after, page_size + 1)
        if len(ids) <= page_size:
            return rr.ListSnapshotsResponse(instance_ids=ids)
        page = ids[:page_size]
        token = tokens.issue("ListSnapshots", b"", page[-1].encode())
        return rr.ListSnapshotsResponse(instance_ids=page, next_page_token=token)

    @translate_errors
    async def ListWorkflows(self, request: rr.ListWorkflowsRequest, context: Context) -> rr.ListWorkflowsResponse:
        wanted = validation.workflow_filter(request)
        page_size = validation.page_size(request.page_size)
        tokens = await self._page_tokens()
        filters = rr.ListWorkflowsRequest()
        filters.CopyFrom(request)
        filters.ClearField("page_size")
        filters.ClearField("page_token")
        bound = fingerprint(filters.SerializeToString(deterministic=True))
        after = (
            decode_list_cursor(tokens.read(request.page_token, "ListWorkflows", bound)) if request.page_token else None
        )
        summaries, following = await self._backend.list_workflows(
            wanted, after, page_size, max_bytes=self._backend.limits.max_message_bytes
        )
        token = tokens.issue("ListWorkflows", bound, encode_list_cursor(following)) if following is not None else ""
        return rr.ListWorkflowsResponse(workflows=summaries, next_page_token=token)


class SignalStoreServicer(service_pb2_grpc.SignalStoreServicer):
    """Cancel and pause signals and external events (docs/behaviour.md SIG)."""

    def __init__(self, backend: Engine) -> None:
        self._backend = backend

    @translate_errors
    async def StoreSignal(self, request: rr.StoreSignalRequest, context: Context) -> rr.StoreSignalResponse:
        instance_id = validation.instance_id(request.instance_id)
        kind = validation.signal_kind(request.kind)
        validation.required(request, "request", "request")
        await self._backend.store_signal(instance_id, kind, validation.signal_request(request.request))
        return rr.StoreSignalResponse()

    @translate_errors
    async def GetSignal(self, request: rr.GetSignalRequest, context: Context) -> rr.GetSignalResponse:
        instance_id = validation.instance_id(request.instance_id)
        signal = await self._backend.get_signal(instance_id, validation.signal_kind(request.kind))
        return rr.GetSignalResponse(request=signal)

    @translate_errors
    async def ClearSignal(self, request: rr.ClearSignalRequest, context: Context) -> rr.ClearSignalResponse:
        instance_id = validation.instance_id(request.instance_id)
        await self._backend.clear_signal(instance_id, validation.signal_kind(request.kind))
        return rr.ClearSignalResponse()

    @translate_errors
    async def SendEvent(self, request: rr.SendEventRequest, context: Context) -> rr.SendEventResponse:
        instance_id = validation.instance_id(request.instance_id)
        signal_name = validation.signal_name(request.signal_name)
        validation.payload(request.payload, self._backend.limits.max_snapshot_bytes)
        await self._backend.send_event(instance_id, signal_name, request.payload)
        return rr.SendEventResponse()

    @translate_errors
    async def ConsumeEvent(self, request: rr.ConsumeEventRequest, context: Context) -> rr.ConsumeEventResponse:
        instance_id = validation.instance_id(request.instance_id)
        payload = await self._backend.consume_event(instance_id, validation.signal_name(request.signal_name))
        return rr.ConsumeEventResponse(payload=payload)

    @translate_errors
    async def CheckAndCancel(self, request: rr.CheckAndCancelRequest, context: Context) -> rr.CheckAndCancelResponse:
        instance_id = validation.instance_id(request.instance_id)
        interrupted_at_task = validation.optional_id_bytes(request, "interrupted_at_task", "interrupted_at_task")
        cancelled = await self._backend.check_and_cancel(instance_id, interrupted_at_task)
        return rr.CheckAndCancelResponse(cancelled=cancelled)

    @translate_errors
    async def CheckAndPause(self, request: rr.CheckAndPauseRequest, context: Context) -> rr.CheckAndPauseResponse:
        paused = await self._backend.check_and_pause(validation.instance_id(request.instance_id))
        return rr.CheckAndPauseResponse(paused=paused)

    @translate_errors
    async def CheckControlSignals(
        self, request: rr.CheckControlSignalsRequest, context: Context
    ) -> rr.CheckControlSignalsResponse:
        instance_id = validation.instance_id(request.instance_id)
        interrupted_at_task = validation.optional_id_bytes(request, "interrupted_at_task", "interrupted_at_task")
        signal = await self._backend.check_control_signals(instance_id, interrupted_at_task)
        return rr.CheckControlSignalsResponse(control_signal=signal)

    @translate_errors
    async def Unpause(self, request: rr.UnpauseRequest, context: Context) -> rr.UnpauseResponse:
        snapshot = await self._backend.unpause(validation.instance_id(request.instance_id))
        return rr.UnpauseResponse(snapshot=snapshot)


class TaskClaimStoreServicer(service_pb2_grpc.TaskClaimStoreServicer):
    """Leases on tasks, dispatch and wakeups (docs/behaviour.md CLAIM, DISP, WAKE)."""

    def __init__(self, backend: Engine, drain: Drain, max_wait_timeout: timedelta) -> None:
        self._backend = backend
        self._drain = drain
        self._max_wait_timeout = max_wait_timeout

    @translate_errors
    async def ClaimTask(self, request: rr.ClaimTaskRequest, context: Context) -> rr.ClaimTaskResponse:
        instance_id = validation.instance_id(request.instance_id)
        task_id = validation.id_bytes(request.task_id, "task_id")
        worker_id = validation.worker_id(request.worker_id)
        ttl = validation.claim_ttl(request, is_required=False)
        claim = await self._backend.claim_task(instance_id, task_id, worker_id, ttl)
        return rr.ClaimTaskResponse(claim=claim)

    @translate_errors
    async def ReleaseTaskClaim(
        self, request: rr.ReleaseTaskClaimRequest, context: Context
    ) -> rr.ReleaseTaskClaimResponse:
        instance_id = validation.instance_id(request.instance_id)
        task_id = validation.id_bytes(request.task_id, "task_id")
        await self._backend.release_task_claim(instance_id, task_id, validation.worker_id(request.worker_id))
        return rr.ReleaseTaskClaimResponse()

    @translate_errors
    async def ExtendTaskClaim(self, request: rr.ExtendTaskClaimRequest, context: Context) -> rr.ExtendTaskClaimResponse:
        instance_id = validation.instance_id(request.instance_id)
        task_id = validation.id_bytes(request.task_id, "task_id")
        worker_id = validation.worker_id(request.worker_id)
        ttl = validation.claim_ttl(request, is_required=True)
        assert ttl is not None  # is_required=True raised otherwise
        await self._backend.extend_task_claim(instance_id, task_id, worker_id, ttl)
        return rr.ExtendTaskClaimResponse()

    @translate_errors
    async def FindAvailableTasks(
        self, request: rr.FindAvailableTasksRequest, context: Context
    ) -> rr.FindAvailableTasksResponse:
        worker_id = validation.worker_id(request.worker_id)
        limit = validation.find_limit(request.limit)
        aging_interval = validation.aging_interval(request)
        tasks = await self._backend.find_available_tasks(
            worker_id,
            limit,
            aging_interval,
            validation.tags(request.worker_tags, "worker_tags"),
            max_bytes=self._backend.limits.max_message_bytes,
        )
        return rr.FindAvailableTasksResponse(tasks=[wire_task(task) for task in tasks])

    @translate_errors
    async def ClaimAvailableTasks(
        self, request: rr.ClaimAvailableTasksRequest, context: Context
    ) -> rr.ClaimAvailableTasksResponse:
        ttl = validation.claim_ttl(request, is_required=True)
        assert ttl is not None  # is_required=True raised otherwise
        claiming = self._backend.claim_available_tasks(
            validation.worker_id(request.worker_id),
            validation.find_limit(request.limit),
            ttl,
            aging_interval=validation.aging_interval(request),
            worker_tags=validation.tags(request.worker_tags, "worker_tags"),
            definition_hashes=validation.definition_hashes(request.definition_hashes),
            wait=validation.claim_wait(request, self._max_wait_timeout),
            max_bytes=self._backend.limits.max_message_bytes,
        )
        # A draining server answers at once: a waiting claimer reconnects elsewhere.
        _, claimed = await self._drain.race(claiming)
        tasks = [pb.ClaimedTask(task=wire_task(item.task), claim=item.claim) for item in claimed or ()]
        return rr.ClaimAvailableTasksResponse(tasks=tasks)

    @translate_errors
    async def CompleteTask(self, request: rr.CompleteTaskRequest, context: Context) -> rr.CompleteTaskResponse:
        saved = await self._backend.complete_task(*_completion(request, "", context))
        return rr.CompleteTaskResponse(saved=saved)

    @translate_errors
    async def CompleteTasks(self, request: rr.CompleteTasksRequest, context: Context) -> rr.CompleteTasksResponse:
        completions = [
            _completion(item, f"completions[{index}].", context) for index, item in enumerate(request.completions)
        ]
        answers = await self._backend.complete_tasks(completions)
        return rr.CompleteTasksResponse(results=[_completion_result(answer) for answer in answers])

    @translate_errors
    async def WaitForWakeup(self, request: rr.WaitForWakeupRequest, context: Context) -> rr.WaitForWakeupResponse:
        timeout = validation.wait_timeout(request, self._max_wait_timeout)
        # A draining server answers "no hint" at once rather than holding the call past the grace period.
        _, hint = await self._drain.race(
            self._backend.wait_for_wakeup(timeout, validation.tags(request.worker_tags, "worker_tags"))
        )
        return rr.WaitForWakeupResponse(hint=hint)

    @translate_errors
    async def WatchWakeups(
        self, request: rr.WatchWakeupsRequest, context: Context
    ) -> AsyncIterator[rr.WatchWakeupsResponse]:
        hints = aiter(self._backend.watch_wakeups(validation.tags(request.worker_tags, "worker_tags")))
        pending = asyncio.ensure_future(_next_or_none(hints))
        try:
            # One loop turn lets the backend subscribe; then the headers tell the caller the stream is open.
            await asyncio.sleep(0)
            await context.send_initial_metadata(())
            while True:
                finished, hint = await self._drain.race(pending)
                if not finished or hint is None:
                    return  # the server is draining, or the backend ended the stream
                yield rr.WatchWakeupsResponse(hint=hint)
                pending = asyncio.ensure_future(_next_or_none(hints))
        finally:
            if not pending.done():
                pending.cancel()
                await asyncio.wait({pending})
            close: Callable[[], Awaitable[None]] | None = getattr(hints, "aclose", None)
            if close is not None:
                await close()

    @translate_errors
    async def FindHintedTask(self, request: rr.FindHintedTaskRequest, context: Context) -> rr.FindHintedTaskResponse:
        validation.required(request, "hint", "hint")
        task = await self._backend.find_hinted_task(validation.wakeup_hint(request.hint))
        return rr.FindHintedTaskResponse(task=None if task is None else wire_task(task))

    @translate_errors
    async def SaveSnapshotFenced(
        self, request: rr.SaveSnapshotFencedRequest, context: Context
    ) -> rr.SaveSnapshotFencedResponse:
        validation.required(request, "snapshot", "snapshot")
        snapshot = inherit_trace_parent(validation.snapshot(request.snapshot), context)
        task_id = validation.id_bytes(request.task_id, "task_id")
        worker_id = validation.worker_id(request.worker_id)
        saved = await self._backend.save_snapshot_fenced(snapshot, task_id, worker_id)
        return rr.SaveSnapshotFencedResponse(saved=saved)


async def _next_or_none(iterator: AsyncIterator[_T]) -> _T | None:
    """The next item, or None when the iterator is exhausted."""
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return None


class TaskResultStoreServicer(service_pb2_grpc.TaskResultStoreServicer):
    """Read access to single task results (docs/behaviour.md RES)."""

    def __init__(self, backend: Engine) -> None:
        self._backend = backend

    @translate_errors
    async def LoadTaskResult(self, request: rr.LoadTaskResultRequest, context: Context) -> rr.LoadTaskResultResponse:
        instance_id = validation.instance_id(request.instance_id)
        output = await self._backend.load_task_result(instance_id, validation.id_bytes(request.task_id, "task_id"))
        return rr.LoadTaskResultResponse(output=output)


class LifecycleServicer(service_pb2_grpc.LifecycleServicer):
    """Starting runs (docs/behaviour.md RUN)."""

    def __init__(self, backend: Engine) -> None:
        self._backend = backend

    @translate_errors
    async def PrepareRun(self, request: rr.PrepareRunRequest, context: Context) -> rr.PrepareRunResponse:
        # Only NUL is refused here: an empty or long id gets prepare_run's RunConflict.InvalidInstanceId.
        validation.text(request.instance_id, "instance_id")
        definition_hash = validation.id_bytes(request.definition_hash, "definition_hash")
        validation.required(request, "first_task", "first_task")
        first_task = validation.first_task(request.first_task)
        policy = validation.conflict_policy(request.conflict_policy)
        outcome = await self._backend.prepare_run(
            request.instance_id,
            definition_hash,
            request.input,
            first_task,
            policy,
            trace_parent=call_trace_parent(context),
        )
        return rr.PrepareRunResponse(outcome=outcome)


def persistence_servicers(backend: Engine, drain: Drain, max_wait_timeout: timedelta) -> list[object]:
    """One servicer per persistence service, in SERVICE_NAMES order."""
    return [
        SnapshotStoreServicer(backend),
        SignalStoreServicer(backend),
        TaskClaimStoreServicer(backend, drain, max_wait_timeout),
        TaskResultStoreServicer(backend),
        LifecycleServicer(backend),
    ]


def mount(server: grpc.aio.Server, servicer: object) -> None:
    """Register a servicer's methods, with request parsing that turns undecodable bytes into INVALID_ARGUMENT.

    Used instead of the generated add_*_to_server functions, whose parsers make
    gRPC answer UNKNOWN (a server bug, by our contract) for bytes that are not
    the request message (e.g. a string field holding bad UTF-8).
    """
    service = _service_of(servicer)
    handlers = {method.name: _method_handler(servicer, method.name, service) for method in service.methods}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def _service_of(servicer: object) -> ServiceDescriptor:
    for service in service_pb2.DESCRIPTOR.services_by_name.values():
        base = getattr(service_pb2_grpc, f"{service.name}Servicer")
        if isinstance(servicer, base):
            return service
    raise TypeError(f"{type(servicer).__name__} implements no persistence service")


def _method_handler(servicer: object, name: str, service: ServiceDescriptor) -> grpc.RpcMethodHandler[Any, Any]:
    method = service.methods_by_name[name]
    request_class: type[Message] = getattr(rr, method.input_type.name)
    response_class: type[Message] = getattr(rr, method.output_type.name)
    serializers: dict[str, Any] = {
        "request_deserializer": _tolerant_parser(request_class),
        "response_serializer": response_class.SerializeToString,
    }
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(_writing_responses(getattr(servicer, name)), **serializers)
    return grpc.unary_unary_rpc_method_handler(getattr(servicer, name), **serializers)


def _writing_responses(
    stream: Callable[[Any, Context], AsyncIterator[Message]],
) -> Callable[[Any, Context], AsyncIterator[Message]]:
    """A streaming behavior that writes its responses itself (`context.write`) and yields none.

    grpc.aio iterates a response generator with `async for` and never closes it: a cancel that lands while
    grpc writes a response abandons the generator at its `yield`, and its cleanup (the servicer's, and every
    interceptor's around it) runs later from the garbage collector, after the call's core object is gone.
    Written from inside, a cancel always lands in our own frames while the call is alive, and every cleanup
    (the wakeup subscription, the metrics of the call) runs at once.
    """

    async def write_all(request: Any, context: Context) -> AsyncIterator[Message]:
        responses = stream(request, context)
        try:
            async for response in responses:
                await context.write(response)
        finally:
            close: Callable[[], Awaitable[None]] | None = getattr(responses, "aclose", None)
            if close is not None:
                await close()
        return
        yield  # an async generator, as interceptors expect of a streaming behavior, that never suspends here

    return write_all


def _tolerant_parser(request_class: type[Message]) -> Callable[[bytes], Message | MalformedRequest]:
    def parse(raw: bytes) -> Message | MalformedRequest:
        try:
            return request_class.FromString(raw)
        except DecodeError as error:
            return MalformedRequest(request_class.DESCRIPTOR.name, str(error))

    return parse


def _completion(request: rr.CompleteTaskRequest, prefix: str, context: Context) -> TaskCompletion:
    """A CompleteTaskRequest validated, its fields named after `prefix` ("" or "completions[i].")."""
    validation.required(request, "snapshot", f"{prefix}snapshot")
    snapshot = inherit_trace_parent(validation.snapshot(request.snapshot, f"{prefix}snapshot"), context)
    task_id = validation.id_bytes(request.task_id, f"{prefix}task_id")
    return TaskCompletion(snapshot, task_id, validation.worker_id(request.worker_id, f"{prefix}worker_id"))


def _completion_result(answer: bool | FinalStateError) -> rr.CompleteTaskResult:
    if isinstance(answer, FinalStateError):
        return rr.CompleteTaskResult(saved=False, final_state=answer.state)
    return rr.CompleteTaskResult(saved=answer)
