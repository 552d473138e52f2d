"""Exceptions become gRPC statuses in one place, per docs/behaviour.md ERR."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from sayiir_client.errors import (
    AlreadyExistsError,
    BackendError,
    BackendUnavailableError,
    CannotCancelError,
    CannotPauseError,
    ClaimLostError,
    DefinitionMismatchError,
    FinalStateError,
    InvalidInstanceIdError,
    NotFoundError,
    RunBackendFailureError,
    SerializationError,
)
from sayiir_client.v1 import error_details_pb2 as sayiir_details
from sayiir_server.api.grpc_errors import DOMAIN, MalformedRequest, error_status, translate_errors
from sayiir_server.domain.errors import InvalidFieldError

EXPECTED_H = b"\x01" * 32
FOUND_H = b"\x02" * 32

CODE_TABLE = [
    (NotFoundError("no snapshot for order-1"), grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
    (SerializationError("bad bytes sent", stored=False), grpc.StatusCode.INVALID_ARGUMENT, "SERIALIZATION"),
    (SerializationError("corrupt row", stored=True), grpc.StatusCode.DATA_LOSS, "SERIALIZATION"),
    (BackendUnavailableError("database down"), grpc.StatusCode.UNAVAILABLE, "BACKEND"),
    (BackendError("storage failed"), grpc.StatusCode.UNAVAILABLE, "BACKEND"),
    (CannotCancelError("Completed"), grpc.StatusCode.FAILED_PRECONDITION, "CANNOT_CANCEL"),
    (CannotPauseError("Failed"), grpc.StatusCode.FAILED_PRECONDITION, "CANNOT_PAUSE"),
    (ClaimLostError("held by worker-b"), grpc.StatusCode.ABORTED, "CLAIM_LOST"),
    (FinalStateError("Completed"), grpc.StatusCode.FAILED_PRECONDITION, "FINAL_STATE"),
    (InvalidInstanceIdError(0, 256), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_INSTANCE_ID"),
    (AlreadyExistsError("order-1"), grpc.StatusCode.ALREADY_EXISTS, "ALREADY_EXISTS"),
    (DefinitionMismatchError(EXPECTED_H, FOUND_H), grpc.StatusCode.FAILED_PRECONDITION, "DEFINITION_MISMATCH"),
    (RunBackendFailureError("database down"), grpc.StatusCode.UNAVAILABLE, "BACKEND"),
    (InvalidFieldError("task_id", "must be 32 bytes, got 3"), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
]


def _unpacked(status: status_pb2.Status, kind: type[Any]) -> list[Any]:
    found = []
    for detail in status.details:
        if detail.Is(kind.DESCRIPTOR):
            message = kind()
            detail.Unpack(message)
            found.append(message)
    return found


def _error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo:
    (info,) = _unpacked(status, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    return info


@pytest.mark.parametrize(("error", "code", "reason"), CODE_TABLE, ids=lambda v: type(v).__name__)
def test_each_error_maps_to_its_code_and_errorinfo_reason(error: Exception, code: grpc.StatusCode, reason: str) -> None:
    status = error_status(error)
    assert status.code == code.value[0]
    assert status.message == str(error)
    info = _error_info(status)
    assert (info.domain, info.reason) == (DOMAIN, reason)


@pytest.mark.parametrize(
    ("error", "metadata"),
    [
        (CannotCancelError("Completed"), {"state": "Completed"}),
        (CannotPauseError("Cancelled"), {"state": "Cancelled"}),
        (InvalidFieldError("snapshot.instance_id", "must not be empty"), {"field": "snapshot.instance_id"}),
        (AlreadyExistsError("order-1"), {"instance_id": "order-1"}),
        (InvalidInstanceIdError(300, 256), {"length": "300", "max_length": "256"}),
        (DefinitionMismatchError(EXPECTED_H, FOUND_H), {"expected": EXPECTED_H.hex(), "found": FOUND_H.hex()}),
    ],
)
def test_errorinfo_metadata_names_what_a_client_branches_on(error: Exception, metadata: dict[str, str]) -> None:
    assert dict(_error_info(error_status(error)).metadata) == metadata


def test_the_instance_id_of_the_request_joins_the_metadata_when_known() -> None:
    assert dict(_error_info(error_status(NotFoundError("missing"), "order-9")).metadata) == {"instance_id": "order-9"}


def test_an_invalid_field_carries_a_badrequest_field_violation() -> None:
    status = error_status(InvalidFieldError("first_task.task_id", "must be 32 bytes, got 3"))
    (bad_request,) = _unpacked(status, error_details_pb2.BadRequest)
    (violation,) = bad_request.field_violations
    assert (violation.field, violation.description) == ("first_task.task_id", "must be 32 bytes, got 3")


@pytest.mark.parametrize(
    "error",
    [
        InvalidInstanceIdError(0, 256),
        AlreadyExistsError("order-1"),
        DefinitionMismatchError(EXPECTED_H, FOUND_H),
        RunBackendFailureError("database down"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_a_run_conflict_carries_the_typed_runconflict_detail(error: Any) -> None:
    (conflict,) = _unpacked(error_status(error), sayiir_details.RunConflict)
    assert conflict == error.conflict


def test_errors_outside_the_tree_are_internal_without_leaking_their_text() -> None:
    status = error_status(ValueError("secret detail"))
    assert status.code == grpc.StatusCode.INTERNAL.value[0]
    assert "secret detail" not in status.message
    assert "ValueError" in status.message


# --- the decorator -------------------------------------------------------------------------------------------------


class _RecordingContext:
    """Stands in for grpc's ServicerContext: records the status the RPC was aborted with."""

    def __init__(self) -> None:
        self.status: grpc.Status | None = None

    async def abort_with_status(self, status: grpc.Status) -> None:
        self.status = status
        raise grpc.aio.AbortError()

    def google_status(self) -> status_pb2.Status:
        assert self.status is not None
        assert self.status.code != grpc.StatusCode.OK
        (_, raw), *_ = [item for item in self.status.trailing_metadata if item[0] == "grpc-status-details-bin"]
        return status_pb2.Status.FromString(raw)


