"""The `store` fixture: every contract test runs once per (backend kind × transport).

A transport wraps an open backend in what a caller talks to: the backend itself
("inprocess"), or later a client speaking to a real server over gRPC. Adding a
transport is one entry in TRANSPORTS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from sayiir_server.store import Backend
from tests.support.backends import ACTIVE_BACKEND_KINDS, open_test_backend

Transport = Callable[[Backend], AbstractAsyncContextManager[Backend]]


@asynccontextmanager
async def inprocess(backend: Backend) -> AsyncIterator[Backend]:
    """The caller holds the backend object itself."""
    yield backend


TRANSPORTS: dict[str, Transport] = {"inprocess": inprocess}

_KIND_MARKS = {"postgres": [pytest.mark.postgres]}


def _store_params() -> list[object]:
    return [
        pytest.param((kind, transport), id=f"{kind}-{transport}", marks=_KIND_MARKS.get(kind, []))
        for kind in ACTIVE_BACKEND_KINDS
        for transport in TRANSPORTS
    ]


@pytest.fixture(params=_store_params())
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh, empty store reached through one transport; closed after the test."""
    kind, transport = request.param
    async with open_test_backend(kind, tmp_path) as backend, TRANSPORTS[transport](backend) as reachable:
        yield reachable
