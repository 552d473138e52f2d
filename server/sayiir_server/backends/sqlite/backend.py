"""The SQLite store: the durable embedded default, one database file per server process.

All SQLite I/O happens on one dedicated thread that owns the one connection
(database_thread.py), so the event loop never blocks on the disk and writes
are serialized. Each composite runs there whole, as one transaction; writes
queued together share a group commit.
"""

from __future__ import annotations

from typing import TypeVar

from sayiir_server.backends.sqlite.database_thread import DatabaseThread
from sayiir_server.backends.sqlite.schema import open_database, parse_url
from sayiir_server.backends.sqlite.storage import SqliteStorage
from sayiir_server.domain.port import Composite, WakeupSink

_T = TypeVar("_T")


class SqliteStore:
    """The storage port over a SQLite file (WAL, synchronous=FULL by default)."""

    def __init__(self, url: str, database: DatabaseThread) -> None:
        """Use `SqliteStore.open(url, deliver)`: it opens and migrates the database on its own thread."""
        self._url = url
        self._database = database

    @classmethod
    async def open(cls, url: str, deliver: WakeupSink) -> SqliteStore:
        """Open `sqlite:///relative.db` or `sqlite:////absolute.db` (`?synchronous=normal` optional), migrating it.

        Raises BackendOpenError (one-line message) when the file is not usable. Hints of committed
        writes go to `deliver`, on the event loop that opened the store.
        """
        target = parse_url(url)

        def open_storage() -> SqliteStorage:
            return SqliteStorage(open_database(target.path, target.synchronous))

        database = await DatabaseThread.start(open_storage, url, deliver)
        return cls(url, database)

    async def write(self, composite: Composite[_T], *, single_statement: bool = False) -> _T:
        """A write that may share its commit (and fsync) with other writes queued at the same time."""
        return await self._database.run(lambda storage: storage.run(composite, write=True), groupable=True)

    async def read(self, composite: Composite[_T]) -> _T:
        return await self._database.run(lambda storage: storage.run(composite, write=False), groupable=False)

    async def check_health(self) -> None:
        await self._database.run(lambda storage: storage.ping(), groupable=False)

    async def close(self) -> None:
        """Run what is queued, close the connection (checkpointing the WAL), end the thread; idempotent."""
        await self._database.stop()

    @property
    def description(self) -> str:
        return self._url
