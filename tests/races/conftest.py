"""The races' one shared database: two engines on one SQLite file or one PostgreSQL schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import pytest

from sayiir_server.backends import open_backend
from sayiir_server.domain.model import utc_now
from sayiir_server.domain.traits import Backend

OpenShared = Callable[..., Awaitable[Backend]]
"""Open another backend object on the test's one database; `clock=` optional."""


@asynccontextmanager
async def _shared_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/shared.db"
        return
    from tests.support.postgres import temporary_database_url

    async with temporary_database_url() as url:
        yield url


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)])
async def open_shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OpenShared]:
    """Opens engines on the test's one shared database (SQLite file or PostgreSQL schema)."""
    opened: list[Backend] = []
    async with _shared_url(request.param, tmp_path) as url:

        async def open_shared(clock: Callable[[], datetime] = utc_now) -> Backend:
            backend = await open_backend(url, clock=clock, timer=False)  # only the races' own finds advance
            opened.append(backend)
            return backend

        yield open_shared
        for backend in opened:
            await backend.close()
