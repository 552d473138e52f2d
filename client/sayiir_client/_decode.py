"""The one place where a failed call becomes a typed error.

Decisions are taken from the google.rpc.Status in the trailers — the ErrorInfo
reason of our domain and the RunConflict detail — never from the message text.
Details of unknown types, and ErrorInfos of other domains, are skipped, so a
newer server can add details without breaking older clients.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from sayiir_client.errors import (
    ERROR_DOMAIN,
    AccessDeniedError,
    BackendUnavailableError,
    CannotCancelError,
    CannotPauseError,
    ClaimLostError,
    FinalStateError,
    InvalidArgumentError,
    NotFoundError,
    RunConflictError,
    SerializationError,
    ServerUnavailableError,
    TransportError,
)
from sayiir_client.v1 import error_details_pb2 as details

"""ErrorInfo.domain of the errors this service defines."""

STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""Trailer carrying the serialized google.rpc.Status."""

TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
"""Codes that, without an ErrorInfo, mean the server was not reached or did not answer in time."""

ACCESS_DENIED_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
"""Codes of a refused caller, whether the server's auth or a proxy in front of it refused."""


def error_from_rpc_error(error: grpc.RpcError) -> Exception:
    """The typed error for a failed call, blocking (grpc.RpcError) or asyncio (grpc.aio.AioRpcError) alike."""
    if not isinstance(error, grpc.Call | grpc.aio.AioRpcError):
        return TransportError(grpc.StatusCode.UNKNOWN, str(error))
    code = error.code()
    message = error.details() or ""
    return decode_status(code, message, error.trailing_metadata() or ())


Trailers = Iterable[tuple[str, str | bytes]]


def decode_status(code: grpc.StatusCode, message: str, trailing_metadata: Trailers) -> Exception:
    """Map a status (code, message, trailers) to the error tree of sayiir_client.errors."""
    status = _rich_status(trailing_metadata)
    conflict = _run_conflict(status)
    if conflict is not None:
        return RunConflictError.from_conflict(conflict, message)
    if code in ACCESS_DENIED_CODES:
        return AccessDeniedError(code, message)
    info = _error_info(status)
    if info is None:
        return ServerUnavailableError(code, message) if code in TRANSIENT_CODES else TransportError(code, message)
    return _from_reason(code, message, info)


def _from_reason(code: grpc.StatusCode, message: str, info: error_details_pb2.ErrorInfo) -> Exception:
    reason = info.reason
    if reason == "NOT_FOUND":
        return NotFoundError(message)
    if reason == "SERIALIZATION":
        return SerializationError(message, stored=code == grpc.StatusCode.DATA_LOSS)
    if reason == "BACKEND":
        return BackendUnavailableError(message)
    if reason == "CANNOT_CANCEL":
        return CannotCancelError(info.metadata.get("state", ""))
    if reason == "CANNOT_PAUSE":
        return CannotPauseError(info.metadata.get("state", ""), message or None)
    if reason == "CLAIM_LOST":
        return ClaimLostError(message)
    if reason == "FINAL_STATE":
        return FinalStateError(info.metadata.get("state", ""))
    if reason == "INVALID_ARGUMENT":
        return InvalidArgumentError(info.metadata.get("field", ""), message)
    # A reason this client does not know yet (or a RunConflict reason without its detail).
    return TransportError(code, message, reason)


def _rich_status(trailing_metadata: Trailers) -> status_pb2.Status | None:
    for key, value in trailing_metadata:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status()
            try:
                status.ParseFromString(value)
            except DecodeError:  # a garbled trailer is no reason to lose the status code
                return None
            return status
    return None


def _error_info(status: status_pb2.Status | None) -> error_details_pb2.ErrorInfo | None:
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == ERROR_DOMAIN:
                return info
    return None


def _run_conflict(status: status_pb2.Status | None) -> details.RunConflict | None:
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(details.RunConflict.DESCRIPTOR):
            conflict = details.RunConflict()
            detail.Unpack(conflict)
            if conflict.WhichOneof("conflict") is not None:
                return conflict
    return None
