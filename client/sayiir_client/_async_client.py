"""The asyncio client: one method per RPC, named and typed like the storage traits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self, TypeVar

import grpc
from grpc_health.v1 import health_pb2_grpc

from sayiir_client import _requests, _wire
from sayiir_client._decode import error_from_rpc_error
from sayiir_client._wire import ConflictPolicy, ControlSignal, SignalKind, WorkflowOrder, WorkflowState
from sayiir_client.errors import FinalStateError, NotFoundError
from sayiir_client.options import DEFAULT_DEADLINE, DEFAULT_MAX_MESSAGE_BYTES, KeepaliveOptions, RetryOptions
from sayiir_client.tasks import TaskCompletion
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import service_pb2_grpc as services

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_Result = TypeVar("_Result")

_CHANNELS = _wire.ChannelFactory(grpc.aio.insecure_channel, grpc.aio.secure_channel)


class AsyncPersistenceClient:
    """Asyncio client of the persistence service.

    It satisfies the server's storage Protocol `sayiir_server.store.Backend`
    structurally, so code written against a local backend runs unchanged against
    a remote server. Failed calls raise the classes of `sayiir_client.errors`.

    Use it as an async context manager, or call `close()`::

        async with AsyncPersistenceClient("localhost:50051") as client:
            snapshot = await client.load_snapshot("order-123")
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        channel: grpc.aio.Channel | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        deadline: timedelta | None = DEFAULT_DEADLINE,
        retry: RetryOptions | None = _wire.DEFAULT_RETRY,
        keepalive: KeepaliveOptions | None = _wire.DEFAULT_KEEPALIVE,
        max_message_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        """Connect to `target` ("host:port"), or use an existing `channel` (then the channel options are its own).

        Args:
            target: Address of the server, as gRPC understands it ("localhost:50051", "dns:///svc:443").
            channel: An open grpc.aio channel to use instead of a target; the client will not close it.
            credentials: TLS credentials (grpc.ssl_channel_credentials(...)); None connects in plaintext.
            token: Bearer token sent as "authorization: Bearer <token>" metadata on every call.
            deadline: Deadline of each call; None waits forever. Long polls get their wait on top.
            retry: Backoff for UNAVAILABLE on the idempotent RPCs (see options.IDEMPOTENT_METHODS); None disables.
            keepalive: HTTP/2 keepalive pings (see KeepaliveOptions); None sends none.
            max_message_bytes: Largest message sent or received (default 16 MiB, as the server); None: gRPC's 4 MiB.
        """
        self._connection = _wire.connect(
            _CHANNELS, target, channel, credentials, token, deadline, retry, keepalive, max_message_bytes
        )
        channel = self._connection.channel
        self._snapshots = services.SnapshotStoreStub(channel)
        self._signals = services.SignalStoreStub(channel)
        self._claims = services.TaskClaimStoreStub(channel)
        self._results = services.TaskResultStoreStub(channel)
        self._lifecycle = services.LifecycleStub(channel)
        self._health = health_pb2_grpc.HealthStub(channel)

    # --- lifecycle -----------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel (unless it was given by the caller); the client is unusable afterwards."""
        if self._connection.owns_channel:
            await self._connection.channel.close()

    @property
    def description(self) -> str:
        """The server this client talks to, without credentials ("grpc://localhost:50051")."""
        return self._connection.description

    async def check_health(self) -> None:
        """Ask grpc.health.v1 whether the server (storage included) serves; BackendUnavailableError when not."""
        await self._call(self._health.Check, _requests.check_health(self._connection.description))

    # --- SnapshotStore -------------------------------------------------------------------------------------------

    async def save_snapshot(self, snapshot: pb.WorkflowSnapshot) -> None:
        """Insert or overwrite by instance id; Completed/Failed retains the previous task results."""
        await self._call(self._snapshots.SaveSnapshot, _requests.save_snapshot(snapshot))

    async def save_task_result(self, instance_id: str, task_id: bytes, output: bytes) -> None:
        """Record one task's output while InProgress; NotFoundError without a snapshot."""
        await self._call(self._snapshots.SaveTaskResult, _requests.save_task_result(instance_id, task_id, output))

    async def load_snapshot(self, instance_id: str) -> pb.WorkflowSnapshot:
        """The stored snapshot; NotFoundError when missing."""
        return await self._call(self._snapshots.LoadSnapshot, _requests.load_snapshot(instance_id))

    async def delete_snapshot(self, instance_id: str) -> None:
        """Delete the snapshot and its retained results (not its signals); NotFoundError when missing."""
        await self._call(self._snapshots.DeleteSnapshot, _requests.delete_snapshot(instance_id))

    async def list_snapshots(self) -> list[str]:
        """Every instance id, fetched page by page."""
        return [instance_id async for instance_id in self.iter_snapshots()]

    async def iter_snapshots(self, page_size: int = _wire.MAX_PAGE_SIZE) -> AsyncIterator[str]:
        """Every instance id in ascending byte order, one page in memory at a time."""
        listing = _requests.SnapshotListing(page_size=page_size)
        while not listing.done:
            for instance_id in await self._call(self._snapshots.ListSnapshots, listing.next_page()):
                yield instance_id

    async def list_snapshots_page(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` instance ids greater than `after`, in ascending byte order."""
        listing = _requests.SnapshotListing(after=after, limit=limit)
        ids: list[str] = []
        while not listing.done:
            ids.extend(await self._call(self._snapshots.ListSnapshots, listing.next_page()))
        return ids

    async def list_workflows(
        self,
        *,
        states: Sequence[WorkflowState] = (),
        definition_hash: bytes | None = None,
        tag: str | None = None,
        prefix: str = "",
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        order: WorkflowOrder = enums.WORKFLOW_ORDER_NEWEST_FIRST,
        page_size: int = _wire.DEFAULT_PAGE_SIZE,
        page_token: str = "",
    ) -> _requests.WorkflowPage:
        """One page of workflow summaries matching every filter given, newest first (or by instance id)."""
        filters = _requests.workflow_filters(states, definition_hash, tag, prefix, updated_after, updated_before, order)
        return await self._call(self._snapshots.ListWorkflows, _requests.list_workflows(filters, page_size, page_token))

    async def iter_workflows(
        self,
        *,
        states: Sequence[WorkflowState] = (),
        definition_hash: bytes | None = None,
        tag: str | None = None,
        prefix: str = "",
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        order: WorkflowOrder = enums.WORKFLOW_ORDER_NEWEST_FIRST,
        page_size: int = _wire.MAX_PAGE_SIZE,
    ) -> AsyncIterator[pb.WorkflowSummary]:
        """Every summary matching the filters, page by page (one page in memory at a time)."""
        filters = _requests.workflow_filters(states, definition_hash, tag, prefix, updated_after, updated_before, order)
        token = ""
        while True:
            page = await self._call(self._snapshots.ListWorkflows, _requests.list_workflows(filters, page_size, token))
            for summary in page.workflows:
                yield summary
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def insert_snapshot_if_absent(self, snapshot: pb.WorkflowSnapshot) -> bool:
        """Save unless a snapshot exists; True when saved.

        NOT atomic: there is no RPC for it, so two callers can both see "absent".
        To start runs, use `prepare_run`, which the server performs atomically.
        """
        try:
            await self.load_snapshot(snapshot.instance_id)
        except NotFoundError:
            await self.save_snapshot(snapshot)
            return True
        return False

    # --- SignalStore ---------------------------------------------------------------------------------------------

    async def store_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        """Store a cancel or pause request; NotFoundError, CannotCancelError, CannotPauseError."""
        await self._call(self._signals.StoreSignal, _requests.store_signal(instance_id, kind, request))

    async def get_signal(self, instance_id: str, kind: SignalKind) -> pb.SignalRequest | None:
        """The pending request of this kind, or None."""
        return await self._call(self._signals.GetSignal, _requests.get_signal(instance_id, kind))

    async def clear_signal(self, instance_id: str, kind: SignalKind) -> None:
        """Remove the pending request of this kind; never an error."""
        await self._call(self._signals.ClearSignal, _requests.clear_signal(instance_id, kind))

    async def send_event(self, instance_id: str, signal_name: str, payload: bytes) -> None:
        """Append to the FIFO of (instance, name), whether or not the instance exists. Never retried."""
        await self._call(self._signals.SendEvent, _requests.send_event(instance_id, signal_name, payload))

    async def consume_event(self, instance_id: str, signal_name: str) -> bytes | None:
        """Remove and return the oldest payload of (instance, name), or None."""
        return await self._call(self._signals.ConsumeEvent, _requests.consume_event(instance_id, signal_name))

    async def check_and_cancel(self, instance_id: str, interrupted_at_task: bytes | None = None) -> bool:
        """Atomically apply a pending cancel to an InProgress instance; True when applied."""
        call = _requests.check_and_cancel(instance_id, interrupted_at_task)
        return await self._call(self._signals.CheckAndCancel, call)

    async def check_and_pause(self, instance_id: str) -> bool:
        """Atomically apply a pending pause to an InProgress instance; True when applied."""
        return await self._call(self._signals.CheckAndPause, _requests.check_and_pause(instance_id))

    async def check_control_signals(
        self, instance_id: str, interrupted_at_task: bytes | None = None
    ) -> ControlSignal | None:
        """Apply a pending cancel, else a pending pause: CONTROL_SIGNAL_CANCELLED, _PAUSED, or None."""
        call = _requests.check_control_signals(instance_id, interrupted_at_task)
        return await self._call(self._signals.CheckControlSignals, call)

    async def unpause(self, instance_id: str) -> pb.WorkflowSnapshot:
        """Resume a Paused instance and return it; NotFoundError, CannotPauseError when not Paused."""
        return await self._call(self._signals.Unpause, _requests.unpause(instance_id))

    # --- TaskClaimStore ------------------------------------------------------------------------------------------

    async def claim_task(
        self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta | None
    ) -> pb.TaskClaim | None:
        """A new claim, or None while a live claim exists (whoever holds it). Never retried."""
        return await self._call(self._claims.ClaimTask, _requests.claim_task(instance_id, task_id, worker_id, ttl))

    async def release_task_claim(self, instance_id: str, task_id: bytes, worker_id: str) -> None:
        """Remove the worker's claim; NotFoundError without a claim, ClaimLostError when held by another."""
        call = _requests.release_task_claim(instance_id, task_id, worker_id)
        await self._call(self._claims.ReleaseTaskClaim, call)

    async def extend_task_claim(self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta) -> None:
        """Heartbeat: expires_at = now + ttl; NotFoundError, ClaimLostError."""
        call = _requests.extend_task_claim(instance_id, task_id, worker_id, ttl)
        await self._call(self._claims.ExtendTaskClaim, call)

    async def find_available_tasks(
        self,
        worker_id: str,
        limit: int,
        aging_interval: timedelta = _wire.DEFAULT_AGING_INTERVAL,
        worker_tags: Sequence[str] = (),
    ) -> list[pb.AvailableTask]:
        """Ready tasks in dispatch order (not claimed): at most `limit`, 1 to 1000."""
        call = _requests.find_available_tasks(worker_id, limit, aging_interval, worker_tags)
        return await self._call(self._claims.FindAvailableTasks, call)

    async def wait_for_wakeup(self, timeout: timedelta, worker_tags: Sequence[str] = ()) -> pb.TaskWakeupHint | None:
        """Long-poll for one task-ready hint; None when `timeout` passes first."""
        return await self._call(self._claims.WaitForWakeup, _requests.wait_for_wakeup(timeout, worker_tags))

    async def watch_wakeups(self, worker_tags: Sequence[str] = ()) -> AsyncGenerator[pb.TaskWakeupHint, None]:
        """Stream task-ready hints until the caller stops iterating.

        When the stream breaks with UNAVAILABLE, or the server ends it (e.g. while
        draining), it is reopened after a jittered backoff (RetryOptions); hints
        sent in between are lost, which find_available_tasks makes up for. Any
        other failure is raised as a typed error. `aclose()` ends the stream.
        """
        request = _requests.watch_wakeups(worker_tags)
        failures = 0
        while True:
            call = self._claims.WatchWakeups(request, metadata=self._connection.metadata)
            try:
                async for response in call:
                    failures = 0
                    yield response.hint
            except grpc.aio.AioRpcError as error:
                if not _wire.reopens_stream(error):
                    raise error_from_rpc_error(error) from error
            finally:
                call.cancel()
            failures += 1
            await asyncio.sleep(_wire.reconnect_delay(self._connection.retry, failures))

    async def find_hinted_task(self, hint: pb.TaskWakeupHint) -> pb.AvailableTask | None:
        """The available task a hint names, if it still is one (not claimed); else None."""
        return await self._call(self._claims.FindHintedTask, _requests.find_hinted_task(hint))

    async def claim_available_tasks(
        self,
        worker_id: str,
        limit: int,
        ttl: timedelta,
        *,
        aging_interval: timedelta = _wire.DEFAULT_AGING_INTERVAL,
        worker_tags: Sequence[str] = (),
        definition_hashes: Sequence[bytes] = (),
        wait: timedelta = timedelta(0),
    ) -> list[pb.ClaimedTask]:
        """Find, claim and guard up to `limit` tasks at once; with none available, wait up to `wait` for one.

        Every task returned is claimed by `worker_id` for `ttl`, is its instance's current ready task and has
        no pending cancel or pause. Not retried (a repeat would claim other tasks).
        """
        call = _requests.claim_available_tasks(
            worker_id, limit, ttl, aging_interval, worker_tags, definition_hashes, wait
        )
        return await self._call(self._claims.ClaimAvailableTasks, call)

    async def complete_task(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        """Save the snapshot and release the claim in one transaction; False (lease lost) wrote nothing."""
        return await self._call(self._claims.CompleteTask, _requests.complete_task(snapshot, task_id, worker_id))

    async def complete_tasks(self, completions: Sequence[TaskCompletion]) -> list[bool | FinalStateError]:
        """complete_task for each, in one call: per completion what it would have answered (FinalStateError in
        its place); one invalid completion refuses the call and writes nothing."""
        return await self._call(self._claims.CompleteTasks, _requests.complete_tasks(completions))

    async def save_snapshot_fenced(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        """Save only while `worker_id` holds a live claim on (snapshot's instance, task); False wrote nothing."""
        call = _requests.save_snapshot_fenced(snapshot, task_id, worker_id)
        return await self._call(self._claims.SaveSnapshotFenced, call)

    # --- TaskResultStore -----------------------------------------------------------------------------------------

    async def load_task_result(self, instance_id: str, task_id: bytes) -> bytes | None:
        """The task's output, None when it never ran; NotFoundError when the instance is missing."""
        return await self._call(self._results.LoadTaskResult, _requests.load_task_result(instance_id, task_id))

    # --- Lifecycle -----------------------------------------------------------------------------------------------

    async def prepare_run(
        self,
        instance_id: str,
        definition_hash: bytes,
        input: bytes,
        first_task: pb.FirstTask,
        conflict_policy: ConflictPolicy = enums.CONFLICT_POLICY_FAIL,
    ) -> pb.PrepareRunOutcome:
        """Start a run atomically on the server; a RunConflictError subclass when refused. Never retried."""
        call = _requests.prepare_run(instance_id, definition_hash, input, first_task, conflict_policy)
        return await self._call(self._lifecycle.PrepareRun, call)

    # --- the one call path ---------------------------------------------------------------------------------------

    async def _call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[_Request, _Response],
        call: _requests.UnaryCall[_Request, _Response, _Result],
    ) -> _Result:
        """Every unary call goes through here: deadline, metadata, the typed error of a failure, then the result."""
        timeout = _wire.timeout_seconds(self._connection.deadline, call.extra_wait)
        try:
            response = await method(call.request, timeout=timeout, metadata=self._connection.metadata)
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc_error(error) from error
        return call.result(response)
