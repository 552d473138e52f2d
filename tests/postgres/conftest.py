"""Fixtures of the PostgreSQL-specific tests: a fresh schema (or database) and backends opened on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sayiir_server.backends import open_backend
from sayiir_server.backends.postgres import PostgresStore
from sayiir_server.domain.engine import Engine
from tests.support.postgres import temporary_database, temporary_database_url

OpenReplica = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """The URL of an empty schema of its own, dropped after the test."""
    async with temporary_database_url() as url:
        yield url


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """The URL of an empty database of its own, for tests that cut every connection to it."""
    async with temporary_database() as url:
        yield url


@pytest.fixture
async def open_replica() -> AsyncIterator[OpenReplica]:
    """Open engine "replicas" on a URL, as separate server processes would; all closed after the test.

    Their due timers (WAKE-5) run only when asked (`timer=True`): elsewhere only finds advance."""
    opened: list[Engine] = []

    async def open_replica(url: str, *, timer: bool = False) -> Engine:
        backend = await open_backend(url, timer=timer)
        opened.append(backend)
        return backend

    yield open_replica
    for backend in opened:
        await backend.close()


def store_of(backend: Engine) -> PostgresStore:
    """The PostgreSQL store behind an engine, for tests that reach into the database."""
    assert isinstance(backend.storage, PostgresStore)
    return backend.storage
