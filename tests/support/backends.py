"""Open a fresh backend of each kind for one test, by the same URLs the server accepts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from sayiir_server.backends import open_backend
from sayiir_server.domain.engine import Clock, Engine
from sayiir_server.domain.model import utc_now

BACKEND_KINDS = ("memory", "sqlite", "postgres")
"""Every backend kind the contract suite knows how to open."""

ACTIVE_BACKEND_KINDS: tuple[str, ...] = ("memory", "sqlite", "postgres")
"""The kinds whose backend exists; each backend's author adds its kind here when it lands."""


@asynccontextmanager
async def open_test_backend(
    kind: str, tmp_path: Path, clock: Clock = utc_now, *, timer: bool = False
) -> AsyncIterator[Engine]:
    """A fresh, empty engine over a store of `kind` whose time rules read `clock`, closed when the block exits.

    Without `timer` only finds advance due delays and signal waits (WAKE-5's timer is off), so a test decides
    when time takes effect."""
    async with _backend_url(kind, tmp_path) as url:
        backend = await open_backend(url, clock=clock, timer=timer)
        try:
            yield backend
        finally:
            await backend.close()


@asynccontextmanager
async def _backend_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path}/contract.db"
    elif kind == "postgres":
        async with _temporary_postgres_url() as url:
            yield url
    else:
        raise ValueError(f"unknown backend kind {kind!r}; known: {', '.join(BACKEND_KINDS)}")


def _temporary_postgres_url() -> AbstractAsyncContextManager[str]:
    # Imported late: only PostgreSQL runs need its driver and a reachable server.
    from tests.support.postgres import temporary_database_url

    return temporary_database_url()
