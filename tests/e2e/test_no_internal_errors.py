"""No request, however malformed, makes the server answer INTERNAL or UNKNOWN (docs/behaviour.md ID, ERR).

Random and boundary requests go to every RPC of one in-process server over the
memory backend, seeded with runs in several states so that well-formed
requests reach real data too. Any status but INTERNAL and UNKNOWN is fine here:
what each one must be is pinned by the other tests.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.api.server import PersistenceServer, ServerOptions
from sayiir_server.backends.memory import InMemoryBackend
from sayiir_server.domain.model import timestamp, utc_now
from tests.e2e.wire import DEFINITION, RPC_NAMES, STREAMING_RPCS, at_task_snapshot, node_id, stubs

SERVER_BUGS = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
EXAMPLES_PER_RPC = 40
STREAM_LISTEN_SECONDS = 0.02

KNOWN_INSTANCES = ("order-1", "order-2", "done-1", "paused-1")
KNOWN_IDS = (DEFINITION, node_id("fetch"), node_id("ship"))
NOW = int(utc_now().timestamp())

# --- values --------------------------------------------------------------------------------------------------------

int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
uint32 = st.integers(0, 2**32 - 1)
_VALID_ODDS = (True,) * 15 + (False,)


def _mostly(valid: st.SearchStrategy[Any], anything: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly valid values, so that most requests get past validation and reach the backend."""
    return st.sampled_from(_VALID_ODDS).flatmap(lambda valid_now: valid if valid_now else anything)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def _required(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A required message: present, except once in a while."""
    return _mostly(strategy, st.none())


instance_ids = _mostly(
    st.one_of(st.sampled_from(KNOWN_INSTANCES), st.text(min_size=1, max_size=12)),
    st.one_of(st.just(""), st.text(min_size=250, max_size=300), st.just("é" * 128), st.just("é" * 128 + "x")),
)
ids = _mostly(st.one_of(st.sampled_from(KNOWN_IDS), st.binary(min_size=32, max_size=32)), st.binary(max_size=64))
names = _mostly(st.one_of(st.sampled_from(("go", "approve", "gpu")), st.text(min_size=1, max_size=12)), st.just(""))
worker_ids = _mostly(st.one_of(st.sampled_from(("w1", "w2")), st.text(min_size=1, max_size=12)), st.just(""))
tag_lists = st.lists(names, max_size=3)
payloads = st.binary(max_size=32)
signal_kinds = _mostly(st.sampled_from((1, 2)), st.one_of(st.integers(-2, 5), int32))
conflict_policies = _mostly(st.integers(0, 3), st.one_of(st.integers(-2, 6), int32))
any_nanos = st.one_of(st.integers(-(10**9), 10**9), int32)
timestamps = _mostly(
    st.builds(
        Timestamp,
        seconds=st.one_of(st.integers(NOW - 10_000, NOW + 10_000), st.integers(-62_135_596_800, 253_402_300_799)),
        nanos=st.integers(0, 999_999_999),
    ),
    st.builds(Timestamp, seconds=st.one_of(st.integers(-(10**12), 10**12), int64), nanos=any_nanos),
)
durations = _mostly(
    st.builds(Duration, seconds=st.integers(0, 10**6), nanos=st.integers(0, 999_999_999)),
    st.builds(
        Duration, seconds=st.one_of(st.integers(-100, 100), st.integers(-(10**13), 10**13), int64), nanos=any_nanos
    ),
)
maybe_durations = _maybe(durations)
priorities = _mostly(st.integers(1, 5), st.one_of(st.integers(0, 6), uint32))
page_sizes = _mostly(st.integers(0, 1000), st.one_of(st.integers(-2, 1002), int32))
limits = _mostly(st.integers(1, 1000), st.one_of(st.integers(0, 1002), uint32))


task_results = st.builds(pb.TaskResult, task_id=ids, output=payloads)


@st.composite
def positions(draw: st.DrawFn) -> pb.ExecutionPosition:
    kind = draw(
        st.sampled_from(("none", "not_started", "at_task", "at_fork", "at_join", "at_delay", "at_signal", "in_loop"))
    )
    branches = draw(st.dictionaries(names, task_results, max_size=2))
    if kind == "not_started":
        return pb.ExecutionPosition(not_started=pb.NotStarted())
    if kind == "at_task":
        return pb.ExecutionPosition(at_task=pb.AtTask(task_id=draw(ids)))
    if kind == "at_fork":
        fork = pb.AtFork(fork_id=draw(ids), completed_branches=branches, wake_at=draw(_maybe(timestamps)))
        return pb.ExecutionPosition(at_fork=fork)
    if kind == "at_join":
        return pb.ExecutionPosition(at_join=pb.AtJoin(join_id=draw(ids), completed_branches=branches))
    if kind == "at_delay":
        delay = pb.AtDelay(
            delay_id=draw(ids),
            entered_at=draw(_maybe(timestamps)),
            wake_at=draw(_maybe(timestamps)),
            next_task_id=draw(_maybe(ids)),
        )
        return pb.ExecutionPosition(at_delay=delay)
    if kind == "at_signal":
        signal = pb.AtSignal(
            signal_id=draw(ids),
            signal_name=draw(names),
            wake_at=draw(_maybe(timestamps)),
            next_task_id=draw(_maybe(ids)),
        )
        return pb.ExecutionPosition(at_signal=signal)
    if kind == "in_loop":
        return pb.ExecutionPosition(
            in_loop=pb.InLoop(loop_id=draw(ids), iteration=draw(uint32), next_task_id=draw(_maybe(ids)))
        )
    return pb.ExecutionPosition()


@st.composite
def states(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(("in_progress", "none", "completed", "failed", "cancelled", "paused")))
    done = draw(st.lists(task_results, max_size=3))
    last = draw(_maybe(ids))
    if kind == "in_progress":
        return {
            "in_progress": pb.InProgressState(
                position=draw(positions()), completed_tasks=done, last_completed_task_id=last
            )
        }
    if kind == "completed":
        return {"completed": pb.CompletedState(final_output=draw(payloads))}
    if kind == "failed":
        return {"failed": pb.FailedState(error=draw(st.text(max_size=20)))}
    if kind == "cancelled":
        cancelled = pb.CancelledState(
            reason=draw(_maybe(st.text(max_size=8))),
            cancelled_at=draw(_maybe(timestamps)),
            completed_tasks=done,
            interrupted_at_task=draw(_maybe(ids)),
        )
        return {"cancelled": cancelled}
    if kind == "paused":
        paused = pb.PausedState(
            paused_by=draw(_maybe(st.text(max_size=8))),
            paused_at=draw(_maybe(timestamps)),
            completed_tasks=done,
            position=draw(positions()),
            last_completed_task_id=last,
        )
        return {"paused": paused}
    return {}


retry_states = st.builds(
    pb.TaskRetryState,
    task_id=ids,
    attempts=uint32,
    policy=st.builds(
        pb.RetryPolicy,
        max_retries=uint32,
        initial_delay=maybe_durations,
        backoff_multiplier=st.floats(allow_nan=True, allow_infinity=True),
        max_delay=maybe_durations,
    ),
    last_error=st.text(max_size=8),
    last_failed_worker=_maybe(worker_ids),
    next_retry_at=_maybe(timestamps),
)


@st.composite
def snapshots(draw: st.DrawFn) -> pb.WorkflowSnapshot | None:
    if draw(st.integers(0, 8)) == 0:
        return None  # the required message is missing
    return pb.WorkflowSnapshot(
        instance_id=draw(instance_ids),
        definition_hash=draw(ids),
        created_at=draw(_maybe(timestamps)),
        updated_at=draw(_maybe(timestamps)),
        initial_input=draw(_maybe(payloads)),
        task_deadline=draw(
            _maybe(st.builds(pb.TaskDeadline, task_id=ids, deadline=_maybe(timestamps), timeout=maybe_durations))
        ),
        task_retries=draw(st.lists(retry_states, max_size=2)),
        loop_iterations=draw(st.lists(st.builds(pb.LoopIterationCount, task_id=ids, count=uint32), max_size=2)),
        task_priority=draw(_maybe(priorities)),
        task_tags=draw(tag_lists),
        trace_parent=draw(_maybe(st.text(max_size=8))),
        **draw(states()),
    )


hints = _required(
    st.builds(pb.TaskWakeupHint, instance_id=instance_ids, task_id=ids, definition_hash=ids, task_tags=tag_lists)
)
signal_requests = _required(
    st.builds(pb.SignalRequest, reason=_maybe(names), requested_by=_maybe(names), requested_at=_maybe(timestamps))
)
page_tokens = st.one_of(
    st.just(""), st.text(max_size=20), st.binary(max_size=40).map(lambda raw: base64.urlsafe_b64encode(raw).decode())
)

# --- one request strategy per RPC ----------------------------------------------------------------------------------

REQUESTS: dict[str, st.SearchStrategy[Any]] = {
    "SnapshotStore.SaveSnapshot": st.builds(rr.SaveSnapshotRequest, snapshot=snapshots()),
    "SnapshotStore.SaveTaskResult": st.builds(
        rr.SaveTaskResultRequest, instance_id=instance_ids, task_id=ids, output=payloads
    ),
    "SnapshotStore.LoadSnapshot": st.builds(rr.LoadSnapshotRequest, instance_id=instance_ids),
    "SnapshotStore.DeleteSnapshot": st.builds(rr.DeleteSnapshotRequest, instance_id=instance_ids),
    "SnapshotStore.ListSnapshots": st.builds(
        rr.ListSnapshotsRequest, page_size=page_sizes, page_token=page_tokens, start_after=st.sampled_from(["", "a"])
    ),
    "SnapshotStore.ListWorkflows": st.builds(
        rr.ListWorkflowsRequest,
        states=st.lists(st.integers(-1, 7), max_size=3),
        definition_hash=_maybe(ids),
        tag=_maybe(names),
        instance_id_prefix=st.one_of(st.just(""), instance_ids),
        updated_after=_maybe(timestamps),
        updated_before=_maybe(timestamps),
        order=st.integers(-1, 4),
        page_size=page_sizes,
        page_token=page_tokens,
    ),
    "SignalStore.StoreSignal": st.builds(
        rr.StoreSignalRequest, instance_id=instance_ids, kind=signal_kinds, request=signal_requests
    ),
    "SignalStore.GetSignal": st.builds(rr.GetSignalRequest, instance_id=instance_ids, kind=signal_kinds),
    "SignalStore.ClearSignal": st.builds(rr.ClearSignalRequest, instance_id=instance_ids, kind=signal_kinds),
    "SignalStore.SendEvent": st.builds(
        rr.SendEventRequest, instance_id=instance_ids, signal_name=names, payload=payloads
    ),
    "SignalStore.ConsumeEvent": st.builds(rr.ConsumeEventRequest, instance_id=instance_ids, signal_name=names),
    "SignalStore.CheckAndCancel": st.builds(
        rr.CheckAndCancelRequest, instance_id=instance_ids, interrupted_at_task=_maybe(ids)
    ),
    "SignalStore.CheckAndPause": st.builds(rr.CheckAndPauseRequest, instance_id=instance_ids),
    "SignalStore.CheckControlSignals": st.builds(
        rr.CheckControlSignalsRequest, instance_id=instance_ids, interrupted_at_task=_maybe(ids)
    ),
    "SignalStore.Unpause": st.builds(rr.UnpauseRequest, instance_id=instance_ids),
    "TaskClaimStore.ClaimTask": st.builds(
        rr.ClaimTaskRequest, instance_id=instance_ids, task_id=ids, worker_id=worker_ids, ttl=maybe_durations
    ),
    "TaskClaimStore.ReleaseTaskClaim": st.builds(
        rr.ReleaseTaskClaimRequest, instance_id=instance_ids, task_id=ids, worker_id=worker_ids
    ),
    "TaskClaimStore.ExtendTaskClaim": st.builds(
        rr.ExtendTaskClaimRequest, instance_id=instance_ids, task_id=ids, worker_id=worker_ids, ttl=_required(durations)
    ),
    "TaskClaimStore.FindAvailableTasks": st.builds(
        rr.FindAvailableTasksRequest,
        worker_id=worker_ids,
        limit=limits,
        aging_interval=maybe_durations,
        worker_tags=tag_lists,
    ),
    "TaskClaimStore.WaitForWakeup": st.builds(
        rr.WaitForWakeupRequest, timeout=_required(durations), worker_tags=tag_lists
    ),
    "TaskClaimStore.WatchWakeups": st.builds(rr.WatchWakeupsRequest, worker_tags=tag_lists),
    "TaskClaimStore.FindHintedTask": st.builds(rr.FindHintedTaskRequest, hint=hints),
    "TaskClaimStore.SaveSnapshotFenced": st.builds(
        rr.SaveSnapshotFencedRequest, snapshot=snapshots(), task_id=ids, worker_id=worker_ids
    ),
    "TaskClaimStore.ClaimAvailableTasks": st.builds(
        rr.ClaimAvailableTasksRequest,
        worker_id=worker_ids,
        limit=limits,
        ttl=maybe_durations,
        aging_interval=maybe_durations,
        worker_tags=tag_lists,
        definition_hashes=st.lists(ids, max_size=2),
        wait=_maybe(st.builds(Duration, seconds=st.integers(-1, 0), nanos=st.integers(0, 1000))),
    ),
    "TaskClaimStore.CompleteTask": st.builds(
        rr.CompleteTaskRequest, snapshot=snapshots(), task_id=ids, worker_id=worker_ids
    ),
    "TaskClaimStore.CompleteTasks": st.builds(
        rr.CompleteTasksRequest,
        completions=st.lists(
            st.builds(rr.CompleteTaskRequest, snapshot=snapshots(), task_id=ids, worker_id=worker_ids), max_size=3
        ),
    ),
    "TaskResultStore.LoadTaskResult": st.builds(rr.LoadTaskResultRequest, instance_id=instance_ids, task_id=ids),
    "Lifecycle.PrepareRun": st.builds(
        rr.PrepareRunRequest,
        instance_id=instance_ids,
        definition_hash=ids,
        input=payloads,
        first_task=_required(st.builds(pb.FirstTask, task_id=ids, priority=_maybe(priorities), tags=tag_lists)),
        conflict_policy=conflict_policies,
    ),
}


# --- the server under test -----------------------------------------------------------------------------------------


@dataclass
class _Harness:
    """One server and channel on a private event loop, shared by every example of the module."""

    runner: asyncio.Runner
    server: PersistenceServer
    channel: grpc.aio.Channel
    rpc: dict[str, Any]

    def status_of(self, method: str, request: Any) -> grpc.StatusCode:
        return self.runner.run(self._status_of(method, request))

    async def _status_of(self, method: str, request: Any) -> grpc.StatusCode:
        try:
            if method in STREAMING_RPCS:
                return await self._listen_briefly(self.rpc[method](request, timeout=5))
            await self.rpc[method](request, timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    async def _listen_briefly(self, stream: Any) -> grpc.StatusCode:
        try:
            await asyncio.wait_for(stream.read(), STREAM_LISTEN_SECONDS)
        except TimeoutError:
            stream.cancel()
            return grpc.StatusCode.OK
        stream.cancel()
        code: grpc.StatusCode = await stream.code()
        return grpc.StatusCode.OK if code == grpc.StatusCode.CANCELLED else code

    def raw_status_of(self, method: str, body: bytes) -> grpc.StatusCode:
        return self.runner.run(self._raw_status_of(method, body))

    async def _raw_status_of(self, method: str, body: bytes) -> grpc.StatusCode:
        service, name = method.split(".")
        path = f"/sayiir.persistence.v1.{service}/{name}"
        try:
            if method in STREAMING_RPCS:
                stream: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = self.channel.unary_stream(path)
                return await self._listen_briefly(stream(body, timeout=5))
            unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = self.channel.unary_unary(path)
            await unary(body, timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK


async def _seed(backend: InMemoryBackend) -> None:
    for instance_id in ("order-1", "order-2"):
        await backend.save_snapshot(at_task_snapshot(instance_id))
    await backend.save_snapshot(
        pb.WorkflowSnapshot(
            instance_id="done-1", definition_hash=DEFINITION, completed=pb.CompletedState(final_output=b"ok")
        )
    )
    paused = pb.PausedState(position=at_task_snapshot("x").in_progress.position, paused_at=timestamp(utc_now()))
    await backend.save_snapshot(pb.WorkflowSnapshot(instance_id="paused-1", definition_hash=DEFINITION, paused=paused))


async def _open(backend: InMemoryBackend) -> tuple[PersistenceServer, grpc.aio.Channel]:
    options = ServerOptions(
        listen="127.0.0.1:0", max_wait_timeout=timedelta(milliseconds=20), grace_period=timedelta(0)
    )
    server = PersistenceServer(backend, options)
    await server.start()
    await _seed(backend)
    return server, grpc.aio.insecure_channel(server.address)


@pytest.fixture(scope="module")
def harness() -> Iterator[_Harness]:
    with asyncio.Runner() as runner:
        server, channel = runner.run(_open(InMemoryBackend()))
        try:
            yield _Harness(runner, server, channel, stubs(channel))
        finally:
            runner.run(channel.close())
            runner.run(server.stop(timedelta(0)))


# --- the property --------------------------------------------------------------------------------------------------

BOUNDED = settings(max_examples=EXAMPLES_PER_RPC, deadline=None, database=None)


def test_every_rpc_has_a_request_strategy() -> None:
    assert set(REQUESTS) == set(RPC_NAMES)


@pytest.mark.parametrize("method", RPC_NAMES)
def test_no_request_makes_the_server_answer_internal_or_unknown(harness: _Harness, method: str) -> None:
    @BOUNDED
    @given(request=REQUESTS[method])
    def check(request: Any) -> None:
        code = harness.status_of(method, request)
        assert code not in SERVER_BUGS, f"{method} answered {code.name} to {request}"

    check()


@pytest.mark.parametrize("method", RPC_NAMES)
def test_no_request_bytes_make_the_server_answer_internal_or_unknown(harness: _Harness, method: str) -> None:
    @settings(max_examples=EXAMPLES_PER_RPC // 4, deadline=None, database=None)
    @given(body=st.one_of(st.binary(max_size=48), st.just(b"\x0a\x02\xff\xfe"), st.just(b"\xff" * 8)))
    def check(body: bytes) -> None:
        code = harness.raw_status_of(method, body)
        assert code not in SERVER_BUGS, f"{method} answered {code.name} to bytes {body!r}"

    check()
