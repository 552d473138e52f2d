"""Interceptor plumbing shared by auth, metrics and access logs.

`with_behavior` rebuilds a method handler of any of the four call kinds
around a new behavior; `CallObserver` times every call and tells its sinks
(metrics, the access log) how it ended.

Nothing here touches a call's context once the call may have ended: grpc.aio
releases the call's core object when the RPC finishes, and a context method
that reaches it afterwards (`peer()`) dereferences a null pointer (SIGSEGV).
What a sink needs from the context is read when the call starts.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import grpc
from google.protobuf.message import Message

Context = grpc.aio.ServicerContext[Any, Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # the class is not subscriptable at run time
UnaryBehavior = Callable[[Any, Context], Awaitable[Any]]
"""A behavior answering with one response (unary-unary or stream-unary)."""
StreamBehavior = Callable[[Any, Context], AsyncIterator[Any]]
"""A behavior answering with a stream of responses, as an async generator."""
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"


def original_behavior(handler: Handler) -> Callable[[Any, Context], Any]:
    behavior: Callable[[Any, Context], Any] | None = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream  # type: ignore[assignment]
    )
    assert behavior is not None, "a method handler has exactly one behavior"
    return behavior


def with_behavior(handler: Handler, unary: UnaryBehavior, streaming: StreamBehavior) -> Handler:
    """A handler of the same kind and serializers as `handler`, running `unary` or `streaming` instead."""
    serializers: dict[str, Any] = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming, **serializers)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, **serializers)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming, **serializers)
    return grpc.unary_unary_rpc_method_handler(unary, **serializers)


async def responses_of(result: Any) -> AsyncIterator[Any]:
    """The responses of a streaming behavior's result, whichever style the behavior uses.

    grpc.aio accepts async generators, coroutines that write with
    `context.write` (they yield nothing here), and plain iterables.
    """
    if hasattr(result, "__aiter__"):
        async for response in result:
            yield response
    elif inspect.isawaitable(result):
        await result
    else:
        for response in result:
            yield response


def instance_id_of(request: object) -> str:
    """The workflow instance a request is about, when it names one."""
    if not isinstance(request, Message):
        return ""
    for holder in (request, getattr(request, "snapshot", None), getattr(request, "hint", None)):
        value = getattr(holder, "instance_id", "") if holder is not None else ""
        if isinstance(value, str) and value:
            return value
    return ""


@dataclass(frozen=True)
class FinishedCall:
    """One call, as it ended."""

    method: str
    """Full method path: "/sayiir.persistence.v1.SnapshotStore/SaveSnapshot"."""
    code: grpc.StatusCode
    duration_seconds: float
    peer: str
    """The caller's address as gRPC reports it ("ipv4:10.0.0.7:51234")."""
    instance_id: str
    """The instance the request named; empty for requests that name none (or stream their requests)."""


class CallSink(Protocol):
    """Told about every call the observer sees."""

    def call_started(self, method: str) -> None: ...

    def call_finished(self, call: FinishedCall) -> None: ...


def split_method(method: str) -> tuple[str, str]:
    """Service and method of a full method path: "/pkg.Service/Method" → ("pkg.Service", "Method")."""
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


def final_code(context: Context, error: BaseException | None) -> grpc.StatusCode:
    """The status code a call ended with, given the exception its behavior raised (None when it returned).

    `context.code()` reads a Python attribute of the call state, never the released core call.
    """
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED  # the caller went away, or the server stopped
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code  # set by abort() or set_code()
    if error is None or isinstance(error, grpc.aio.AbortError):
        return grpc.StatusCode.OK
    return grpc.StatusCode.UNKNOWN  # what grpc answers for an exception escaping a handler


class CallObserver(grpc.aio.ServerInterceptor):
    """Times every call (including those an inner interceptor refuses) and reports it to the sinks."""

    def __init__(self, sinks: Sequence[CallSink]) -> None:
        self._sinks = tuple(sinks)

    async def intercept_service(self, continuation: Continuation, details: grpc.HandlerCallDetails) -> Handler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method
        behavior = original_behavior(handler)

        async def unary(request: Any, context: Context) -> Any:
            started, peer = self._start(method, context)
            error: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as raised:
                error = raised
                raise
            finally:
                self._finish(method, started, peer, request, final_code(context, error))

        async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
            started, peer = self._start(method, context)
            error: BaseException | None = None
            try:
                async for response in responses_of(behavior(request, context)):
                    yield response
            except BaseException as raised:
                error = raised
                raise
            finally:
                self._finish(method, started, peer, request, final_code(context, error))

        return with_behavior(handler, unary, streaming)

    def _start(self, method: str, context: Context) -> tuple[float, str]:
        for sink in self._sinks:
            sink.call_started(method)
        return time.perf_counter(), context.peer()

    def _finish(self, method: str, started: float, peer: str, request: Any, code: grpc.StatusCode) -> None:
        call = FinishedCall(
            method=method,
            code=code,
            duration_seconds=time.perf_counter() - started,
            peer=peer,
            instance_id=instance_id_of(request),
        )
        for sink in self._sinks:
            sink.call_finished(call)
