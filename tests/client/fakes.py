"""A fake persistence server: every RPC records what it received and runs a behaviour the test chose.

Lets a test craft exact statuses (codes, ErrorInfo, details) and observe exactly
what the client sends (metadata, deadline, how many attempts), like the fake
servicers of temporalio's client tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2_grpc

from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2

DOMAIN = "persistence.sayiir.dev"

Context = grpc.aio.ServicerContext[Any, Any]
Behaviour = Callable[[Message, Context], Awaitable[Message]]
StreamBehaviour = Callable[[Message, Context], AsyncIterator[Message]]


@dataclass
class ReceivedCall:
    """What the fake saw of one call."""

    method: str
    request: Message
    metadata: dict[str, str | bytes]
    time_remaining: float | None


@dataclass
class FakeServer:
    """Behaviours by method name ("LoadSnapshot"); a method without one answers its empty response."""

    address: str = ""
    health: Any = None
    """The grpc.health.v1 servicer (health.aio.HealthServicer): set statuses on it."""
    calls: list[ReceivedCall] = field(default_factory=list)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    streams: dict[str, StreamBehaviour] = field(default_factory=dict)

    def calls_to(self, method: str) -> list[ReceivedCall]:
        return [call for call in self.calls if call.method == method]


def error_status(
    code: grpc.StatusCode,
    message: str = "",
    reason: str | None = None,
    details: Iterable[Message] = (),
    **metadata: str,
) -> status_pb2.Status:
    """A google.rpc.Status with an ErrorInfo of our domain (when `reason` is given) followed by `details`."""
    packed: list[any_pb2.Any] = []
    messages: list[Message] = []
    if reason is not None:
        messages.append(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata))
    messages.extend(details)
    for detail in messages:
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    return status_pb2.Status(code=code.value[0], message=message, details=packed)


async def abort_with(context: Context, status: status_pb2.Status) -> None:
    """End the call with `status`, carried in the grpc-status-details-bin trailer as servers do."""
    code = next(code for code in grpc.StatusCode if code.value[0] == status.code)
    trailer = (("grpc-status-details-bin", status.SerializeToString()),)
    await context.abort(code, status.message, trailing_metadata=trailer)


def failing(status: status_pb2.Status) -> Behaviour:
    """A behaviour that always aborts with `status`."""

    async def behaviour(request: Message, context: Context) -> Message:
        await abort_with(context, status)
        raise AssertionError("abort returned")

    return behaviour


def failing_first(times: int, code: grpc.StatusCode, response: Message) -> Behaviour:
    """Abort with a bare `code` (no details, as a proxy or a dropped connection would) `times` times, then answer."""
    remaining = [times]

    async def behaviour(request: Message, context: Context) -> Message:
        if remaining[0] > 0:
            remaining[0] -= 1
            await context.abort(code, "fake transport failure")
        return response

    return behaviour


@asynccontextmanager
async def fake_server() -> AsyncIterator[FakeServer]:
    """A grpc.aio server on a free port answering every persistence RPC through a FakeServer."""
    fake = FakeServer()
    server = grpc.aio.server()
    for service in service_pb2.DESCRIPTOR.services_by_name.values():
        handlers = {method.name: _handler(fake, method) for method in service.methods}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    fake.health = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(fake.health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    fake.address = f"127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await server.stop(None)


def _handler(fake: FakeServer, method: Any) -> grpc.RpcMethodHandler[Any, Any]:
    request_class: type[Message] = getattr(rr, method.input_type.name)
    response_class: type[Message] = getattr(rr, method.output_type.name)
    name: str = method.name

    def record(request: Message, context: Context) -> None:
        metadata = dict(context.invocation_metadata() or ())
        fake.calls.append(ReceivedCall(name, request, metadata, context.time_remaining()))

    if method.server_streaming:

        async def stream(request: Message, context: Context) -> AsyncIterator[Message]:
            record(request, context)
            behaviour = fake.streams.get(name)
            if behaviour is None:
                await asyncio.Event().wait()  # an idle stream, open until the client leaves
                return
            async for response in behaviour(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=request_class.FromString, response_serializer=response_class.SerializeToString
        )

    async def unary(request: Message, context: Context) -> Message:
        record(request, context)
        behaviour = fake.behaviours.get(name)
        if behaviour is None:
            return response_class()
        return await behaviour(request, context)

    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=request_class.FromString, response_serializer=response_class.SerializeToString
    )
