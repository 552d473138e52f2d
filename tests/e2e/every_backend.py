"""In-process servers with a small message limit over a fresh store of each backend kind, on one loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from sayiir_server.api.server import PersistenceServer, ServerOptions
from sayiir_server.domain.engine import Engine
from tests.e2e.wire import stubs
from tests.support.backends import ACTIVE_BACKEND_KINDS, open_test_backend
from tests.support.clock import FakeClock

MAX_MESSAGE_BYTES = 64 * 1024
"""The servers' --max-message-bytes: small, so payloads near the limit stay cheap."""

KIND_PARAMS = [
    pytest.param(kind, id=kind, marks=[pytest.mark.postgres] if kind == "postgres" else [])
    for kind in ACTIVE_BACKEND_KINDS
]


@dataclass
class Served:
    kind: str
    engine: Engine
    server: PersistenceServer
    rpc: dict[str, Any]
    """ "Service.Method" → multi-callable on a channel to the server."""


@asynccontextmanager
async def serving(
    kinds: Sequence[str], tmp_path: Path, clock: FakeClock | None = None, *, prepare: Any = None
) -> AsyncIterator[dict[str, Served]]:
    """One started server per kind (limit MAX_MESSAGE_BYTES); `prepare(engine)` runs on each store before."""
    async with AsyncExitStack() as stack:
        served: dict[str, Served] = {}
        for kind in kinds:
            directory = tmp_path / kind
            directory.mkdir(exist_ok=True)
            engine = await stack.enter_async_context(open_test_backend(kind, directory, clock or FakeClock()))
            if prepare is not None:
                await prepare(engine)
            options = ServerOptions(listen="127.0.0.1:0", max_message_bytes=MAX_MESSAGE_BYTES)
            server = PersistenceServer(engine, options)
            await server.start()
            stack.push_async_callback(server.stop, timedelta(0))
            channel = await stack.enter_async_context(
                grpc.aio.insecure_channel(
                    server.address, options=[("grpc.max_receive_message_length", 4 * MAX_MESSAGE_BYTES)]
                )
            )
            served[kind] = Served(kind, engine, server, stubs(channel))
        yield served
