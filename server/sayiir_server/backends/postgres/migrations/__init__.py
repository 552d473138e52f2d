"""Versioned schema migrations, applied at start under an advisory lock.

Each file NNNN_name.sql is one version, applied once in its own transaction and
recorded in schema_migrations. Replicas starting together queue on
pg_advisory_lock: the first applies what is missing, the others then find
nothing left to do. Files are never edited once released; a change is a new file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

MIGRATION_LOCK_KEY = 0x5A7_11F_6E55
"""The pg_advisory_lock key that serializes migrations across replicas ("sayiir persistence")."""

MIGRATION_TIMEOUT = 600.0
"""Seconds one migration statement (or the wait for another replica's migrations) may take: far above the
backend's command_timeout, because a schema change on a large table is slow and must not be cut short."""

_FILE_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")

CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found = []
    for entry in resources.files(__package__).iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is not None:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda migration: migration.version)


async def migrate(connection: Any, schema: str | None = None) -> list[int]:
    """Apply the missing migrations over an asyncpg connection; returns the versions it applied.

    With a schema, the connection's search_path must already name it (the backend sets it on every connection).
    """
    await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY, timeout=MIGRATION_TIMEOUT)
    try:
        if schema is not None:
            await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await connection.execute(CREATE_SCHEMA_MIGRATIONS)
        applied = {row["version"] for row in await connection.fetch("SELECT version FROM schema_migrations")}
        done = []
        for migration in migrations():
            if migration.version in applied:
                continue
            async with connection.transaction():
                await connection.execute(migration.sql, timeout=MIGRATION_TIMEOUT)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
                )
            done.append(migration.version)
        return done
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
