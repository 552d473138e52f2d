"""Versioned schema migrations: applied at start, recorded, idempotent; released ones are never edited."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from sayiir_server.backends import open_backend
from sayiir_server.backends.sqlite import BackendOpenError
from sayiir_server.backends.sqlite.schema import APPLICATION_ID, migrate, migrations, open_database
from sayiir_server.domain.model import utc_now
from tests.contract.builders import at_task


def recorded_migrations(database: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        recorded = list(rows)
    connection.close()
    return recorded


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [migration.version for migration in migrations()]

    assert versions == list(range(1, len(versions) + 1))
    assert versions[0] == 1


async def test_open_applies_and_records_every_migration(tmp_path: Path) -> None:
    before = utc_now()

    await (await open_backend(f"sqlite:///{tmp_path}/sayiir.db")).close()

    recorded = recorded_migrations(tmp_path / "sayiir.db")
    assert [(version, name) for version, name, _ in recorded] == [(m.version, m.name) for m in migrations()]
    assert all(datetime.fromisoformat(applied_at) >= before for _, _, applied_at in recorded)


async def test_opening_twice_applies_nothing_again_and_keeps_the_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sayiir.db"
    first = await open_backend(url)
    await first.save_snapshot(at_task("order-1"))
    await first.close()
    recorded = recorded_migrations(tmp_path / "sayiir.db")

    second = await open_backend(url)
    try:
        assert await second.list_snapshots() == ["order-1"]
    finally:
        await second.close()

    assert recorded_migrations(tmp_path / "sayiir.db") == recorded


def test_migrate_on_an_up_to_date_database_applies_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "sayiir.db")
    connection = open_database(path)
    try:
        assert migrate(connection, path) == []
    finally:
        connection.close()


def test_database_is_stamped_with_the_sayiir_application_id(tmp_path: Path) -> None:
    open_database(str(tmp_path / "sayiir.db")).close()

    with sqlite3.connect(tmp_path / "sayiir.db") as connection:
        assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    connection.close()


def test_an_edited_released_migration_is_refused(tmp_path: Path) -> None:
    open_database(str(tmp_path / "sayiir.db")).close()
    with sqlite3.connect(tmp_path / "sayiir.db") as connection:
        connection.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    connection.close()

    with pytest.raises(BackendOpenError, match="must not be edited"):
        open_database(str(tmp_path / "sayiir.db"))
