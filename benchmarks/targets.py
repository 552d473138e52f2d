"""The backends under test: how to get fresh, empty storage for each, and whether each is available."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sayiir_server.backends import open_backend

POSTGRES_DSN_ENV = "SAYIIR_BENCH_POSTGRES_DSN"
DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/"
_CONNECT_TIMEOUT = 3.0


async def _nothing_to_settle(url: str) -> str:
    return ""


@dataclass(frozen=True)
class BackendTarget:
    """A backend kind and a factory of fresh storage URLs for it (storage removed when the block exits)."""

    name: str
    fresh_url: Callable[[], AbstractAsyncContextManager[str]]
    settle: Callable[[str], Awaitable[str]] = _nothing_to_settle
    """After a bulk seeding: bring the storage to the steady state it would reach by itself; says what it did."""
    replicated: bool = False
    """Several server processes can serve one storage, each hearing the wakeups of the others' writes."""
    analyze: Callable[[str], Awaitable[str]] = _nothing_to_settle
    """Refresh the planner's statistics, as the direct baselines do after loading their own tables."""


@asynccontextmanager
async def _memory_url() -> AsyncIterator[str]:
    yield "memory://"  # every server process starts with its own empty memory


@asynccontextmanager
async def _sqlite_url() -> AsyncIterator[str]:
    directory = Path(tempfile.mkdtemp(prefix="sayiir-bench-"))
    try:
        yield f"sqlite:///{directory}/bench.db"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def postgres_admin_dsn() -> str:
    return os.environ.get(POSTGRES_DSN_ENV, DEFAULT_POSTGRES_DSN)


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@asynccontextmanager
async def _postgres_url() -> AsyncIterator[str]:
    """A scratch database on the admin DSN's server, dropped (connections and all) afterwards."""
    import asyncpg

    admin_dsn = postgres_admin_dsn()
    database = f"sayiir_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(admin_dsn, timeout=_CONNECT_TIMEOUT)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
        try:
            yield _with_database(admin_dsn, database)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()


async def _analyze_postgres(url: str) -> str:
    import asyncpg

    connection = await asyncpg.connect(url, timeout=_CONNECT_TIMEOUT)
    try:
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return "ANALYZE"


TARGETS = (
    BackendTarget("memory", _memory_url),
    BackendTarget("sqlite", _sqlite_url),
    # No ANALYZE after seeding: the backend plans dispatch per call (plan_cache_mode=force_custom_plan), so the
    # find is measured as it runs right after a bulk load, before autovacuum refreshes the statistics.
    BackendTarget("postgres", _postgres_url, replicated=True, analyze=_analyze_postgres),
)
BACKEND_NAMES = tuple(target.name for target in TARGETS)


async def unavailable_reason(target: BackendTarget) -> str | None:
    """None when the backend opens on fresh storage; otherwise why it cannot be benchmarked."""
    try:
        async with target.fresh_url() as url:
            backend = await open_backend(url)
            await backend.close()
    except ModuleNotFoundError as error:
        return f"backend not installed ({error.name} is missing)"
    except (OSError, TimeoutError) as error:
        where = postgres_admin_dsn() if target.name == "postgres" else target.name
        return f"unreachable at {where}: {type(error).__name__}: {error}"
    except Exception as error:  # any failure to open means "not available here", reported verbatim
        return f"cannot open: {type(error).__name__}: {error}"
    return None
