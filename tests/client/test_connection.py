"""What the client puts on the wire: retries by service config, deadlines, the bearer token, health."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2

from sayiir_client import (
    IDEMPOTENT_METHODS,
    AsyncPersistenceClient,
    BackendUnavailableError,
    DefinitionHash,
    RetryOptions,
    TaskId,
    TransportError,
)
from sayiir_client.tasks import TaskCompletion
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2
from tests.client.fakes import FakeServer, failing_first, fake_server

TASK = TaskId.from_name("task")
SNAPSHOT = pb.WorkflowSnapshot(instance_id="order-1", definition_hash=DefinitionHash.from_name("definition"))
HINT = pb.TaskWakeupHint(instance_id="order-1", task_id=TASK, definition_hash=SNAPSHOT.definition_hash)
FAST_RETRY = RetryOptions(
    max_attempts=3, initial_backoff=timedelta(milliseconds=10), max_backoff=timedelta(seconds=0.05)
)

Invocation = Callable[[AsyncPersistenceClient], Awaitable[object]]

# One call per persistence RPC, by full method name.
INVOCATIONS: dict[str, Invocation] = {
    "SnapshotStore/SaveSnapshot": lambda c: c.save_snapshot(SNAPSHOT),
    "SnapshotStore/SaveTaskResult": lambda c: c.save_task_result("order-1", TASK, b"out"),
    "SnapshotStore/LoadSnapshot": lambda c: c.load_snapshot("order-1"),
    "SnapshotStore/DeleteSnapshot": lambda c: c.delete_snapshot("order-1"),
    "SnapshotStore/ListSnapshots": lambda c: c.list_snapshots(),
    "SnapshotStore/ListWorkflows": lambda c: c.list_workflows(),
    "SignalStore/StoreSignal": lambda c: c.store_signal("order-1", enums.SIGNAL_KIND_CANCEL, pb.SignalRequest()),
    "SignalStore/GetSignal": lambda c: c.get_signal("order-1", enums.SIGNAL_KIND_CANCEL),
    "SignalStore/ClearSignal": lambda c: c.clear_signal("order-1", enums.SIGNAL_KIND_CANCEL),
    "SignalStore/SendEvent": lambda c: c.send_event("order-1", "approved", b"yes"),
    "SignalStore/ConsumeEvent": lambda c: c.consume_event("order-1", "approved"),
    "SignalStore/CheckAndCancel": lambda c: c.check_and_cancel("order-1"),
    "SignalStore/CheckAndPause": lambda c: c.check_and_pause("order-1"),
    "SignalStore/CheckControlSignals": lambda c: c.check_control_signals("order-1"),
    "SignalStore/Unpause": lambda c: c.unpause("order-1"),
    "TaskClaimStore/ClaimTask": lambda c: c.claim_task("order-1", TASK, "worker", timedelta(seconds=30)),
    "TaskClaimStore/ReleaseTaskClaim": lambda c: c.release_task_claim("order-1", TASK, "worker"),
    "TaskClaimStore/ExtendTaskClaim": lambda c: c.extend_task_claim("order-1", TASK, "worker", timedelta(seconds=30)),
    "TaskClaimStore/FindAvailableTasks": lambda c: c.find_available_tasks("worker", 10),
    "TaskClaimStore/WaitForWakeup": lambda c: c.wait_for_wakeup(timedelta(milliseconds=10)),
    "TaskClaimStore/FindHintedTask": lambda c: c.find_hinted_task(HINT),
    "TaskClaimStore/SaveSnapshotFenced": lambda c: c.save_snapshot_fenced(SNAPSHOT, TASK, "worker"),
    "TaskClaimStore/ClaimAvailableTasks": lambda c: c.claim_available_tasks("worker", 1, timedelta(seconds=30)),
    "TaskClaimStore/CompleteTask": lambda c: c.complete_task(SNAPSHOT, TASK, "worker"),
    "TaskClaimStore/CompleteTasks": lambda c: c.complete_tasks([TaskCompletion(SNAPSHOT, TASK, "worker")]),
    "TaskResultStore/LoadTaskResult": lambda c: c.load_task_result("order-1", TASK),
    "Lifecycle/PrepareRun": lambda c: c.prepare_run(
        "order-1", SNAPSHOT.definition_hash, b"", pb.FirstTask(task_id=TASK)
    ),
}
PACKAGE = "sayiir.persistence.v1."
RETRIED = sorted(name for name in INVOCATIONS if PACKAGE + name in IDEMPOTENT_METHODS)
NOT_RETRIED = sorted(name for name in INVOCATIONS if PACKAGE + name not in IDEMPOTENT_METHODS)


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    async with fake_server() as server:
        yield server


def test_the_invocation_table_covers_every_unary_rpc() -> None:
    unary = {
        f"{service.name}/{method.name}"
        for service in service_pb2.DESCRIPTOR.services_by_name.values()
        for method in service.methods
        if not method.server_streaming
    }
    assert set(INVOCATIONS) == unary


def test_every_idempotent_method_names_a_real_rpc() -> None:
    known = {f"{PACKAGE}{name}" for name in INVOCATIONS} | {"grpc.health.v1.Health/Check"}
    assert set(IDEMPOTENT_METHODS) <= known


def test_the_rpcs_whose_repeat_changes_the_answer_are_not_idempotent() -> None:
    for name in ("SendEvent", "ConsumeEvent", "ClaimTask", "CheckAndCancel", "CheckAndPause"):
        assert not any(method.endswith(f"/{name}") for method in IDEMPOTENT_METHODS)
    for name in ("CheckControlSignals", "Unpause", "PrepareRun", "DeleteSnapshot", "ReleaseTaskClaim"):
        assert not any(method.endswith(f"/{name}") for method in IDEMPOTENT_METHODS)
    for name in ("ClaimAvailableTasks", "CompleteTask", "CompleteTasks"):
        assert not any(method.endswith(f"/{name}") for method in IDEMPOTENT_METHODS)


@pytest.mark.parametrize("name", RETRIED)
async def test_unavailable_is_retried_on_an_idempotent_rpc(fake: FakeServer, name: str) -> None:
    method = name.split("/")[1]
    response_class = getattr(rr, f"{method}Response")
    fake.behaviours[method] = failing_first(2, grpc.StatusCode.UNAVAILABLE, response_class())

    async with AsyncPersistenceClient(fake.address, retry=FAST_RETRY) as client:
        await INVOCATIONS[name](client)

    assert len(fake.calls_to(method)) == 3


@pytest.mark.parametrize("name", NOT_RETRIED)
async def test_unavailable_is_not_retried_on_a_non_idempotent_rpc(fake: FakeServer, name: str) -> None:
    method = name.split("/")[1]
    response_class = getattr(rr, f"{method}Response")
    fake.behaviours[method] = failing_first(2, grpc.StatusCode.UNAVAILABLE, response_class())

    async with AsyncPersistenceClient(fake.address, retry=FAST_RETRY) as client:
        with pytest.raises(TransportError) as raised:
            await INVOCATIONS[name](client)

    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert len(fake.calls_to(method)) == 1


async def test_retries_give_up_after_max_attempts(fake: FakeServer) -> None:
    fake.behaviours["LoadSnapshot"] = failing_first(10, grpc.StatusCode.UNAVAILABLE, rr.LoadSnapshotResponse())

    async with AsyncPersistenceClient(fake.address, retry=FAST_RETRY) as client:
        with pytest.raises(BackendUnavailableError):
            await client.load_snapshot("order-1")

    assert len(fake.calls_to("LoadSnapshot")) == FAST_RETRY.max_attempts


async def test_only_unavailable_is_retried(fake: FakeServer) -> None:
    fake.behaviours["LoadSnapshot"] = failing_first(1, grpc.StatusCode.INTERNAL, rr.LoadSnapshotResponse())

    async with AsyncPersistenceClient(fake.address, retry=FAST_RETRY) as client:
        with pytest.raises(TransportError):
            await client.load_snapshot("order-1")

    assert len(fake.calls_to("LoadSnapshot")) == 1


async def test_retry_none_disables_retries(fake: FakeServer) -> None:
    fake.behaviours["LoadSnapshot"] = failing_first(1, grpc.StatusCode.UNAVAILABLE, rr.LoadSnapshotResponse())

    async with AsyncPersistenceClient(fake.address, retry=None) as client:
        with pytest.raises(TransportError):
            await client.load_snapshot("order-1")

    assert len(fake.calls_to("LoadSnapshot")) == 1


async def test_every_call_carries_the_default_deadline(fake: FakeServer) -> None:
    async with AsyncPersistenceClient(fake.address, deadline=timedelta(seconds=7)) as client:
        await client.load_snapshot("order-1")

    remaining = fake.calls_to("LoadSnapshot")[0].time_remaining
    assert remaining is not None
    assert 5 < remaining < 7.5  # grpc-timeout travels rounded up, hence the slack


async def test_a_long_poll_gets_its_wait_on_top_of_the_deadline(fake: FakeServer) -> None:
    async with AsyncPersistenceClient(fake.address, deadline=timedelta(seconds=5)) as client:
        await client.wait_for_wakeup(timedelta(seconds=20))

    remaining = fake.calls_to("WaitForWakeup")[0].time_remaining
    assert remaining is not None
    assert 20 < remaining < 25.5


async def test_no_deadline_sends_none(fake: FakeServer) -> None:
    async with AsyncPersistenceClient(fake.address, deadline=None) as client:
        await client.load_snapshot("order-1")

    assert fake.calls_to("LoadSnapshot")[0].time_remaining is None


async def test_the_bearer_token_is_sent_on_every_call(fake: FakeServer) -> None:
    async with AsyncPersistenceClient(fake.address, token="s3cret") as client:
        await client.load_snapshot("order-1")
        await client.claim_task("order-1", TASK, "worker", None)
        stream = client.watch_wakeups()
        fake.streams["WatchWakeups"] = _one_hint
        await anext(stream)
        await stream.aclose()

    assert [call.metadata.get("authorization") for call in fake.calls] == ["Bearer s3cret"] * 3


async def test_without_a_token_no_authorization_is_sent(fake: FakeServer) -> None:
    async with AsyncPersistenceClient(fake.address) as client:
        await client.load_snapshot("order-1")

    assert "authorization" not in fake.calls[0].metadata


async def _one_hint(request: object, context: object) -> AsyncIterator[rr.WatchWakeupsResponse]:
    yield rr.WatchWakeupsResponse(hint=HINT)


async def test_check_health_passes_while_serving(fake: FakeServer) -> None:
    await fake.health.set("", health_pb2.HealthCheckResponse.SERVING)
    async with AsyncPersistenceClient(fake.address) as client:
        await client.check_health()


async def test_check_health_raises_backend_unavailable_when_not_serving(fake: FakeServer) -> None:
    await fake.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    async with AsyncPersistenceClient(fake.address) as client:
        with pytest.raises(BackendUnavailableError, match="NOT_SERVING"):
            await client.check_health()


async def test_a_client_needs_exactly_one_of_target_and_channel() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        AsyncPersistenceClient()
    channel = grpc.aio.insecure_channel("127.0.0.1:1")
    with pytest.raises(ValueError, match="exactly one"):
        AsyncPersistenceClient("127.0.0.1:1", channel=channel)
    await channel.close()


async def test_closing_the_client_leaves_a_callers_channel_open(fake: FakeServer) -> None:
    channel = grpc.aio.insecure_channel(fake.address)
    async with AsyncPersistenceClient(channel=channel) as borrowing:
        await borrowing.load_snapshot("order-1")
    async with AsyncPersistenceClient(channel=channel) as second:
        await second.load_snapshot("order-1")
    await channel.close()

    assert len(fake.calls_to("LoadSnapshot")) == 2


def test_retry_options_reject_what_grpc_would_ignore() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryOptions(max_attempts=6)
    with pytest.raises(ValueError, match="backoff"):
        RetryOptions(initial_backoff=timedelta(0))
