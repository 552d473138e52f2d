"""Throwaway PostgreSQL databases for tests.

The server comes from SAYIIR_TEST_POSTGRES_DSN (default: the local trust-auth
server, database `test`). Each test gets its own uniquely named schema in that
database (the backend's `?schema=` option: cheap to create and drop, wakeups
isolated), or, for tests that cut every connection to it, its own database;
either is dropped afterwards. When the server is unreachable the test is
skipped, unless SAYIIR_REQUIRE_POSTGRES=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

CONNECT_TIMEOUT = 5.0


def server_dsn() -> str:
    """The DSN of the PostgreSQL server tests run against; its database is where we administer from."""
    return os.environ.get("SAYIIR_TEST_POSTGRES_DSN", DEFAULT_DSN)


def postgres_required() -> bool:
    return os.environ.get("SAYIIR_REQUIRE_POSTGRES") == "1"


def database_url(name: str) -> str:
    """The server DSN pointed at another database."""
    parts = urlsplit(server_dsn())
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def schema_url(schema: str) -> str:
    """The server DSN with the backend's schema option."""
    parts = urlsplit(server_dsn())
    query = urlencode([*parse_qsl(parts.query), ("schema", schema)])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def unique_name() -> str:
    return f"sayiir_test_{uuid.uuid4().hex[:16]}"


@asynccontextmanager
async def admin_connection() -> AsyncIterator[Any]:
    """A connection to the server DSN's own database; skips (or fails, when required) if unreachable."""
    try:
        connection = await asyncpg.connect(server_dsn(), timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        message = f"PostgreSQL unreachable at {server_dsn()}: {error}"
        if postgres_required():
            pytest.fail(f"{message} (SAYIIR_REQUIRE_POSTGRES=1)")
        pytest.skip(message)
    try:
        yield connection
    finally:
        await connection.close()


@asynccontextmanager
async def temporary_database_url() -> AsyncIterator[str]:
    """Create a uniquely named empty schema, yield the backend URL that uses it, drop it afterwards."""
    name = unique_name()
    async with admin_connection() as admin:
        await admin.execute(f"CREATE SCHEMA {name}")
        try:
            yield schema_url(name)
        finally:
            await admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@asynccontextmanager
async def temporary_database() -> AsyncIterator[str]:
    """Create a uniquely named empty database, yield its URL, drop it (and its connections) afterwards."""
    name = unique_name()
    async with admin_connection() as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield database_url(name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
