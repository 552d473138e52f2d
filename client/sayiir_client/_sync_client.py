"""The blocking client: the asyncio client's methods, over the generated synchronous stubs.

Kept method for method in step with `_async_client.py` (a test compares the two
surfaces); it runs no event loop, so it is safe to use from threads and scripts.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Self, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sayiir_client import _wire
from sayiir_client._decode import error_from_rpc_error
from sayiir_client._wire import ConflictPolicy, ControlSignal, SignalKind
from sayiir_client.errors import BackendUnavailableError, NotFoundError
from sayiir_client.options import DEFAULT_DEADLINE, DEFAULT_MAX_MESSAGE_BYTES, KeepaliveOptions, RetryOptions
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc as services

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


class PersistenceClient:
    """Blocking client of the persistence service: same methods as AsyncPersistenceClient, without `await`.

    Failed calls raise the classes of `sayiir_client.errors`. Use it as a
    context manager, or call `close()`::

        with PersistenceClient("localhost:50051") as client:
            snapshot = client.load_snapshot("order-123")
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        channel: grpc.Channel | None = None,
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
            channel: An open grpc channel to use instead of a target; the client will not close it.
            credentials: TLS credentials (grpc.ssl_channel_credentials(...)); None connects in plaintext.
            token: Bearer token sent as "authorization: Bearer <token>" metadata on every call.
            deadline: Deadline of each call; None waits forever. Long polls get their wait on top.
            retry: Backoff for UNAVAILABLE on the idempotent RPCs (see options.IDEMPOTENT_METHODS); None disables.
            keepalive: HTTP/2 keepalive pings (see KeepaliveOptions); None sends none.
            max_message_bytes: Largest message sent or received (default 16 MiB, as the server); None: gRPC's 4 MiB.
        """
        _wire.check_target(target, channel is not None)
        if channel is None:
            assert target is not None
            options = _wire.options_for(retry, keepalive, max_message_bytes)
            if credentials is None:
                channel = grpc.insecure_channel(target, options=options)
            else:
                channel = grpc.secure_channel(target, credentials, options=options)
            self._owns_channel = True
            self._description = f"grpc://{target}"
        else:
            self._owns_channel = False
            self._description = "grpc (caller's channel)"
        self._channel = channel
        self._metadata = _wire.call_metadata(token)
        self._deadline = deadline
        self._retry = retry
        self._snapshots = services.SnapshotStoreStub(channel)
        self._signals = services.SignalStoreStub(channel)
        self._claims = services.TaskClaimStoreStub(channel)
        self._results = services.TaskResultStoreStub(channel)
        self._lifecycle = services.LifecycleStub(channel)
        self._health = health_pb2_grpc.HealthStub(channel)

    # --- lifecycle -----------------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel (unless it was given by the caller); the client is unusable afterwards."""
        if self._owns_channel:
            self._channel.close()

    @property
    def description(self) -> str:
        """The server this client talks to, without credentials ("grpc://localhost:50051")."""
        return self._description

    def check_health(self) -> None:
        """Ask grpc.health.v1 whether the server (storage included) serves; BackendUnavailableError when not."""
        request = health_pb2.HealthCheckRequest(service=_wire.HEALTH_SERVICE)
        response = self._call(self._health.Check, request)
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            raise BackendUnavailableError(f"{self._description} is {name}")

    # --- SnapshotStore -------------------------------------------------------------------------------------------

    def save_snapshot(self, snapshot: pb.WorkflowSnapshot) -> None:
        """Insert or overwrite by instance id; Completed/Failed retains the previous task results."""
        self._call(self._snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=snapshot))

    def save_task_result(self, instance_id: str, task_id: bytes, output: bytes) -> None:
        """Record one task's output while InProgress; NotFoundError without a snapshot."""
        request = rr.SaveTaskResultRequest(instance_id=instance_id, task_id=task_id, output=output)
        self._call(self._snapshots.SaveTaskResult, request)

    def load_snapshot(self, instance_id: str) -> pb.WorkflowSnapshot:
        """The stored snapshot; NotFoundError when missing."""
        response = self._call(self._snapshots.LoadSnapshot, rr.LoadSnapshotRequest(instance_id=instance_id))
        return response.snapshot

    def delete_snapshot(self, instance_id: str) -> None:
        """Delete the snapshot and its retained results (not its signals); NotFoundError when missing."""
        self._call(self._snapshots.DeleteSnapshot, rr.DeleteSnapshotRequest(instance_id=instance_id))

    def list_snapshots(self) -> list[str]:
        """Every instance id, fetched page by page."""
        return [instance_id for instance_id in self.iter_snapshots()]

    def iter_snapshots(self, page_size: int = _wire.MAX_PAGE_SIZE) -> Iterator[str]:
        """Every instance id in ascending byte order, one page in memory at a time."""
        request = rr.ListSnapshotsRequest(page_size=page_size)
        while True:
            response = self._call(self._snapshots.ListSnapshots, request)
            yield from response.instance_ids
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    def list_snapshots_page(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` instance ids greater than `after`, in ascending byte order."""
        ids: list[str] = []
        token = _wire.page_token_after(after)
        while len(ids) < limit:
            page_size = min(limit - len(ids), _wire.MAX_PAGE_SIZE)
            request = rr.ListSnapshotsRequest(page_size=page_size, page_token=token)
            response = self._call(self._snapshots.ListSnapshots, request)
            ids.extend(response.instance_ids)
            if not response.next_page_token:
                break
            token = response.next_page_token
        return ids

    def insert_snapshot_if_absent(self, snapshot: pb.WorkflowSnapshot) -> bool:
        """Save unless a snapshot exists; True when saved.

        NOT atomic: there is no RPC for it, so two callers can both see "absent".
        To start runs, use `prepare_run`, which the server performs atomically.
        """
        try:
            self.load_snapshot(snapshot.instance_id)
        except NotFoundError:
            self.save_snapshot(snapshot)
            return True
        return False

    # --- SignalStore ---------------------------------------------------------------------------------------------

    def store_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        """Store a cancel or pause request; NotFoundError, CannotCancelError, CannotPauseError."""
        message = rr.StoreSignalRequest(instance_id=instance_id, kind=kind, request=request)
        self._call(self._signals.StoreSignal, message)

    def get_signal(self, instance_id: str, kind: SignalKind) -> pb.SignalRequest | None:
        """The pending request of this kind, or None."""
        response = self._call(self._signals.GetSignal, rr.GetSignalRequest(instance_id=instance_id, kind=kind))
        return response.request if response.HasField("request") else None

    def clear_signal(self, instance_id: str, kind: SignalKind) -> None:
        """Remove the pending request of this kind; never an error."""
        self._call(self._signals.ClearSignal, rr.ClearSignalRequest(instance_id=instance_id, kind=kind))

    def send_event(self, instance_id: str, signal_name: str, payload: bytes) -> None:
        """Append to the FIFO of (instance, name), whether or not the instance exists. Never retried."""
        request = rr.SendEventRequest(instance_id=instance_id, signal_name=signal_name, payload=payload)
        self._call(self._signals.SendEvent, request)

    def consume_event(self, instance_id: str, signal_name: str) -> bytes | None:
        """Remove and return the oldest payload of (instance, name), or None."""
        request = rr.ConsumeEventRequest(instance_id=instance_id, signal_name=signal_name)
        response = self._call(self._signals.ConsumeEvent, request)
        return response.payload if response.HasField("payload") else None

    def check_and_cancel(self, instance_id: str, interrupted_at_task: bytes | None = None) -> bool:
        """Atomically apply a pending cancel to an InProgress instance; True when applied."""
        request = rr.CheckAndCancelRequest(instance_id=instance_id, interrupted_at_task=interrupted_at_task)
        response = self._call(self._signals.CheckAndCancel, request)
        return response.cancelled

    def check_and_pause(self, instance_id: str) -> bool:
        """Atomically apply a pending pause to an InProgress instance; True when applied."""
        response = self._call(self._signals.CheckAndPause, rr.CheckAndPauseRequest(instance_id=instance_id))
        return response.paused

    def check_control_signals(self, instance_id: str, interrupted_at_task: bytes | None = None) -> ControlSignal | None:
        """Apply a pending cancel, else a pending pause: CONTROL_SIGNAL_CANCELLED, _PAUSED, or None."""
        request = rr.CheckControlSignalsRequest(instance_id=instance_id, interrupted_at_task=interrupted_at_task)
        response = self._call(self._signals.CheckControlSignals, request)
        return response.control_signal if response.HasField("control_signal") else None

    def unpause(self, instance_id: str) -> pb.WorkflowSnapshot:
        """Resume a Paused instance and return it; NotFoundError, CannotPauseError when not Paused."""
        response = self._call(self._signals.Unpause, rr.UnpauseRequest(instance_id=instance_id))
        return response.snapshot

    # --- TaskClaimStore ------------------------------------------------------------------------------------------

    def claim_task(
        self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta | None
    ) -> pb.TaskClaim | None:
        """A new claim, or None while a live claim exists (whoever holds it). Never retried."""
        request = rr.ClaimTaskRequest(
            instance_id=instance_id, task_id=task_id, worker_id=worker_id, ttl=_wire.optional_duration(ttl)
        )
        response = self._call(self._claims.ClaimTask, request)
        return response.claim if response.HasField("claim") else None

    def release_task_claim(self, instance_id: str, task_id: bytes, worker_id: str) -> None:
        """Remove the worker's claim; NotFoundError without a claim, ClaimLostError when held by another."""
        request = rr.ReleaseTaskClaimRequest(instance_id=instance_id, task_id=task_id, worker_id=worker_id)
        self._call(self._claims.ReleaseTaskClaim, request)

    def extend_task_claim(self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta) -> None:
        """Heartbeat: expires_at = now + ttl; NotFoundError, ClaimLostError."""
        request = rr.ExtendTaskClaimRequest(
            instance_id=instance_id, task_id=task_id, worker_id=worker_id, ttl=_wire.duration(ttl)
        )
        self._call(self._claims.ExtendTaskClaim, request)

    def find_available_tasks(
        self,
        worker_id: str,
        limit: int,
        aging_interval: timedelta = _wire.DEFAULT_AGING_INTERVAL,
        worker_tags: Sequence[str] = (),
    ) -> list[pb.AvailableTask]:
        """Ready tasks in dispatch order (not claimed): at most `limit`, 1 to 1000."""
        request = rr.FindAvailableTasksRequest(
            worker_id=worker_id,
            limit=limit,
            aging_interval=_wire.duration(aging_interval),
            worker_tags=worker_tags,
        )
        response = self._call(self._claims.FindAvailableTasks, request)
        return list(response.tasks)

    def wait_for_wakeup(self, timeout: timedelta, worker_tags: Sequence[str] = ()) -> pb.TaskWakeupHint | None:
        """Long-poll for one task-ready hint; None when `timeout` passes first."""
        request = rr.WaitForWakeupRequest(timeout=_wire.duration(timeout), worker_tags=worker_tags)
        response = self._call(self._claims.WaitForWakeup, request, extra_wait=timeout)
        return response.hint if response.HasField("hint") else None

    def watch_wakeups(self, worker_tags: Sequence[str] = ()) -> Generator[pb.TaskWakeupHint, None, None]:
        """Stream task-ready hints until the caller stops iterating.

        When the stream breaks with UNAVAILABLE, or the server ends it (e.g. while
        draining), it is reopened after a jittered backoff (RetryOptions); hints
        sent in between are lost, which find_available_tasks makes up for. Any
        other failure is raised as a typed error. `close()` ends the stream.
        """
        request = rr.WatchWakeupsRequest(worker_tags=worker_tags)
        failures = 0
        while True:
            call = self._claims.WatchWakeups(request, metadata=self._metadata)
            try:
                for response in call:
                    failures = 0
                    yield response.hint
            except grpc.RpcError as error:
                if not isinstance(error, grpc.Call) or error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise error_from_rpc_error(error) from error
            finally:
                call.cancel()
            failures += 1
            time.sleep(_wire.reconnect_delay(self._retry, failures))

    def find_hinted_task(self, hint: pb.TaskWakeupHint) -> pb.AvailableTask | None:
        """The available task a hint names, if it still is one (not claimed); else None."""
        response = self._call(self._claims.FindHintedTask, rr.FindHintedTaskRequest(hint=hint))
        return response.task if response.HasField("task") else None

    def save_snapshot_fenced(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        """Save only while `worker_id` holds a live claim on (snapshot's instance, task); False wrote nothing."""
        request = rr.SaveSnapshotFencedRequest(snapshot=snapshot, task_id=task_id, worker_id=worker_id)
        response = self._call(self._claims.SaveSnapshotFenced, request)
        return response.saved

    # --- TaskResultStore -----------------------------------------------------------------------------------------

    def load_task_result(self, instance_id: str, task_id: bytes) -> bytes | None:
        """The task's output, None when it never ran; NotFoundError when the instance is missing."""
        request = rr.LoadTaskResultRequest(instance_id=instance_id, task_id=task_id)
        response = self._call(self._results.LoadTaskResult, request)
        return response.output if response.HasField("output") else None

    # --- Lifecycle -----------------------------------------------------------------------------------------------

    def prepare_run(
        self,
        instance_id: str,
        definition_hash: bytes,
        input: bytes,
        first_task: pb.FirstTask,
        conflict_policy: ConflictPolicy = enums.CONFLICT_POLICY_FAIL,
    ) -> pb.PrepareRunOutcome:
        """Start a run atomically on the server; a RunConflictError subclass when refused. Never retried."""
        request = rr.PrepareRunRequest(
            instance_id=instance_id,
            definition_hash=definition_hash,
            input=input,
            first_task=first_task,
            conflict_policy=conflict_policy,
        )
        response = self._call(self._lifecycle.PrepareRun, request)
        return response.outcome

    # --- the one call path ---------------------------------------------------------------------------------------

    def _call(
        self,
        method: grpc.UnaryUnaryMultiCallable[_Request, _Response],
        request: _Request,
        extra_wait: timedelta = _wire.NO_EXTRA_WAIT,
    ) -> _Response:
        """Every unary call goes through here: deadline, metadata, and the typed error of a failure."""
        try:
            return method(request, timeout=_wire.timeout_seconds(self._deadline, extra_wait), metadata=self._metadata)
        except grpc.RpcError as error:
            raise error_from_rpc_error(error) from error
