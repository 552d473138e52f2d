"""Small conversions shared by the blocking and the asyncio client."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeAlias, TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration

from sayiir_client.options import KeepaliveOptions, RetryOptions, channel_options
from sayiir_client.v1 import enums_pb2 as enums

SignalKind: TypeAlias = enums.SignalKind.ValueType
ControlSignal: TypeAlias = enums.ControlSignal.ValueType
ConflictPolicy: TypeAlias = enums.ConflictPolicy.ValueType
WorkflowState: TypeAlias = enums.WorkflowState.ValueType
WorkflowOrder: TypeAlias = enums.WorkflowOrder.ValueType

HEALTH_SERVICE = ""
"""Service name check_health asks grpc.health.v1 about: "" is the server as a whole, storage included."""
USER_AGENT = "sayiir-client-python/0.1"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
"""Largest page ListSnapshots serves."""

DEFAULT_RETRY = RetryOptions()
DEFAULT_KEEPALIVE = KeepaliveOptions()
NO_EXTRA_WAIT = timedelta(0)
DEFAULT_AGING_INTERVAL = timedelta(seconds=1)
"""FindAvailableTasks' aging interval when the caller gives none (the server's minimum)."""

Metadata: TypeAlias = tuple[tuple[str, str], ...]
ChannelOptions: TypeAlias = list[tuple[str, str | int]]

_Channel = TypeVar("_Channel", grpc.Channel, grpc.aio.Channel)


@dataclass(frozen=True)
class ChannelFactory(Generic[_Channel]):
    """How one gRPC flavour (grpc, grpc.aio) opens a channel."""

    insecure: Callable[[str, ChannelOptions], _Channel]
    secure: Callable[[str, grpc.ChannelCredentials, ChannelOptions], _Channel]


@dataclass(frozen=True)
class Connection(Generic[_Channel]):
    """What a client calls through: its channel, and what every call on it carries."""

    channel: _Channel
    owns_channel: bool
    """True when the client opened the channel, so closing the client closes it; a caller's channel stays open."""
    description: str
    metadata: Metadata
    deadline: timedelta | None
    retry: RetryOptions | None


def connect(
    factory: ChannelFactory[_Channel],
    target: str | None,
    channel: _Channel | None,
    credentials: grpc.ChannelCredentials | None,
    token: str | None,
    deadline: timedelta | None,
    retry: RetryOptions | None,
    keepalive: KeepaliveOptions | None,
    max_message_bytes: int | None,
) -> Connection[_Channel]:
    """The connection of a client constructed with these arguments (see either client's __init__)."""
    check_target(target, channel is not None)
    owns_channel = channel is None
    if channel is None:
        assert target is not None
        options = options_for(retry, keepalive, max_message_bytes)
        if credentials is None:
            channel = factory.insecure(target, options)
        else:
            channel = factory.secure(target, credentials, options)
        description = f"grpc://{target}"
    else:
        description = "grpc (caller's channel)"
    return Connection(channel, owns_channel, description, call_metadata(token), deadline, retry)


def call_metadata(token: str | None) -> Metadata:
    """Metadata sent with every call: the bearer token, when one is configured."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def options_for(
    retry: RetryOptions | None, keepalive: KeepaliveOptions | None, max_message_bytes: int | None
) -> ChannelOptions:
    return [("grpc.primary_user_agent", USER_AGENT), *channel_options(retry, keepalive, max_message_bytes)]


def duration(value: timedelta) -> Duration:
    message = Duration()
    message.FromTimedelta(value)
    return message


def optional_duration(value: timedelta | None) -> Duration | None:
    return None if value is None else duration(value)


def timeout_seconds(deadline: timedelta | None, extra: timedelta = NO_EXTRA_WAIT) -> float | None:
    """The gRPC `timeout` of a call: the client's deadline plus any time the call is meant to wait."""
    return None if deadline is None else (deadline + extra).total_seconds()


def reopens_stream(error: grpc.RpcError) -> bool:
    """Whether a broken WatchWakeups stream is reopened: only after UNAVAILABLE; other failures are raised."""
    return isinstance(error, grpc.Call | grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.UNAVAILABLE


def reconnect_delay(retry: RetryOptions | None, failures: int) -> float:
    """Seconds to wait before reconnecting a stream after `failures` failures in a row (jittered)."""
    backoff = (retry or DEFAULT_RETRY).backoff(failures).total_seconds()
    return backoff * random.uniform(0.5, 1.0)


def check_target(target: str | None, has_channel: bool) -> None:
    given = (target is not None) + has_channel
    if given != 1:
        raise ValueError("give exactly one of a target or a channel")
