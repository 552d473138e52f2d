"""The one place where exceptions become gRPC statuses (docs/behaviour.md ERR).

Every servicer method is wrapped by `translate_errors`: the error tree
(`BackendError`, `RunConflictError`) and `InvalidFieldError` become a
google.rpc.Status with a google.rpc.ErrorInfo (domain DOMAIN, reason = the
error class's `reason`), a BadRequest for invalid fields and the RunConflict
message for prepare_run's refusals. Anything else is a server bug: logged with
its traceback and answered INTERNAL. Servicers never build statuses.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast, overload

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from sayiir_client.errors import (
    ERROR_DOMAIN,
    AlreadyExistsError,
    BackendError,
    CannotCancelError,
    CannotPauseError,
    ClaimLostError,
    DefinitionMismatchError,
    FinalStateError,
    InvalidInstanceIdError,
    NotFoundError,
    RunConflictError,
    SerializationError,
)
from sayiir_server.domain.errors import InvalidFieldError
from sayiir_server.mesh.calls import instance_id_of

DOMAIN = ERROR_DOMAIN
"""ErrorInfo.domain of every status this server sends (the one the client decodes)."""

logger = logging.getLogger(__name__)

_Self = TypeVar("_Self")
_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_Context = TypeVar("_Context")


class MalformedRequest:
    """Stands in for a request whose bytes could not be parsed (e.g. a string field with bad UTF-8).

    The request deserializer returns it instead of raising, because gRPC would
    answer UNKNOWN for a deserializer exception; `translate_errors` turns it
    into a client error (INVALID_ARGUMENT, reason SERIALIZATION).
    """

    def __init__(self, message_name: str, problem: str) -> None:
        self.message_name = message_name
        self.problem = problem


def grpc_code(error: BaseException) -> grpc.StatusCode:
    """The status code of an error (docs/behaviour.md ERR); INTERNAL for anything outside the error tree."""
    if isinstance(error, InvalidFieldError | InvalidInstanceIdError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, SerializationError):
        return grpc.StatusCode.DATA_LOSS if error.stored else grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, CannotCancelError | CannotPauseError | DefinitionMismatchError | FinalStateError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(error, ClaimLostError):
        return grpc.StatusCode.ABORTED
    if isinstance(error, AlreadyExistsError):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(error, BackendError | RunConflictError):
        # BackendUnavailableError, RunBackendFailureError and any other storage failure: retry later.
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


def error_metadata(error: BaseException) -> dict[str, str]:
    """ErrorInfo metadata a client can branch on without parsing text."""
    if isinstance(error, InvalidFieldError):
        return {"field": error.field}
    if isinstance(error, CannotCancelError | CannotPauseError | FinalStateError):
        return {"state": error.state}
    if isinstance(error, AlreadyExistsError):
        return {"instance_id": error.instance_id}
    if isinstance(error, InvalidInstanceIdError):
        return {"length": str(error.length), "max_length": str(error.max_length)}
    if isinstance(error, DefinitionMismatchError):
        return {"expected": error.expected.hex(), "found": error.found.hex()}
    return {}


def error_status(error: BaseException, instance_id: str = "") -> status_pb2.Status:
    """The google.rpc.Status for an error; `instance_id` (when known) goes into the ErrorInfo metadata."""
    code = grpc_code(error)
    if code == grpc.StatusCode.INTERNAL:
        return _status(code, f"internal server error ({type(error).__name__}): a server bug, see the server log")
    metadata = error_metadata(error)
    if instance_id:
        metadata.setdefault("instance_id", instance_id)
    reason: str = getattr(error, "reason", "BACKEND")
    details: list[Message] = [error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)]
    if isinstance(error, InvalidFieldError):
        violation = error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.description)
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    if isinstance(error, RunConflictError):
        details.append(error.conflict)
    return _status(code, str(error) or type(error).__name__, details)


def _status(code: grpc.StatusCode, message: str, details: list[Message] | None = None) -> status_pb2.Status:
    packed = []
    for detail in details or ():
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    # grpc.StatusCode values are (number, name) pairs; google.rpc.Code uses the same numbers.
    number: int = code.value[0]
    return status_pb2.Status(code=number, message=message, details=packed)


async def abort_with_error(context: grpc.aio.ServicerContext[Any, Any], error: BaseException, request: object) -> None:
    """End the RPC with the status of `error` (raises grpc.aio.AbortError)."""
    if grpc_code(error) == grpc.StatusCode.INTERNAL:
        logger.error("bug: unexpected %s in an RPC handler", type(error).__name__, exc_info=error)
    status = error_status(error, instance_id_of(request))
    await context.abort_with_status(rpc_status.to_status(status))


def _parsed(request: _Request | MalformedRequest) -> _Request:
    if isinstance(request, MalformedRequest):
        raise SerializationError(f"malformed {request.message_name}: {request.problem}", stored=False)
    return request


@overload
def translate_errors(
    method: Callable[[_Self, _Request, _Context], AsyncIterator[_Response]],
) -> Callable[[_Self, _Request, _Context], AsyncIterator[_Response]]: ...


@overload
def translate_errors(
    method: Callable[[_Self, _Request, _Context], Awaitable[_Response]],
) -> Callable[[_Self, _Request, _Context], Awaitable[_Response]]: ...


def translate_errors(method: Callable[[_Self, _Request, _Context], Any]) -> Callable[[_Self, _Request, _Context], Any]:
    """Wrap a servicer method (coroutine or async generator) so every failure leaves as the right status."""
    if inspect.isasyncgenfunction(method):
        stream_method: Callable[[_Self, _Request, _Context], AsyncIterator[Any]] = method

        @functools.wraps(method)
        async def stream_wrapper(self: _Self, request: _Request, context: _Context) -> AsyncIterator[Any]:
            try:
                async for response in stream_method(self, _parsed(request), context):
                    yield response
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as error:
                await abort_with_error(_servicer_context(context), error, request)

        stream_wrapper.translates_errors = True  # type: ignore[attr-defined]
        return stream_wrapper

    @functools.wraps(method)
    async def unary_wrapper(self: _Self, request: _Request, context: _Context) -> Any:
        try:
            return await method(self, _parsed(request), context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as error:
            await abort_with_error(_servicer_context(context), error, request)

    unary_wrapper.translates_errors = True  # type: ignore[attr-defined]
    return unary_wrapper


def _servicer_context(context: object) -> grpc.aio.ServicerContext[Any, Any]:
    # The runtime context is grpc's Cython class, which does not inherit grpc.aio.ServicerContext.
    return cast("grpc.aio.ServicerContext[Any, Any]", context)
