"""SqliteBackend: the durable embedded default, one database file per server process.

All SQLite I/O happens on one dedicated thread that owns the one connection,
so the event loop never blocks on the disk and writes are serialized. The
storage operations (storage.py) run there as single transactions; this class
hands them over, converts driver errors in one place, and publishes the wakeup
hints of committed writes on the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TypeVar

from sayiir_client.errors import BackendError, BackendUnavailableError
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.sqlite.schema import database_path, open_database
from sayiir_server.backends.sqlite.storage import SqliteStorage
from sayiir_server.model import ControlSignal, SignalKind, utc_now
from sayiir_server.store import Backend
from sayiir_server.wakeups import WakeupHub

_T = TypeVar("_T")


class SqliteBackend(Backend):
    """Every storage trait over a SQLite file (WAL, synchronous=FULL); `wakeups` is the hub its writes publish to."""

    def __init__(self, url: str, executor: ThreadPoolExecutor, storage: SqliteStorage) -> None:
        """Use `SqliteBackend.open(url)`: it opens and migrates the database on the executor's thread."""
        self._url = url
        self._executor = executor
        self._storage = storage
        self._closed = False
        self.wakeups = WakeupHub()

    @classmethod
    async def open(cls, url: str, clock: Callable[[], datetime] = utc_now) -> SqliteBackend:
        """Open `sqlite:///relative.db` or `sqlite:////absolute.db`, applying pending migrations.

        Raises BackendOpenError (one-line message) when the file is not usable.
        `clock` supplies "now" (UTC); tests may pass a fake one.
        """
        path = database_path(url)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sayiir-sqlite")
        try:
            connection = await asyncio.get_running_loop().run_in_executor(executor, open_database, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(url, executor, SqliteStorage(connection, clock))

    async def _run(self, operation: Callable[[], _T]) -> _T:
        """Run one storage operation on the database thread, then publish the hints its commit produced.

        The one place driver errors become BackendError: sqlite3 errors (locked, I/O, closed) are
        BackendUnavailableError; a corrupt stored value is already SerializationError(stored=True).
        """
        if self._closed:
            raise BackendUnavailableError(f"SQLite backend {self._url} is closed")
        storage = self._storage

        def job() -> tuple[_T, list[pb.TaskWakeupHint]]:
            try:
                return operation(), _drain(storage)
            except BackendError:
                _drain(storage)
                raise
            except sqlite3.Error as error:
                _drain(storage)
                raise BackendUnavailableError(f"SQLite {self._url}: {error}") from error

        try:
            result, hints = await asyncio.get_running_loop().run_in_executor(self._executor, job)
        except RuntimeError as error:  # the executor was shut down by close()
            raise BackendUnavailableError(f"SQLite backend {self._url} is closed") from error
        for hint in hints:
            self.wakeups.publish(hint)
        return result

    # -- SnapshotStore (SPEC §3) -------------------------------------------------------------------

    async def save_snapshot(self, snapshot: pb.WorkflowSnapshot) -> None:
        await self._run(lambda: self._storage.save_snapshot(snapshot))

    async def save_task_result(self, instance_id: str, task_id: bytes, output: bytes) -> None:
        await self._run(lambda: self._storage.save_task_result(instance_id, task_id, output))

    async def load_snapshot(self, instance_id: str) -> pb.WorkflowSnapshot:
        return await self._run(lambda: self._storage.load_snapshot(instance_id))

    async def delete_snapshot(self, instance_id: str) -> None:
        await self._run(lambda: self._storage.delete_snapshot(instance_id))

    async def list_snapshots(self) -> list[str]:
        return await self._run(self._storage.list_snapshots)

    async def list_snapshots_page(self, after: str | None, limit: int) -> list[str]:
        return await self._run(lambda: self._storage.list_snapshots_page(after, max(limit, 0)))

    async def insert_snapshot_if_absent(self, snapshot: pb.WorkflowSnapshot) -> bool:
        return await self._run(lambda: self._storage.insert_snapshot_if_absent(snapshot))

    # -- SignalStore (SPEC §4) ---------------------------------------------------------------------

    async def store_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        await self._run(lambda: self._storage.store_signal(instance_id, kind, request))

    async def get_signal(self, instance_id: str, kind: SignalKind) -> pb.SignalRequest | None:
        return await self._run(lambda: self._storage.get_signal(instance_id, kind))

    async def clear_signal(self, instance_id: str, kind: SignalKind) -> None:
        await self._run(lambda: self._storage.clear_signal(instance_id, kind))

    async def send_event(self, instance_id: str, signal_name: str, payload: bytes) -> None:
        await self._run(lambda: self._storage.send_event(instance_id, signal_name, payload))

    async def consume_event(self, instance_id: str, signal_name: str) -> bytes | None:
        return await self._run(lambda: self._storage.consume_event(instance_id, signal_name))

    async def check_and_cancel(self, instance_id: str, interrupted_at_task: bytes | None = None) -> bool:
        return await self._run(lambda: self._storage.check_and_cancel(instance_id, interrupted_at_task))

    async def check_and_pause(self, instance_id: str) -> bool:
        return await self._run(lambda: self._storage.check_and_pause(instance_id))

    async def check_control_signals(
        self, instance_id: str, interrupted_at_task: bytes | None = None
    ) -> ControlSignal | None:
        return await self._run(lambda: self._storage.check_control_signals(instance_id, interrupted_at_task))

    async def unpause(self, instance_id: str) -> pb.WorkflowSnapshot:
        return await self._run(lambda: self._storage.unpause(instance_id))

    # -- TaskClaimStore (SPEC §5) ------------------------------------------------------------------

    async def claim_task(
        self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta | None
    ) -> pb.TaskClaim | None:
        return await self._run(lambda: self._storage.claim_task(instance_id, task_id, worker_id, ttl))

    async def release_task_claim(self, instance_id: str, task_id: bytes, worker_id: str) -> None:
        await self._run(lambda: self._storage.release_task_claim(instance_id, task_id, worker_id))

    async def extend_task_claim(self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta) -> None:
        await self._run(lambda: self._storage.extend_task_claim(instance_id, task_id, worker_id, ttl))

    async def find_available_tasks(
        self, worker_id: str, limit: int, aging_interval: timedelta, worker_tags: Sequence[str]
    ) -> list[pb.AvailableTask]:
        tags = list(worker_tags)
        return await self._run(lambda: self._storage.find_available_tasks(worker_id, limit, aging_interval, tags))

    async def wait_for_wakeup(self, timeout: timedelta, worker_tags: Sequence[str] = ()) -> pb.TaskWakeupHint | None:
        return await self.wakeups.wait_for_wakeup(timeout, worker_tags)

    def watch_wakeups(self, worker_tags: Sequence[str] = ()) -> AsyncIterator[pb.TaskWakeupHint]:
        return self.wakeups.watch(worker_tags)

    async def find_hinted_task(self, hint: pb.TaskWakeupHint) -> pb.AvailableTask | None:
        return await self._run(lambda: self._storage.find_hinted_task(hint))

    async def save_snapshot_fenced(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        return await self._run(lambda: self._storage.save_snapshot_fenced(snapshot, task_id, worker_id))

    # -- TaskResultStore (SPEC §6) -----------------------------------------------------------------

    async def load_task_result(self, instance_id: str, task_id: bytes) -> bytes | None:
        return await self._run(lambda: self._storage.load_task_result(instance_id, task_id))

    # -- lifecycle ---------------------------------------------------------------------------------

    async def check_health(self) -> None:
        await self._run(self._storage.ping)

    async def close(self) -> None:
        """Close the connection (checkpointing the WAL) and stop the database thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._storage.close)
        finally:
            self._executor.shutdown(wait=True)

    @property
    def description(self) -> str:
        return self._url


def _drain(storage: SqliteStorage) -> list[pb.TaskWakeupHint]:
    hints = storage.committed_hints
    storage.committed_hints = []
    return hints
