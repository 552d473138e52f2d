"""The transport ceiling: a bare grpc.aio service moving the same bytes as each benchmarked RPC.

No protobuf and no storage: the request is raw bytes whose first four bytes say how long the reply
must be, so one method reproduces any RPC's exact request and response sizes. An operation made of
several RPCs (the worker cycle) is echoed as the same sequence of exchanges.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

SERVICE = "sayiir.bench.Transport"
METHOD = f"/{SERVICE}/Exchange"
_HEADER = struct.Struct(">I")


@dataclass(frozen=True)
class Exchange:
    """One RPC's serialized request and response sizes in bytes."""

    request_bytes: int
    response_bytes: int


class _Replies:
    """Reply payloads by length, built once: the handler only slices a cache."""

    def __init__(self) -> None:
        self._by_length: dict[int, bytes] = {}

    def of_length(self, length: int) -> bytes:
        reply = self._by_length.get(length)
        if reply is None:
            reply = self._by_length[length] = b"r" * length
        return reply


def echo_handler() -> grpc.GenericRpcHandler:
    """The generic handler to add to a grpc.aio server (raw bytes in and out: no serializers)."""
    replies = _Replies()

    async def exchange(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        (length,) = _HEADER.unpack_from(request)
        return replies.of_length(length)

    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(exchange)
    return grpc.method_handlers_generic_handler(SERVICE, {"Exchange": handler})


def encode_request(exchange: Exchange) -> bytes:
    """A request of exactly `exchange.request_bytes` (at least the 4-byte header) asking for the reply size."""
    padding = max(exchange.request_bytes - _HEADER.size, 0)
    return _HEADER.pack(exchange.response_bytes) + b"q" * padding


class EchoClient:
    """Replays a sequence of exchanges over one channel."""

    def __init__(self, channel: grpc.aio.Channel, exchanges: Sequence[Exchange]) -> None:
        self._call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
        self._requests = [encode_request(exchange) for exchange in exchanges]

    async def run_once(self, client: int, iteration: int) -> None:
        for request in self._requests:
            await self._call(request)
