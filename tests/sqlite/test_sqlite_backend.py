"""What only the SQLite backend has to prove: URLs, error conversion, the database thread, closing."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sayiir_client.errors import BackendUnavailableError, NotFoundError, SerializationError
from sayiir_server.backends import open_backend
from sayiir_server.backends.sqlite import BackendOpenError, schema
from sayiir_server.backends.sqlite.schema import SqliteUrl, parse_url
from sayiir_server.domain.engine import Engine
from tests.contract.builders import at_task


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[Engine]:
    opened = await open_backend(f"sqlite:///{tmp_path}/sayiir.db")
    yield opened
    await opened.close()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///sayiir.db", "sayiir.db"),
        ("sqlite:///data/sayiir.db", "data/sayiir.db"),
        ("sqlite:////var/lib/sayiir/sayiir.db", "/var/lib/sayiir/sayiir.db"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_url_names_a_relative_or_absolute_file(url: str, path: str) -> None:
    assert parse_url(url) == SqliteUrl(path, synchronous="full")


def test_url_may_trade_power_loss_durability_for_speed() -> None:
    assert parse_url("sqlite:///sayiir.db?synchronous=normal") == SqliteUrl("sayiir.db", synchronous="normal")


@pytest.mark.parametrize("url", ["sqlite:///sayiir.db?synchronous=off", "sqlite:///sayiir.db?cache=shared"])
async def test_url_options_other_than_full_or_normal_synchronous_are_refused(url: str) -> None:
    with pytest.raises(BackendOpenError, match=re.escape("the only option is synchronous=full|normal")):
        await open_backend(url)


async def test_relative_url_opens_a_file_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()

    opened = await open_backend("sqlite:///data/sayiir.db")
    await opened.save_snapshot(at_task("order-1"))
    await opened.close()

    assert (tmp_path / "data" / "sayiir.db").is_file()


async def test_description_is_the_url(backend: Engine, tmp_path: Path) -> None:
    assert backend.description == f"sqlite:///{tmp_path}/sayiir.db"


async def test_healthy_backend_passes_the_health_check(backend: Engine) -> None:
    await backend.check_health()


async def test_corrupt_stored_snapshot_is_a_stored_serialization_error(backend: Engine, tmp_path: Path) -> None:
    await backend.save_snapshot(at_task("order-1"))
    with sqlite3.connect(tmp_path / "sayiir.db") as vandal:
        vandal.execute("UPDATE snapshots SET snapshot = x'ffffffff' WHERE instance_id = 'order-1'")
    vandal.close()

    with pytest.raises(SerializationError) as raised:
        await backend.load_snapshot("order-1")

    assert raised.value.stored is True


async def test_locked_database_is_backend_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 50)
    opened = await open_backend(f"sqlite:///{tmp_path}/sayiir.db")
    holder = sqlite3.connect(tmp_path / "sayiir.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BackendUnavailableError, match="locked"):
            await opened.save_snapshot(at_task("order-1"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await opened.close()


async def test_event_loop_keeps_running_while_sqlite_waits_for_a_lock(tmp_path: Path) -> None:
    opened = await open_backend(f"sqlite:///{tmp_path}/sayiir.db")
    holder = sqlite3.connect(tmp_path / "sayiir.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    ticks = 0
    try:
        save = asyncio.ensure_future(opened.save_snapshot(at_task("order-1")))
        while ticks < 20:  # the save is stuck on the lock, on the database thread
            await asyncio.sleep(0.005)
            ticks += 1
        assert not save.done()
        holder.execute("COMMIT")
        await save
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        await opened.close()

    assert ticks == 20


async def test_closed_backend_is_unavailable(tmp_path: Path) -> None:
    opened = await open_backend(f"sqlite:///{tmp_path}/sayiir.db")
    await opened.close()

    with pytest.raises(BackendUnavailableError, match="closed"):
        await opened.load_snapshot("order-1")
    with pytest.raises(BackendUnavailableError):
        await opened.check_health()


async def test_close_twice_is_harmless(tmp_path: Path) -> None:
    opened = await open_backend(f"sqlite:///{tmp_path}/sayiir.db")
    await opened.close()
    await opened.close()


async def test_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sayiir.db"
    kept = at_task("order-1", priority=2, tags=["gpu"])
    first = await open_backend(url)
    await first.save_snapshot(kept)
    await first.save_snapshot(at_task("order-2"))
    await first.delete_snapshot("order-2")
    await first.close()

    second = await open_backend(url)
    try:
        assert await second.load_snapshot("order-1") == kept
        assert await second.list_snapshots() == ["order-1"]
        with pytest.raises(NotFoundError):
            await second.load_snapshot("order-2")
    finally:
        await second.close()