class _Servicer:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    @translate_errors
    async def Unary(self, request: str, context: _RecordingContext) -> str:  # noqa: N802 - gRPC method name
        if self.error is not None:
            raise self.error
        return f"answer to {request}"

    @translate_errors
    async def Stream(self, request: str, context: _RecordingContext) -> AsyncIterator[str]:  # noqa: N802 - gRPC method name
        yield "first"
        if self.error is not None:
            raise self.error
        yield "second"


async def _collect(stream: AsyncIterator[str], into: list[str]) -> None:
    async for item in stream:
        into.append(item)


async def test_a_method_that_succeeds_is_untouched() -> None:
    context = _RecordingContext()
    assert await _Servicer(None).Unary("question", context) == "answer to question"
    assert [item async for item in _Servicer(None).Stream("question", context)] == ["first", "second"]
    assert context.status is None


async def test_a_unary_method_error_aborts_with_its_status() -> None:
    context = _RecordingContext()
    with pytest.raises(grpc.aio.AbortError):
        await _Servicer(ClaimLostError("held by worker-b")).Unary("question", context)
    assert context.status is not None
    assert context.status.code == grpc.StatusCode.ABORTED
    assert _error_info(context.google_status()).reason == "CLAIM_LOST"


async def test_a_streaming_method_error_aborts_after_the_items_already_sent() -> None:
    context = _RecordingContext()
    received: list[str] = []
    with pytest.raises(grpc.aio.AbortError):
        await _collect(_Servicer(NotFoundError("gone")).Stream("question", context), received)
    assert received == ["first"]
    assert _error_info(context.google_status()).reason == "NOT_FOUND"


async def test_an_unexpected_error_is_logged_with_its_traceback_and_answered_internal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = _RecordingContext()
    with caplog.at_level(logging.ERROR, logger="sayiir_server.api.grpc_errors"), pytest.raises(grpc.aio.AbortError):
        await _Servicer(KeyError("oops")).Unary("question", context)
    assert context.status is not None
    assert context.status.code == grpc.StatusCode.INTERNAL
    (record,) = caplog.records
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], KeyError)


async def test_cancellation_propagates_instead_of_becoming_a_status() -> None:
    context = _RecordingContext()
    with pytest.raises(asyncio.CancelledError):
        await _Servicer(asyncio.CancelledError()).Unary("question", context)
    assert context.status is None


async def test_undecodable_request_bytes_are_a_client_serialization_error() -> None:
    context = _RecordingContext()
    request: Any = MalformedRequest("LoadSnapshotRequest", "String field had bad UTF-8")
    with pytest.raises(grpc.aio.AbortError):
        await _Servicer(None).Unary(request, context)
    assert context.status is not None
    assert context.status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(context.google_status()).reason == "SERIALIZATION"


def test_the_decorated_methods_are_marked_so_coverage_can_be_checked() -> None:
    assert getattr(_Servicer.Unary, "translates_errors", False)
    assert getattr(_Servicer.Stream, "translates_errors", False)


def test_every_reason_the_server_sends_is_listed_in_the_proto_error_reason_enum() -> None:
    listed = {name.removeprefix("ERROR_REASON_") for name in sayiir_details.ErrorReason.DESCRIPTOR.values_by_name}
    sent = {reason for _, _, reason in CODE_TABLE} | {"UNAUTHENTICATED", "PERMISSION_DENIED"}  # auth.py's refusals
    assert sent <= listed
