"""One SQLite connection's transactions, on the backend's one database thread.

Each composite is one transaction. Writes use BEGIN IMMEDIATE, so a composite
holds the write lock from its first read to its commit. Writes queued together
may share one transaction (group(), one savepoint each) to pay one fsync for
all. Wakeup hints of committed writes are collected in `committed_hints` for
the event loop to deliver.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.sqlite.transaction import SqliteTransaction
from sayiir_server.domain.port import Composite

_T = TypeVar("_T")


def run_to_completion(awaitable: Awaitable[_T]) -> _T:
    """Drive a composite that never suspends (every step is a synchronous SQLite call) to its result."""
    steps = awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as finished:
        result: _T = finished.value
        return result
    steps.close()
    raise RuntimeError("a SQLite composite awaited something other than its transaction")


class SqliteStorage:
    """Transactions over one connection; not thread-safe: one thread calls it."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._grouped = False
        self._pending_hints: list[pb.TaskWakeupHint] = []
        self.committed_hints: list[pb.TaskWakeupHint] = []

    def close(self) -> None:
        self._db.close()

    def ping(self) -> None:
        self._db.execute("SELECT 1").fetchone()

    def run(self, composite: Composite[_T], *, write: bool) -> _T:
        """Run one composite as its own transaction (a savepoint inside a group commit)."""
        transaction = SqliteTransaction(self._db)
        with self._transaction(write):
            result = run_to_completion(composite(transaction))
        if write:
            self._hints_committed(transaction.hints)
        return result

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[None]:
        if self._grouped:
            with self._savepoint():
                yield
            return
        with self._committing("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED"):
            yield

    @contextmanager
    def group(self) -> Iterator[None]:
        """Group commit: the composites run inside share one IMMEDIATE transaction and one COMMIT (one fsync).

        Each keeps its own savepoint, so a failing one rolls back alone; they run one after another on
        this thread, so the outcome is the one of running them one by one.
        """
        pending = self._pending_hints = []
        with self._committing("BEGIN IMMEDIATE"):
            self._grouped = True
            try:
                yield
            finally:
                self._grouped = False
        self.committed_hints.extend(pending)

    def _hints_committed(self, hints: list[pb.TaskWakeupHint]) -> None:
        """A composite's hints: committed now, or with the group's COMMIT."""
        if self._grouped:
            self._pending_hints.extend(hints)
        else:
            self.committed_hints.extend(hints)

    @contextmanager
    def _committing(self, begin: str) -> Iterator[None]:
        self._db.execute(begin)
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        self._db.execute("SAVEPOINT operation")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO operation")
            self._db.execute("RELEASE operation")
            raise
        self._db.execute("RELEASE operation")

    def execute(self, statement: str, params: Any = ()) -> sqlite3.Cursor:
        """A raw statement, for tests that inspect or damage the database."""
        return self._db.execute(statement, params)
