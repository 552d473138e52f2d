"""Calling every RPC by name and reading the google.rpc.Status of a failed call."""

from __future__ import annotations

import hashlib
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import service_pb2, service_pb2_grpc

_M = TypeVar("_M", bound=Message)

RPC_NAMES = tuple(
    f"{service.name}.{method.name}"
    for service in service_pb2.DESCRIPTOR.services_by_name.values()
    for method in service.methods
)
"""Every RPC of the contract as "Service.Method"."""

STREAMING_RPCS = frozenset(
    f"{service.name}.{method.name}"
    for service in service_pb2.DESCRIPTOR.services_by_name.values()
    for method in service.methods
    if method.server_streaming
)


def node_id(name: str) -> bytes:
    """A 32-byte task, node or definition id: SHA-256 of a name (docs/behaviour.md ID)."""
    return hashlib.sha256(name.encode()).digest()


DEFINITION = node_id("definition: orders v1")


def stubs(channel: grpc.aio.Channel) -> dict[str, Any]:
    """ "Service.Method" → the multi-callable of that RPC on `channel`."""
    callables: dict[str, Any] = {}
    for service in service_pb2.DESCRIPTOR.services_by_name.values():
        stub = getattr(service_pb2_grpc, f"{service.name}Stub")(channel)
        for method in service.methods:
            callables[f"{service.name}.{method.name}"] = getattr(stub, method.name)
    return callables


def google_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The rich status of a failed call (its grpc-status-details-bin trailer)."""
    status = rpc_status.from_call(error)
    assert status is not None, f"{error.code()} carries no google.rpc.Status: {error.details()}"
    assert isinstance(status, status_pb2.Status)
    return status


def details(status: status_pb2.Status, kind: type[_M]) -> list[_M]:
    found = []
    for detail in status.details:
        if detail.Is(kind.DESCRIPTOR):
            message = kind()
            detail.Unpack(message)
            found.append(message)
    return found


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    (info,) = details(google_status(error), error_details_pb2.ErrorInfo)
    return info


def at_task_snapshot(instance_id: str, task: str = "fetch") -> pb.WorkflowSnapshot:
    """A valid InProgress snapshot positioned at `task`, with an input so the task is dispatchable."""
    return pb.WorkflowSnapshot(
        instance_id=instance_id,
        definition_hash=DEFINITION,
        in_progress=pb.InProgressState(position=pb.ExecutionPosition(at_task=pb.AtTask(task_id=node_id(task)))),
        initial_input=b"{}",
    )
