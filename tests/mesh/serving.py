"""In-process servers with mesh options, and calling any RPC by its descriptor."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.message import Message

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2
from sayiir_server.api.server import PersistenceServer, ServerOptions
from sayiir_server.backends.memory import InMemoryBackend
from sayiir_server.mesh.mesh import Mesh, MeshOptions

TEST_SERVER_OPTIONS = ServerOptions(
    listen="127.0.0.1:0", grace_period=timedelta(seconds=1), max_wait_timeout=timedelta(milliseconds=200)
)

WORKER_TOKEN = "worker-token-5f1c0d2e"
READER_TOKEN = "reader-token-9a7b3c4d"
TOKEN_FILE_TEXT = f"""\
# tokens of the test deployment
{WORKER_TOKEN} worker

{READER_TOKEN}   reader
"""


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Served:
    server: PersistenceServer
    mesh: Mesh
    backend: InMemoryBackend

    @property
    def address(self) -> str:
        return self.server.address


@asynccontextmanager
async def serving(
    mesh_options: MeshOptions | None = None, backend: InMemoryBackend | None = None, **server_options: Any
) -> AsyncIterator[Served]:
    """A started server on port 0 over `backend` (a fresh in-memory one by default), with the mesh's hooks."""
    backend = backend if backend is not None else InMemoryBackend()
    mesh = Mesh(mesh_options or MeshOptions(), backend, process_metrics=False)
    options = mesh.server_options(dataclasses.replace(TEST_SERVER_OPTIONS, **server_options))
    server = PersistenceServer(backend, options)
    mesh.start()
    await server.start()
    try:
        yield Served(server, mesh, backend)
    finally:
        await server.stop(timedelta(0))
        await mesh.stop()


@dataclass(frozen=True)
class Rpc:
    """One RPC of the contract, callable on any channel."""

    path: str
    """"/sayiir.persistence.v1.SnapshotStore/SaveSnapshot"."""
    name: str
    request_class: type[Message]
    response_class: type[Message]
    streaming: bool

    def request(self) -> Message:
        return self.request_class()


EVERY_RPC: tuple[Rpc, ...] = tuple(
    Rpc(
        path=f"/{service.full_name}/{method.name}",
        name=method.name,
        request_class=getattr(rr, method.input_type.name),
        response_class=getattr(rr, method.output_type.name),
        streaming=method.server_streaming,
    )
    for service in service_pb2.DESCRIPTOR.services_by_name.values()
    for method in service.methods
)


def rpc(name: str) -> Rpc:
    (found,) = (candidate for candidate in EVERY_RPC if candidate.name == name)
    return found


async def call(
    channel: grpc.aio.Channel,
    method: Rpc,
    request: Message | None = None,
    metadata: Sequence[tuple[str, str]] = (),
    timeout: float = 5.0,
) -> Any:
    """The response (for a stream: the list of responses until it ended); raises grpc.aio.AioRpcError."""
    request = request if request is not None else method.request()
    if method.streaming:
        stream = channel.unary_stream(
            method.path,
            request_serializer=method.request_class.SerializeToString,
            response_deserializer=method.response_class.FromString,
        )(request, metadata=tuple(metadata), timeout=timeout)
        return [response async for response in stream]
    unary = channel.unary_unary(
        method.path,
        request_serializer=method.request_class.SerializeToString,
        response_deserializer=method.response_class.FromString,
    )
    return await unary(request, metadata=tuple(metadata), timeout=timeout)


async def status_code(
    channel: grpc.aio.Channel,
    method: Rpc,
    request: Message | None = None,
    metadata: Sequence[tuple[str, str]] = (),
    timeout: float = 5.0,
) -> grpc.StatusCode:
    """How the call ended: OK, or the code of its failure."""
    try:
        await call(channel, method, request, metadata, timeout)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `condition()` holds; fail after `timeout` seconds."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still false after {timeout} s: {condition}")


def node_id(name: str) -> bytes:
    """A 32-byte id: SHA-256 of a name (docs/behaviour.md ID)."""
    return hashlib.sha256(name.encode()).digest()


DEFINITION = node_id("definition: mesh tests")


def at_task_snapshot(instance_id: str, task: str = "fetch", **fields: Any) -> pb.WorkflowSnapshot:
    """A valid InProgress snapshot at `task`, with an input, so the task is dispatchable."""
    return pb.WorkflowSnapshot(
        instance_id=instance_id,
        definition_hash=DEFINITION,
        in_progress=pb.InProgressState(position=pb.ExecutionPosition(at_task=pb.AtTask(task_id=node_id(task)))),
        initial_input=b"{}",
        **fields,
    )
