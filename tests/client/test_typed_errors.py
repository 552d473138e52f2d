"""Failed calls raise the typed errors of sayiir_client.errors, decoded from ErrorInfo and details (behaviour ERR)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from sayiir_client import (
    AccessDeniedError,
    AlreadyExistsError,
    AsyncPersistenceClient,
    BackendError,
    BackendUnavailableError,
    CannotCancelError,
    CannotPauseError,
    ClaimLostError,
    DefinitionHash,
    DefinitionMismatchError,
    FinalStateError,
    InvalidArgumentError,
    InvalidInstanceIdError,
    NotFoundError,
    RunBackendFailureError,
    RunConflictError,
    SerializationError,
    ServerUnavailableError,
    TaskId,
    TransportError,
)
from sayiir_client.v1 import error_details_pb2 as details
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.memory import InMemoryBackend
from tests.client.fakes import Context, FakeServer, error_status, failing, fake_server
from tests.client.serving import served_backend

HASH_A = DefinitionHash.from_name("definition-a")
HASH_B = DefinitionHash.from_name("definition-b")
FIRST = pb.FirstTask(task_id=TaskId.from_name("first"))
Code = grpc.StatusCode


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    async with fake_server() as server:
        yield server


@pytest.fixture
async def client(fake: FakeServer) -> AsyncIterator[AsyncPersistenceClient]:
    # No retries: each crafted status must reach the decoder exactly as sent.
    async with AsyncPersistenceClient(fake.address, retry=None, deadline=timedelta(seconds=5)) as client:
        yield client


@dataclass(frozen=True)
class Case:
    status_code: Code
    reason: str | None
    expected: type[Exception]
    attributes: dict[str, Any]
    metadata: tuple[tuple[str, str], ...] = ()
    detail: Message | None = None


CASES = {
    "not-found": Case(Code.NOT_FOUND, "NOT_FOUND", NotFoundError, {}),
    "serialization-sent": Case(Code.INVALID_ARGUMENT, "SERIALIZATION", SerializationError, {"stored": False}),
    "serialization-stored": Case(Code.DATA_LOSS, "SERIALIZATION", SerializationError, {"stored": True}),
    "backend": Case(Code.UNAVAILABLE, "BACKEND", BackendUnavailableError, {}),
    "cannot-cancel": Case(
        Code.FAILED_PRECONDITION, "CANNOT_CANCEL", CannotCancelError, {"state": "Completed"}, (("state", "Completed"),)
    ),
    "cannot-pause": Case(
        Code.FAILED_PRECONDITION, "CANNOT_PAUSE", CannotPauseError, {"state": "Cancelled"}, (("state", "Cancelled"),)
    ),
    "claim-lost": Case(Code.ABORTED, "CLAIM_LOST", ClaimLostError, {}),
    "final-state": Case(
        Code.FAILED_PRECONDITION, "FINAL_STATE", FinalStateError, {"state": "Completed"}, (("state", "Completed"),)
    ),
    "invalid-argument": Case(
        Code.INVALID_ARGUMENT, "INVALID_ARGUMENT", InvalidArgumentError, {"field": "task_id"}, (("field", "task_id"),)
    ),
    "invalid-instance-id": Case(
        Code.INVALID_ARGUMENT,
        "INVALID_INSTANCE_ID",
        InvalidInstanceIdError,
        {"length": 300, "max_length": 256},
        detail=details.RunConflict(invalid_instance_id=details.InvalidInstanceId(length=300, max_length=256)),
    ),
    "already-exists": Case(
        Code.ALREADY_EXISTS,
        "ALREADY_EXISTS",
        AlreadyExistsError,
        {"instance_id": "order-1"},
        detail=details.RunConflict(already_exists=details.AlreadyExists(instance_id="order-1")),
    ),
    "definition-mismatch": Case(
        Code.FAILED_PRECONDITION,
        "DEFINITION_MISMATCH",
        DefinitionMismatchError,
        {"expected": HASH_A, "found": HASH_B},
        detail=details.RunConflict(definition_mismatch=details.DefinitionMismatch(expected=HASH_A, found=HASH_B)),
    ),
    "run-backend-failure": Case(
        Code.UNAVAILABLE,
        "BACKEND",
        RunBackendFailureError,
        {},
        detail=details.RunConflict(backend=details.BackendFailure(message="disk full")),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_each_error_reason_raises_its_typed_error(
    fake: FakeServer, client: AsyncPersistenceClient, case: Case
) -> None:
    # The message text deliberately says something else: decoding must not read it.
    extra = () if case.detail is None else (case.detail,)
    status = error_status(case.status_code, "claim lost, not found", case.reason, extra, **dict(case.metadata))
    fake.behaviours["LoadSnapshot"] = failing(status)

    with pytest.raises(case.expected) as raised:
        await client.load_snapshot("order-1")

    assert type(raised.value) is case.expected
    for name, value in case.attributes.items():
        assert getattr(raised.value, name) == value


async def test_errors_keep_the_rpc_error_as_their_cause(fake: FakeServer, client: AsyncPersistenceClient) -> None:
    fake.behaviours["LoadSnapshot"] = failing(error_status(Code.NOT_FOUND, "gone", "NOT_FOUND"))

    with pytest.raises(NotFoundError) as raised:
        await client.load_snapshot("order-1")

    assert isinstance(raised.value.__cause__, grpc.RpcError)
    assert str(raised.value) == "gone"


async def test_invalid_argument_is_a_value_error_not_a_backend_error(
    fake: FakeServer, client: AsyncPersistenceClient
) -> None:
    status = error_status(Code.INVALID_ARGUMENT, "bad", "INVALID_ARGUMENT", field="worker_id")
    fake.behaviours["ClaimTask"] = failing(status)

    with pytest.raises(InvalidArgumentError) as raised:
        await client.claim_task("order-1", TaskId.from_name("t"), "", None)

    assert isinstance(raised.value, ValueError)
    assert not isinstance(raised.value, BackendError)


async def test_unknown_details_and_foreign_error_infos_are_skipped(
    fake: FakeServer, client: AsyncPersistenceClient
) -> None:
    foreign = error_details_pb2.ErrorInfo(reason="NOT_FOUND", domain="other.example.com")
    retry_info = error_details_pb2.RetryInfo()
    ours = error_details_pb2.ErrorInfo(reason="CLAIM_LOST", domain="persistence.sayiir.dev")
    fake.behaviours["ReleaseTaskClaim"] = failing(error_status(Code.ABORTED, "", None, (retry_info, foreign, ours)))

    with pytest.raises(ClaimLostError):
        await client.release_task_claim("order-1", TaskId.from_name("t"), "worker")


async def test_an_unknown_reason_of_our_domain_is_a_transport_error_with_its_code_and_reason(
    fake: FakeServer, client: AsyncPersistenceClient
) -> None:
    fake.behaviours["LoadSnapshot"] = failing(error_status(Code.RESOURCE_EXHAUSTED, "", "SOME_FUTURE_REASON"))

    with pytest.raises(TransportError) as raised:
        await client.load_snapshot("order-1")

    assert (raised.value.code, raised.value.reason) == (Code.RESOURCE_EXHAUSTED, "SOME_FUTURE_REASON")
    assert not isinstance(raised.value, BackendUnavailableError)


async def test_a_status_without_error_info_is_a_transport_error(
    fake: FakeServer, client: AsyncPersistenceClient
) -> None:
    async def internal(request: Message, context: Context) -> Message:
        await context.abort(Code.INTERNAL, "boom")
        raise AssertionError("abort returned")

    fake.behaviours["LoadSnapshot"] = internal

    with pytest.raises(TransportError) as raised:
        await client.load_snapshot("order-1")

    assert raised.value.code == Code.INTERNAL
    assert not isinstance(raised.value, BackendUnavailableError)  # a server bug is no reason to retry


async def test_an_unreachable_server_is_backend_unavailable() -> None:
    # A bound but never listening socket: connections are refused, and no other process can take the port.
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{reserved.getsockname()[1]}"
        async with AsyncPersistenceClient(address, retry=None, deadline=timedelta(seconds=5)) as client:
            with pytest.raises(BackendUnavailableError) as raised:
                await client.load_snapshot("order-1")

    assert isinstance(raised.value, ServerUnavailableError)
    assert raised.value.code == Code.UNAVAILABLE


async def test_a_passed_deadline_is_server_unavailable_with_deadline_exceeded(fake: FakeServer) -> None:
    async def slow(request: Message, context: Context) -> Message:
        await asyncio.sleep(5)
        return pb.WorkflowSnapshot()

    fake.behaviours["LoadSnapshot"] = slow
    async with AsyncPersistenceClient(fake.address, deadline=timedelta(milliseconds=100)) as client:
        with pytest.raises(ServerUnavailableError) as raised:
            await client.load_snapshot("order-1")

    assert raised.value.code == Code.DEADLINE_EXCEEDED
    assert isinstance(raised.value, BackendUnavailableError)


@pytest.mark.parametrize("code", [Code.UNAUTHENTICATED, Code.PERMISSION_DENIED])
@pytest.mark.parametrize("reason", [None, "UNAUTHENTICATED"], ids=["bare", "with-error-info"])
async def test_a_refused_caller_is_access_denied_not_a_backend_error(
    fake: FakeServer, client: AsyncPersistenceClient, code: Code, reason: str | None
) -> None:
    fake.behaviours["LoadSnapshot"] = failing(error_status(code, "no", reason))

    with pytest.raises(AccessDeniedError) as raised:
        await client.load_snapshot("order-1")

    assert raised.value.code == code
    assert not isinstance(raised.value, BackendError)


async def test_the_real_server_errors_decode_to_the_same_classes() -> None:
    async with (
        served_backend(InMemoryBackend()) as address,
        AsyncPersistenceClient(address, retry=None) as client,
    ):
        with pytest.raises(NotFoundError):
            await client.load_snapshot("missing")
        await client.prepare_run("order-1", HASH_A, b"in", FIRST)
        with pytest.raises(AlreadyExistsError) as exists:
            await client.prepare_run("order-1", HASH_A, b"in", FIRST)
        with pytest.raises(DefinitionMismatchError) as mismatch:
            await client.prepare_run("order-1", HASH_B, b"in", FIRST)
        with pytest.raises(InvalidInstanceIdError):
            await client.prepare_run("", HASH_A, b"in", FIRST)
        with pytest.raises(InvalidArgumentError) as invalid:
            await client.claim_task("order-1", b"short", "worker", None)
        await client.claim_task("order-1", FIRST.task_id, "worker-a", None)
        with pytest.raises(ClaimLostError):
            await client.release_task_claim("order-1", FIRST.task_id, "worker-b")

    assert exists.value.instance_id == "order-1"
    assert (mismatch.value.expected, mismatch.value.found) == (HASH_B, HASH_A)
    assert invalid.value.field == "task_id"
    assert isinstance(exists.value, RunConflictError)
