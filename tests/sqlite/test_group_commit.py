"""Group commit: writes queued together share one transaction, yet each keeps its own outcome.

The database thread is held busy by a slow first job so that the writes under test
queue up behind it, deterministically, then run as one group.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sayiir_client.errors import BackendUnavailableError, CannotPauseError, NotFoundError
from sayiir_server.api.wakeups import WakeupHub
from sayiir_server.backends.sqlite.backend import SqliteStore
from sayiir_server.backends.sqlite.database_thread import DatabaseThread
from sayiir_server.backends.sqlite.schema import open_database
from sayiir_server.backends.sqlite.storage import SqliteStorage
from sayiir_server.domain.engine import Engine
from sayiir_server.domain.model import CANCEL
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
        self.engine = Engine(SqliteStore("sqlite:///test", database), WakeupHub())
        self.release = threading.Event()

    async def hold_then(self, *calls: Awaitable[Any]) -> list[Any]:
        """Block the thread, queue the calls' writes behind the block, release it; each call's result or error."""
        blocker = asyncio.ensure_future(self.database.run(lambda _: self.release.wait(10), groupable=False))
        queued = [asyncio.ensure_future(call) for call in calls]
        await asyncio.sleep(0)  # every call runs up to its queued write
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
    outcomes = await harness.hold_then(*(harness.engine.save_snapshot(at_task(f"order-{n:02d}")) for n in range(50)))

    assert outcomes == [None] * 50
    assert harness.storage.groups == 1
    assert stored_ids(tmp_path) == [f"order-{n:02d}" for n in range(50)]


async def test_a_failing_write_in_a_group_fails_alone_and_leaves_no_trace(harness: Harness, tmp_path: Path) -> None:
    cancel = signal_request()
    engine = harness.engine
    outcomes = await harness.hold_then(
        engine.save_snapshot(at_task("order-1")),
        engine.unpause("order-1"),
        engine.store_signal("order-1", CANCEL, cancel),
        engine.store_signal("missing", CANCEL, signal_request()),
        engine.save_snapshot(at_task("order-2")),
    )

    assert outcomes[0] is None
    assert isinstance(outcomes[1], CannotPauseError)
    assert outcomes[2] is None
    assert isinstance(outcomes[3], NotFoundError)
    assert outcomes[4] is None
    assert harness.storage.groups == 1
    assert stored_ids(tmp_path) == ["order-1", "order-2"]
    # Nobody held order-1: the stored cancel applied at once (SIG-9.1), in the same group.
    assert (await engine.load_snapshot("order-1")).WhichOneof("state") == "cancelled"
    assert await engine.get_signal("order-1", CANCEL) is None


async def broken_disk(transaction: object) -> None:
    raise sqlite3.OperationalError("disk I/O error")


async def test_a_storage_failure_in_a_group_fails_every_write_of_the_group(harness: Harness, tmp_path: Path) -> None:
    outcomes = await harness.hold_then(
        harness.engine.save_snapshot(at_task("order-1")),
        harness.engine.storage.write(broken_disk),
        harness.engine.save_snapshot(at_task("order-2")),
    )

    assert all(isinstance(outcome, BackendUnavailableError) for outcome in outcomes), outcomes
    assert stored_ids(tmp_path) == []


async def test_a_read_queued_between_writes_sees_the_writes_before_it(harness: Harness) -> None:
    saved, listed = await harness.hold_then(
        harness.engine.save_snapshot(at_task("order-1")), harness.engine.list_snapshots_page(None, 10)
    )

    assert saved is None
    assert listed == ["order-1"]
