"""The in-process server: every RPC served, errors as rich statuses (behaviour ERR), caps, and the graceful drain."""

from __future__ import annotations

import asyncio
import errno
import time
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import error_details_pb2 as sayiir_details
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.api.grpc_errors import DOMAIN
from sayiir_server.api.server import PersistenceServer, ServerOptions
from sayiir_server.api.servicers import SERVICE_NAMES, Drain, persistence_servicers
from sayiir_server.backends.memory import InMemoryBackend
from tests.e2e.conftest import TEST_OPTIONS
from tests.e2e.wire import (
    DEFINITION,
    RPC_NAMES,
    at_task_snapshot,
    details,
    error_info,
    google_status,
    node_id,
    stubs,
)

FETCH = node_id("fetch")


def _prepare_run(instance_id: str, definition_hash: bytes = DEFINITION, **fields: Any) -> rr.PrepareRunRequest:
    return rr.PrepareRunRequest(
        instance_id=instance_id,
        definition_hash=definition_hash,
        input=b"{}",
        first_task=pb.FirstTask(task_id=FETCH),
        **fields,
    )


async def _failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


# --- coverage ------------------------------------------------------------------------------------------------------


def test_every_rpc_of_the_contract_is_implemented_behind_the_error_translation() -> None:
    servicers = persistence_servicers(InMemoryBackend(), Drain(), timedelta(seconds=1))
    implemented = {
        f"{type(servicer).__name__.removesuffix('Servicer')}.{name}"
        for servicer in servicers
        for name in dir(type(servicer))
        if getattr(getattr(type(servicer), name), "translates_errors", False)
    }
    assert implemented == set(RPC_NAMES)
    assert len(SERVICE_NAMES) == 5


# --- the happy path over the wire ----------------------------------------------------------------------------------


async def test_a_fresh_run_is_stored_and_loadable(rpc: dict[str, Any]) -> None:
    response = await rpc["Lifecycle.PrepareRun"](_prepare_run("order-1"))
    assert response.outcome.WhichOneof("outcome") == "fresh"
    loaded = await rpc["SnapshotStore.LoadSnapshot"](rr.LoadSnapshotRequest(instance_id="order-1"))
    assert loaded.snapshot == response.outcome.fresh.snapshot


async def test_absent_maybe_results_are_absent_fields(rpc: dict[str, Any]) -> None:
    await rpc["Lifecycle.PrepareRun"](_prepare_run("order-1"))
    consumed = await rpc["SignalStore.ConsumeEvent"](rr.ConsumeEventRequest(instance_id="order-1", signal_name="go"))
    assert not consumed.HasField("payload")
    signal = await rpc["SignalStore.GetSignal"](
        rr.GetSignalRequest(instance_id="order-1", kind=enums.SIGNAL_KIND_CANCEL)
    )
    assert not signal.HasField("request")
    checked = await rpc["SignalStore.CheckControlSignals"](rr.CheckControlSignalsRequest(instance_id="order-1"))
    assert not checked.HasField("control_signal")
    result = await rpc["TaskResultStore.LoadTaskResult"](rr.LoadTaskResultRequest(instance_id="order-1", task_id=FETCH))
    assert not result.HasField("output")


async def test_a_claim_with_ttl_expires_ttl_after_it_was_taken(rpc: dict[str, Any]) -> None:
    await rpc["Lifecycle.PrepareRun"](_prepare_run("order-1"))
    request = rr.ClaimTaskRequest(instance_id="order-1", task_id=FETCH, worker_id="w1", ttl=Duration(seconds=30))
    claim = (await rpc["TaskClaimStore.ClaimTask"](request)).claim
    assert claim.expires_at.ToDatetime() - claim.claimed_at.ToDatetime() == timedelta(seconds=30)
    again = await rpc["TaskClaimStore.ClaimTask"](request)
    assert not again.HasField("claim")


async def test_list_snapshots_pages_through_every_id_in_ascending_order(rpc: dict[str, Any]) -> None:
    ids = [f"order-{n}" for n in (5, 1, 4, 2, 3)]
    for instance_id in ids:
        await rpc["SnapshotStore.SaveSnapshot"](rr.SaveSnapshotRequest(snapshot=at_task_snapshot(instance_id)))
    pages: list[list[str]] = []
    token = ""
    while True:
        page = await rpc["SnapshotStore.ListSnapshots"](rr.ListSnapshotsRequest(page_size=2, page_token=token))
        pages.append(list(page.instance_ids))
        token = page.next_page_token
        if not token:
            break
    assert pages == [["order-1", "order-2"], ["order-3", "order-4"], ["order-5"]]


