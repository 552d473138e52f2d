"""The one thread that owns the SQLite connection, running jobs in arrival order, with group commit.

Writes that queue up while the thread is busy (concurrent callers) are committed
together: one transaction, one savepoint per job, one COMMIT. With
synchronous=FULL a commit costs an fsync, so N queued writes pay one instead of
N. Every caller is answered only after the COMMIT that made its write durable.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sayiir_client.errors import BackendUnavailableError
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.sqlite.storage import SqliteStorage

_T = TypeVar("_T")

MAX_GROUP = 256
"""Most writes committed together; bounds how long a read queued behind them waits."""


@dataclass
class _Job(Generic[_T]):
    operation: Callable[[SqliteStorage], _T]
    groupable: bool
    future: asyncio.Future[_T]
    result: Any = None
    error: BaseException | None = None


class _Stop:
    """Queued by stop(): the thread closes its connection and ends."""


Publish = Callable[[pb.TaskWakeupHint], None]


class DatabaseThread:
    """Runs storage operations on its own thread, which opened (and so owns) the connection.

    Serves the event loop that started it: answers and wakeup hints are handed to that loop,
    hints first, once their transaction committed.
    """

    def __init__(self, describe: str, publish: Publish, loop: asyncio.AbstractEventLoop) -> None:
        self._describe = describe
        self._publish = publish
        self._loop = loop
        self._jobs: queue.SimpleQueue[_Job[Any] | _Stop] = queue.SimpleQueue()
        self._stopped = False
        self._thread: threading.Thread | None = None

    @classmethod
    async def start(cls, open_storage: Callable[[], SqliteStorage], describe: str, publish: Publish) -> DatabaseThread:
        """Start the thread and open the storage on it; open_storage's error is raised here."""
        loop = asyncio.get_running_loop()
        database = cls(describe, publish, loop)
        opened: asyncio.Future[None] = loop.create_future()
        database._thread = threading.Thread(
            target=database._serve, args=(open_storage, opened), name="sayiir-sqlite", daemon=True
        )
        database._thread.start()
        await opened
        return database

    async def run(self, operation: Callable[[SqliteStorage], _T], *, groupable: bool) -> _T:
        """Run one operation on the thread; groupable writes may share a commit with other queued writes."""
        if self._stopped:
            raise BackendUnavailableError(f"SQLite backend {self._describe} is closed")
        job: _Job[_T] = _Job(operation, groupable, self._loop.create_future())
        self._jobs.put(job)
        return await job.future

    async def stop(self) -> None:
        """Close the connection once every queued job ran, and end the thread; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._jobs.put(_Stop())
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    # -- on the thread --------------------------------------------------------------------------------------------

    def _serve(self, open_storage: Callable[[], SqliteStorage], opened: asyncio.Future[None]) -> None:
        try:
            storage = open_storage()
        except BaseException as error:
            self._stopped = True
            self._loop.call_soon_threadsafe(_settle_opening, opened, error)
            return
        self._loop.call_soon_threadsafe(_settle_opening, opened, None)
        try:
            self._serve_jobs(storage)
        finally:
            storage.close()

    def _serve_jobs(self, storage: SqliteStorage) -> None:
        waiting: _Job[Any] | _Stop | None = None
        while True:
            job = waiting if waiting is not None else self._jobs.get()
            waiting = None
            if isinstance(job, _Stop):
                return
            group: list[_Job[Any]] = [job]
            while job.groupable and len(group) < MAX_GROUP:
                try:
                    queued = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if isinstance(queued, _Stop) or not queued.groupable:
                    waiting = queued
                    break
                group.append(queued)
            if len(group) == 1:
                self._run_alone(storage, job)
            else:
                self._run_group(storage, group)
            self._answer(group, _drain(storage))

    def _run_alone(self, storage: SqliteStorage, job: _Job[Any]) -> None:
        try:
            job.result = job.operation(storage)
        except BaseException as error:
            job.error = _converted(error, self._describe)

    def _run_group(self, storage: SqliteStorage, group: list[_Job[Any]]) -> None:
        try:
            with storage.group():
                for job in group:
                    try:
                        job.result = job.operation(storage)
                    except sqlite3.Error:
                        raise  # the shared transaction is unusable: every job of the group fails
                    except Exception as error:  # only this job's savepoint rolled back; the others go on
                        job.error = error
        except BaseException as error:
            failure = _converted(error, self._describe)
            for job in group:
                job.error = failure

    def _answer(self, jobs: list[_Job[Any]], hints: list[pb.TaskWakeupHint]) -> None:
        def settle() -> None:
            for hint in hints:
                self._publish(hint)
            for job in jobs:
                if job.future.done():  # the caller gave up (cancelled); what it asked for stands
                    continue
                if job.error is not None:
                    job.future.set_exception(job.error)
                else:
                    job.future.set_result(job.result)

        self._loop.call_soon_threadsafe(settle)


def _settle_opening(opened: asyncio.Future[None], error: BaseException | None) -> None:
    if opened.done():
        return
    if error is not None:
        opened.set_exception(error)
    else:
        opened.set_result(None)


def _converted(error: BaseException, describe: str) -> BaseException:
    """The one place driver errors become BackendError: sqlite3 errors (locked, I/O) are BackendUnavailable."""
    if isinstance(error, sqlite3.Error):
        converted = BackendUnavailableError(f"SQLite {describe}: {error}")
        converted.__cause__ = error
        return converted
    return error


def _drain(storage: SqliteStorage) -> list[pb.TaskWakeupHint]:
    hints = storage.committed_hints
    storage.committed_hints = []
    return hints
