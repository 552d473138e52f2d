"""An in-process server on port 0 over a fresh in-memory backend, and a channel to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest

from sayiir_server.api.server import PersistenceServer, ServerOptions
from sayiir_server.backends.memory import InMemoryBackend
from tests.e2e.wire import stubs

TEST_OPTIONS = ServerOptions(
    listen="127.0.0.1:0",
    grace_period=timedelta(seconds=2),
    max_wait_timeout=timedelta(milliseconds=200),
    max_message_bytes=1024 * 1024,
)
"""Small limits so tests about caps and drains stay fast."""


@pytest.fixture
def backend() -> InMemoryBackend:
    return InMemoryBackend()


@pytest.fixture
async def server(backend: InMemoryBackend) -> AsyncIterator[PersistenceServer]:
    server = PersistenceServer(backend, TEST_OPTIONS)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(timedelta(0))


@pytest.fixture
async def channel(server: PersistenceServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield channel


@pytest.fixture
def rpc(channel: grpc.aio.Channel) -> dict[str, Any]:
    """ "Service.Method" → multi-callable, on the in-process server."""
    return stubs(channel)