async def test_list_snapshots_with_an_exact_page_has_no_next_token(rpc: dict[str, Any]) -> None:
    for instance_id in ("a", "b"):
        await rpc["SnapshotStore.SaveSnapshot"](rr.SaveSnapshotRequest(snapshot=at_task_snapshot(instance_id)))
    page = await rpc["SnapshotStore.ListSnapshots"](rr.ListSnapshotsRequest(page_size=2))
    assert (list(page.instance_ids), page.next_page_token) == (["a", "b"], "")


# --- errors as rich statuses ---------------------------------------------------------------------------------------


async def test_not_found_names_the_instance_in_errorinfo(rpc: dict[str, Any]) -> None:
    error = await _failure(rpc["SnapshotStore.LoadSnapshot"](rr.LoadSnapshotRequest(instance_id="ghost")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(error)
    assert (info.domain, info.reason, dict(info.metadata)) == (DOMAIN, "NOT_FOUND", {"instance_id": "ghost"})


async def test_a_taken_instance_id_is_already_exists_with_the_runconflict_detail(rpc: dict[str, Any]) -> None:
    await rpc["Lifecycle.PrepareRun"](_prepare_run("order-1"))
    error = await _failure(rpc["Lifecycle.PrepareRun"](_prepare_run("order-1")))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_info(error).reason == "ALREADY_EXISTS"
    (conflict,) = details(google_status(error), sayiir_details.RunConflict)
    assert conflict.already_exists.instance_id == "order-1"


async def test_prepare_run_answers_an_invalid_instance_id_with_its_runconflict(rpc: dict[str, Any]) -> None:
    error = await _failure(rpc["Lifecycle.PrepareRun"](_prepare_run("x" * 257)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "INVALID_INSTANCE_ID"
    (conflict,) = details(google_status(error), sayiir_details.RunConflict)
    assert (conflict.invalid_instance_id.length, conflict.invalid_instance_id.max_length) == (257, 256)


async def test_another_definition_hash_is_a_failed_precondition_with_both_hashes(rpc: dict[str, Any]) -> None:
    await rpc["Lifecycle.PrepareRun"](_prepare_run("order-1"))
    other = node_id("definition: orders v2")
    policy = enums.CONFLICT_POLICY_USE_EXISTING
    error = await _failure(rpc["Lifecycle.PrepareRun"](_prepare_run("order-1", other, conflict_policy=policy)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    (conflict,) = details(google_status(error), sayiir_details.RunConflict)
    assert (conflict.definition_mismatch.expected, conflict.definition_mismatch.found) == (other, DEFINITION)


async def test_cancelling_a_completed_run_is_a_failed_precondition_naming_the_state(rpc: dict[str, Any]) -> None:
    done = pb.WorkflowSnapshot(instance_id="order-1", definition_hash=DEFINITION, completed=pb.CompletedState())
    await rpc["SnapshotStore.SaveSnapshot"](rr.SaveSnapshotRequest(snapshot=done))
    request = rr.StoreSignalRequest(instance_id="order-1", kind=enums.SIGNAL_KIND_CANCEL, request=pb.SignalRequest())
    error = await _failure(rpc["SignalStore.StoreSignal"](request))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(error)
    assert (info.reason, info.metadata["state"]) == ("CANNOT_CANCEL", "Completed")


async def test_releasing_another_workers_claim_is_aborted(rpc: dict[str, Any]) -> None:
    await rpc["Lifecycle.PrepareRun"](_prepare_run("order-1"))
    await rpc["TaskClaimStore.ClaimTask"](rr.ClaimTaskRequest(instance_id="order-1", task_id=FETCH, worker_id="w1"))
    release = rr.ReleaseTaskClaimRequest(instance_id="order-1", task_id=FETCH, worker_id="w2")
    error = await _failure(rpc["TaskClaimStore.ReleaseTaskClaim"](release))
    assert error.code() == grpc.StatusCode.ABORTED
    assert error_info(error).reason == "CLAIM_LOST"


async def test_bytes_that_are_not_the_request_message_are_invalid_argument(channel: grpc.aio.Channel) -> None:
    raw_call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        "/sayiir.persistence.v1.SnapshotStore/LoadSnapshot"
    )
    error = await _failure(raw_call(b"\x0a\x02\xff\xfe"))  # instance_id holding bad UTF-8
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "SERIALIZATION"


async def test_an_invalid_field_is_named_in_the_message_errorinfo_and_badrequest(rpc: dict[str, Any]) -> None:
    error = await _failure(rpc["TaskClaimStore.ClaimTask"](rr.ClaimTaskRequest(instance_id="o", task_id=b"short")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "task_id" in (error.details() or "")
    assert dict(error_info(error).metadata) == {"field": "task_id", "instance_id": "o"}
    (bad_request,) = details(google_status(error), error_details_pb2.BadRequest)
    assert [violation.field for violation in bad_request.field_violations] == ["task_id"]


async def test_a_message_over_the_size_limit_is_refused_by_grpc_not_a_server_bug(rpc: dict[str, Any]) -> None:
    too_big = at_task_snapshot("order-1")
    too_big.initial_input = b"x" * (TEST_OPTIONS.max_message_bytes + 1)
    error = await _failure(rpc["SnapshotStore.SaveSnapshot"](rr.SaveSnapshotRequest(snapshot=too_big)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_second_server_cannot_bind_a_port_already_served(server: PersistenceServer) -> None:
    with pytest.raises(OSError, match="Address already in use") as refused:  # the bind probe's, with the reason
        PersistenceServer(InMemoryBackend(), ServerOptions(listen=server.address))
    assert refused.value.errno == errno.EADDRINUSE


# --- wakeups and caps ----------------------------------------------------------------------------------------------


async def test_wait_for_wakeup_longer_than_the_cap_is_clamped_to_it(rpc: dict[str, Any]) -> None:
    started = time.monotonic()
    response = await rpc["TaskClaimStore.WaitForWakeup"](rr.WaitForWakeupRequest(timeout=Duration(seconds=3600)))
    assert not response.HasField("hint")
    assert time.monotonic() - started < 5 * TEST_OPTIONS.max_wait_timeout.total_seconds()


async def test_watch_wakeups_streams_the_hint_of_a_task_that_became_ready(rpc: dict[str, Any]) -> None:
    stream = rpc["TaskClaimStore.WatchWakeups"](rr.WatchWakeupsRequest())
    await stream.initial_metadata()
    await rpc["Lifecycle.PrepareRun"](_prepare_run("order-1"))
    response = await asyncio.wait_for(stream.read(), 5)
    assert (response.hint.instance_id, response.hint.task_id) == ("order-1", FETCH)
    stream.cancel()


# --- graceful drain ------------------------------------------------------------------------------------------------


class _SlowLoads(InMemoryBackend):
    """An in-memory backend whose loads take a while and which records being closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.load_started = asyncio.Event()

    async def load_snapshot(self, instance_id: str) -> pb.WorkflowSnapshot:
        self.load_started.set()
        await asyncio.sleep(0.3)
        return await super().load_snapshot(instance_id)

    async def close(self) -> None:
        self.closed = True


async def test_stop_ends_open_waits_finishes_inflight_calls_then_closes_the_backend() -> None:
    backend = _SlowLoads()
    await backend.save_snapshot(at_task_snapshot("order-1"))
    options = ServerOptions(listen="127.0.0.1:0", max_wait_timeout=timedelta(seconds=30))
    server = PersistenceServer(backend, options)
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        rpc = stubs(channel)
        watch = rpc["TaskClaimStore.WatchWakeups"](rr.WatchWakeupsRequest())
        await watch.initial_metadata()
        long_wait = rr.WaitForWakeupRequest(timeout=Duration(seconds=30))
        wait = asyncio.ensure_future(rpc["TaskClaimStore.WaitForWakeup"](long_wait))
        load = asyncio.ensure_future(rpc["SnapshotStore.LoadSnapshot"](rr.LoadSnapshotRequest(instance_id="order-1")))
        await backend.load_started.wait()

        started = time.monotonic()
        await server.stop(timedelta(seconds=10))

        assert time.monotonic() - started < 5, "open waits must not hold the drain for the whole grace period"
        assert [message async for message in watch] == []
        assert await watch.code() == grpc.StatusCode.OK
        assert not (await wait).HasField("hint")
        assert (await load).snapshot.instance_id == "order-1"
        assert backend.closed


async def test_health_turns_not_serving_when_the_drain_starts(backend: InMemoryBackend) -> None:
    server = PersistenceServer(backend, ServerOptions(listen="127.0.0.1:0"))
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", *SERVICE_NAMES):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.ensure_future(server.stop(timedelta(milliseconds=500)))
        assert (await asyncio.wait_for(watch.read(), 5)).status == health_pb2.HealthCheckResponse.NOT_SERVING
        await stopping
