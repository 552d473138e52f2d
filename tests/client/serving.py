"""In-process servers for client tests (the real `sayiir-server` process: tests.support.server_process)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc

from sayiir_client import AsyncPersistenceClient
from sayiir_server.api.server import ServerOptions, add_persistence_servicers
from sayiir_server.domain.engine import Engine


@asynccontextmanager
async def served_backend(
    backend: Engine, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
) -> AsyncIterator[str]:
    """Serve `backend` in-process on a free port; yields "127.0.0.1:PORT". The backend stays open."""
    server = grpc.aio.server(interceptors=interceptors)
    drain = add_persistence_servicers(server, backend, ServerOptions())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        drain.start()
        await server.stop(None)


@asynccontextmanager
async def client_over_grpc(backend: Engine, **client_options: Any) -> AsyncIterator[AsyncPersistenceClient]:
    """An AsyncPersistenceClient reaching `backend` through a real gRPC server: the "client → server → backend" path.

    The client is built on a channel the fixture owns (AsyncPersistenceClient(channel=...)).
    """
    async with served_backend(backend) as address:
        channel = grpc.aio.insecure_channel(address)
        try:
            yield AsyncPersistenceClient(channel=channel, **client_options)
        finally:
            await channel.close()
