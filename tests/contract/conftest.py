"""The `store` fixture: every contract test runs once per (backend kind × transport).

A transport opens a fresh backend and hands the test what a caller talks to:
the backend itself ("inprocess"), or an AsyncPersistenceClient reaching it
through the real servicers of a grpc.aio server ("grpc"). Adding a transport is
one entry in TRANSPORTS.

The "grpc" runs use pytest-grpc's fixtures (grpc_server, grpc_addr,
grpc_channel, grpc_stub), with the server, servicer and mounting overridden
below: one grpc.aio server per test module on its own loop and thread, serving
the backend each test plugs in (see tests/support/grpc_wire.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import grpc
import pytest

from sayiir_server.domain.traits import Backend
from tests.support.backends import ACTIVE_BACKEND_KINDS, open_test_backend
from tests.support.clock import FakeClock
from tests.support.grpc_wire import (
    BackendOpener,
    BackendSlot,
    ThreadedAioServer,
    add_to_server,
    client_at,
    plugged,
)

Transport = Callable[[pytest.FixtureRequest, BackendOpener], AbstractAsyncContextManager[Backend]]


@asynccontextmanager
async def inprocess(request: pytest.FixtureRequest, open_backend: BackendOpener) -> AsyncIterator[Backend]:
    """The caller holds the backend object itself."""
    async with open_backend() as backend:
        yield backend


@asynccontextmanager
async def over_grpc(request: pytest.FixtureRequest, open_backend: BackendOpener) -> AsyncIterator[Backend]:
    """The caller holds a client; the backend sits behind the servicers, on the server's loop."""
    server: ThreadedAioServer = request.getfixturevalue("grpc_server")
    slot: BackendSlot = request.getfixturevalue("grpc_servicer")
    address: str = request.getfixturevalue("grpc_addr")
    async with plugged(server, slot, open_backend), client_at(address) as client:
        yield client


TRANSPORTS: dict[str, Transport] = {"inprocess": inprocess, "grpc": over_grpc}

_KIND_MARKS = {"postgres": [pytest.mark.postgres]}


def _store_params() -> list[object]:
    return [
        pytest.param((kind, transport), id=f"{kind}-{transport}", marks=_KIND_MARKS.get(kind, []))
        for kind in ACTIVE_BACKEND_KINDS
        for transport in TRANSPORTS
    ]


@pytest.fixture
def clock() -> FakeClock:
    """The store's clock: it stands still unless the test advances it (claims, delays, aging)."""
    return FakeClock()


@pytest.fixture(params=_store_params())
async def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Backend]:
    """A fresh, empty store reached through one transport, its time rules on `clock`; closed after the test.

    Its due timer (WAKE-5) runs only for tests marked `due_timer`: elsewhere only finds advance."""
    kind, transport = request.param
    timer = request.node.get_closest_marker("due_timer") is not None

    def open_backend() -> AbstractAsyncContextManager[Backend]:
        return open_test_backend(kind, tmp_path, clock, timer=timer)

    async with TRANSPORTS[transport](request, open_backend) as reachable:
        yield reachable


# pytest-grpc overrides: started only by the tests that ask for them (the "grpc" runs and test_wire.py).


@pytest.fixture(scope="module")
def _grpc_server(grpc_interceptors: list[grpc.aio.ServerInterceptor] | None) -> Iterator[ThreadedAioServer]:
    """A grpc.aio server on its own loop, in place of pytest-grpc's sync grpc.server."""
    server = ThreadedAioServer(grpc_interceptors or ())
    yield server
    server.stop()  # pytest-grpc's grpc_server stops it first when it started it; stop() is idempotent


@pytest.fixture(scope="module")
def grpc_addr(_grpc_server: ThreadedAioServer) -> str:
    """The address the server bound on port 0 (pytest-grpc's default guesses a free port instead)."""
    return _grpc_server.address


@pytest.fixture(scope="module")
def grpc_servicer() -> BackendSlot:
    return BackendSlot()


@pytest.fixture(scope="module")
def grpc_add_to_server() -> Callable[[BackendSlot, ThreadedAioServer], None]:
    return add_to_server
