"""Versioned migrations: applied once at start, under an advisory lock, recorded in schema_migrations."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from sayiir_server.backends import open_backend
from sayiir_server.backends.postgres.migrations import MIGRATION_LOCK_KEY, migrate, migrations
from sayiir_server.backends.postgres.options import parse_postgres_url
from tests.contract.builders import at_task
from tests.postgres.conftest import OpenReplica

pytestmark = pytest.mark.postgres

REPLICAS = 4


async def _recorded_versions(url: str) -> list[int]:
    parsed = parse_postgres_url(url)
    connection = await asyncpg.connect(parsed.dsn, server_settings={"search_path": parsed.options.schema or "public"})
    try:
        rows = await connection.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await connection.close()
    return [row["version"] for row in rows]


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [migration.version for migration in migrations()]

    assert versions == list(range(1, len(versions) + 1))


async def test_replicas_opening_together_on_a_fresh_database_migrate_it_exactly_once(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    replicas = await asyncio.gather(*(open_replica(postgres_url) for _ in range(REPLICAS)))

    assert await _recorded_versions(postgres_url) == [migration.version for migration in migrations()]
    snapshot = at_task("order-1")
    await replicas[0].save_snapshot(snapshot)
    assert [await replica.load_snapshot("order-1") for replica in replicas] == [snapshot] * REPLICAS


async def test_reopening_a_migrated_database_applies_nothing(postgres_url: str, open_replica: OpenReplica) -> None:
    first = await open_replica(postgres_url)
    snapshot = at_task("order-1")
    await first.save_snapshot(snapshot)
    await first.close()

    reopened = await open_replica(postgres_url)

    assert await reopened.load_snapshot("order-1") == snapshot
    parsed = parse_postgres_url(postgres_url)
    connection = await asyncpg.connect(parsed.dsn, server_settings={"search_path": parsed.options.schema or "public"})
    try:
        assert await migrate(connection, parsed.options.schema) == []
    finally:
        await connection.close()


async def test_a_replica_starting_while_another_migrates_waits_for_the_advisory_lock(postgres_url: str) -> None:
    parsed = parse_postgres_url(postgres_url)
    holder = await asyncpg.connect(parsed.dsn)
    await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        opening = asyncio.ensure_future(open_backend(postgres_url))
        done, _ = await asyncio.wait({opening}, timeout=0.5)
        assert not done, "the replica migrated while another held the migration lock"
    finally:
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        await holder.close()

    backend = await opening
    try:
        assert await _recorded_versions(postgres_url) == [migration.version for migration in migrations()]
    finally:
        await backend.close()
