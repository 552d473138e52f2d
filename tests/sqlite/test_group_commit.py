"""Group commit: writes queued together share one transaction, yet each keeps its own outcome.

The database thread is held busy by a slow first job so that the writes under test
queue up behind it, deterministically, then run as one group.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sayiir_client.errors import BackendUnavailableError, CannotPauseError, NotFoundError
from sayiir_server.backends.sqlite.database_thread import DatabaseThread
from sayiir_server.backends.sqlite.schema import open_database
from sayiir_server.backends.sqlite.storage import SqliteStorage
from sayiir_server.model import CANCEL
from tests.contract.builders import at_task, signal_request


class CountingStorage(SqliteStorage):
    """Counts the group transactions the thread opens."""

    groups = 0

    @contextmanager
    def group(self) -> Iterator[None]:
        self.groups += 1
        with super().group():
            yield


class Harness:
    def __init__(self, database: DatabaseThread, storage: CountingStorage) -> None:
        self.database = database
        self.storage = storage
        self.release = threading.Event()

    async def hold_then(self, *writes: Callable[[SqliteStorage], Any]) -> list[Any]:
        """Block the thread, queue the writes behind the block, release it; each write's result or error."""
        blocker = asyncio.ensure_future(self.database.run(lambda _: self.release.wait(10), groupable=False))
        queued = [asyncio.ensure_future(self.database.run(write, groupable=True)) for write in writes]
        await asyncio.sleep(0)
        self.release.set()
        await blocker
        return list(await asyncio.gather(*queued, return_exceptions=True))


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    opened: list[CountingStorage] = []

    def open_storage() -> CountingStorage:
        opened.append(CountingStorage(open_database(str(tmp_path / "sayiir.db"))))
        return opened[0]

    database = await DatabaseThread.start(open_storage, "test", lambda _: None)
    yield Harness(database, opened[0])
    await database.stop()


def stored_ids(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "sayiir.db") as reader:
        ids = [row[0] for row in reader.execute("SELECT instance_id FROM snapshots ORDER BY instance_id")]
    reader.close()
    return ids


async def test_writes_queued_together_share_one_commit(harness: Harness, tmp_path: Path) -> None:
    writes = [lambda storage, n=n: storage.save_snapshot(at_task(f"order-{n:02d}")) for n in range(50)]

    outcomes = await harness.hold_then(*writes)

    assert outcomes == [None] * 50
    assert harness.storage.groups == 1
    assert stored_ids(tmp_path) == [f"order-{n:02d}" for n in range(50)]


async def test_a_failing_write_in_a_group_fails_alone_and_leaves_no_trace(harness: Harness, tmp_path: Path) -> None:
    cancel = signal_request()
    outcomes = await harness.hold_then(
        lambda storage: storage.save_snapshot(at_task("order-1")),
        lambda storage: storage.unpause("order-1"),
        lambda storage: storage.store_signal("order-1", CANCEL, cancel),
        lambda storage: storage.store_signal("missing", CANCEL, signal_request()),
        lambda storage: storage.save_snapshot(at_task("order-2")),
    )

    assert outcomes[0] is None
    assert isinstance(outcomes[1], CannotPauseError)
    assert outcomes[2] is None
    assert isinstance(outcomes[3], NotFoundError)
    assert outcomes[4] is None
    assert harness.storage.groups == 1
    assert stored_ids(tmp_path) == ["order-1", "order-2"]
    pending = await harness.database.run(lambda storage: storage.get_signal("order-1", CANCEL), groupable=False)
    assert pending == cancel


def broken_disk(storage: SqliteStorage) -> None:
    raise sqlite3.OperationalError("disk I/O error")


async def test_a_storage_failure_in_a_group_fails_every_write_of_the_group(harness: Harness, tmp_path: Path) -> None:
    outcomes = await harness.hold_then(
        lambda storage: storage.save_snapshot(at_task("order-1")),
        broken_disk,
        lambda storage: storage.save_snapshot(at_task("order-2")),
    )

    assert all(isinstance(outcome, BackendUnavailableError) for outcome in outcomes), outcomes
    assert stored_ids(tmp_path) == []


async def test_a_read_queued_between_writes_sees_the_writes_before_it(harness: Harness) -> None:
    blocker = asyncio.ensure_future(harness.database.run(lambda _: harness.release.wait(10), groupable=False))
    write = asyncio.ensure_future(harness.database.run(lambda s: s.save_snapshot(at_task("order-1")), groupable=True))
    read = asyncio.ensure_future(harness.database.run(lambda s: s.list_snapshots(), groupable=False))
    await asyncio.sleep(0)
    harness.release.set()
    await asyncio.gather(blocker, write)

    assert await read == ["order-1"]
