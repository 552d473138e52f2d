"""SqliteBackend: the durable embedded default, one database file per server process.

All SQLite I/O happens on one dedicated thread that owns the one connection
(database_thread.py), so the event loop never blocks on the disk and writes
are serialized. The storage operations (storage.py) run there as single
transactions; this class only says which are writes (those may share a group
commit) and which are reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.sqlite.database_thread import DatabaseThread
from sayiir_server.backends.sqlite.schema import open_database, parse_url
from sayiir_server.backends.sqlite.storage import SqliteStorage
from sayiir_server.model import ControlSignal, SignalKind, utc_now
from sayiir_server.store import Backend
from sayiir_server.wakeups import WakeupHub

_T = TypeVar("_T")


class SqliteBackend(Backend):
    """Every storage trait over a SQLite file (WAL, synchronous=FULL); `wakeups` is the hub its writes publish to."""

    def __init__(self, url: str, database: DatabaseThread, wakeups: WakeupHub) -> None:
        """Use `SqliteBackend.open(url)`: it opens and migrates the database on its own thread."""
        self._url = url
        self._database = database
        self.wakeups = wakeups

    @classmethod
    async def open(cls, url: str, clock: Callable[[], datetime] = utc_now) -> SqliteBackend:
        """Open `sqlite:///relative.db` or `sqlite:////absolute.db` (`?synchronous=normal` optional), migrating it.

        Raises BackendOpenError (one-line message) when the file is not usable.
        `clock` supplies "now" (UTC); tests may pass a fake one.
        """
        target = parse_url(url)
        wakeups = WakeupHub()

        def open_storage() -> SqliteStorage:
            return SqliteStorage(open_database(target.path, target.synchronous), clock)

        database = await DatabaseThread.start(open_storage, url, wakeups.publish)
        return cls(url, database, wakeups)

    async def _read(self, operation: Callable[[SqliteStorage], _T]) -> _T:
        return await self._database.run(operation, groupable=False)

    async def _write(self, operation: Callable[[SqliteStorage], _T]) -> _T:
        """A write that may share its commit (and fsync) with other writes queued at the same time."""
        return await self._database.run(operation, groupable=True)

    # -- SnapshotStore (SPEC §3) -------------------------------------------------------------------

    async def save_snapshot(self, snapshot: pb.WorkflowSnapshot) -> None:
        await self._write(lambda storage: storage.save_snapshot(snapshot))

    async def save_task_result(self, instance_id: str, task_id: bytes, output: bytes) -> None:
        await self._write(lambda storage: storage.save_task_result(instance_id, task_id, output))

    async def load_snapshot(self, instance_id: str) -> pb.WorkflowSnapshot:
        return await self._read(lambda storage: storage.load_snapshot(instance_id))

    async def delete_snapshot(self, instance_id: str) -> None:
        await self._write(lambda storage: storage.delete_snapshot(instance_id))

    async def list_snapshots(self) -> list[str]:
        return await self._read(lambda storage: storage.list_snapshots())

    async def list_snapshots_page(self, after: str | None, limit: int) -> list[str]:
        return await self._read(lambda storage: storage.list_snapshots_page(after, max(limit, 0)))

    async def insert_snapshot_if_absent(self, snapshot: pb.WorkflowSnapshot) -> bool:
        return await self._write(lambda storage: storage.insert_snapshot_if_absent(snapshot))

    # -- SignalStore (SPEC §4) ---------------------------------------------------------------------

    async def store_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        await self._write(lambda storage: storage.store_signal(instance_id, kind, request))

    async def get_signal(self, instance_id: str, kind: SignalKind) -> pb.SignalRequest | None:
        return await self._read(lambda storage: storage.get_signal(instance_id, kind))

    async def clear_signal(self, instance_id: str, kind: SignalKind) -> None:
        await self._write(lambda storage: storage.clear_signal(instance_id, kind))

    async def send_event(self, instance_id: str, signal_name: str, payload: bytes) -> None:
        await self._write(lambda storage: storage.send_event(instance_id, signal_name, payload))

    async def consume_event(self, instance_id: str, signal_name: str) -> bytes | None:
        return await self._write(lambda storage: storage.consume_event(instance_id, signal_name))

    async def check_and_cancel(self, instance_id: str, interrupted_at_task: bytes | None = None) -> bool:
        return await self._write(lambda storage: storage.check_and_cancel(instance_id, interrupted_at_task))

    async def check_and_pause(self, instance_id: str) -> bool:
        return await self._write(lambda storage: storage.check_and_pause(instance_id))

    async def check_control_signals(
        self, instance_id: str, interrupted_at_task: bytes | None = None
    ) -> ControlSignal | None:
        return await self._write(lambda storage: storage.check_control_signals(instance_id, interrupted_at_task))

    async def unpause(self, instance_id: str) -> pb.WorkflowSnapshot:
        return await self._write(lambda storage: storage.unpause(instance_id))

    # -- TaskClaimStore (SPEC §5) ------------------------------------------------------------------

    async def claim_task(
        self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta | None
    ) -> pb.TaskClaim | None:
        return await self._write(lambda storage: storage.claim_task(instance_id, task_id, worker_id, ttl))

    async def release_task_claim(self, instance_id: str, task_id: bytes, worker_id: str) -> None:
        await self._write(lambda storage: storage.release_task_claim(instance_id, task_id, worker_id))

    async def extend_task_claim(self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta) -> None:
        await self._write(lambda storage: storage.extend_task_claim(instance_id, task_id, worker_id, ttl))

    async def find_available_tasks(
        self, worker_id: str, limit: int, aging_interval: timedelta, worker_tags: Sequence[str]
    ) -> list[pb.AvailableTask]:
        tags = list(worker_tags)
        return await self._read(lambda storage: storage.find_available_tasks(worker_id, limit, aging_interval, tags))

    async def wait_for_wakeup(self, timeout: timedelta, worker_tags: Sequence[str] = ()) -> pb.TaskWakeupHint | None:
        return await self.wakeups.wait_for_wakeup(timeout, worker_tags)

    def watch_wakeups(self, worker_tags: Sequence[str] = ()) -> AsyncIterator[pb.TaskWakeupHint]:
        return self.wakeups.watch(worker_tags)

    async def find_hinted_task(self, hint: pb.TaskWakeupHint) -> pb.AvailableTask | None:
        return await self._read(lambda storage: storage.find_hinted_task(hint))

    async def save_snapshot_fenced(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        return await self._write(lambda storage: storage.save_snapshot_fenced(snapshot, task_id, worker_id))

    # -- TaskResultStore (SPEC §6) -----------------------------------------------------------------

    async def load_task_result(self, instance_id: str, task_id: bytes) -> bytes | None:
        return await self._read(lambda storage: storage.load_task_result(instance_id, task_id))

    # -- lifecycle ---------------------------------------------------------------------------------

    async def check_health(self) -> None:
        await self._read(lambda storage: storage.ping())

    async def close(self) -> None:
        """Run what is queued, close the connection (checkpointing the WAL), end the thread; idempotent."""
        await self._database.stop()

    @property
    def description(self) -> str:
        return self._url
