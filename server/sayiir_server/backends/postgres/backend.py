"""PostgresBackend: every storage trait over one PostgreSQL database, shared by many server replicas.

Correctness across replicas comes from the database alone: single statements
where one suffices (claims, saves, fenced saves, event pops), row locks for the
read-modify-write composites, SKIP LOCKED where find_available_tasks advances
delays and signals, LISTEN/NOTIFY for wakeups. What rows mean is decided by
the shared pure rules (snapshots, signals, dispatch); SQL only selects rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from sayiir_client.errors import (
    BackendError,
    BackendUnavailableError,
    ClaimLostError,
    NotFoundError,
    SerializationError,
)
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server import dispatch
from sayiir_server.backends.postgres import queries
from sayiir_server.backends.postgres.listener import WakeupListener
from sayiir_server.backends.postgres.migrations import migrate
from sayiir_server.backends.postgres.options import PostgresOptions, parse_postgres_url
from sayiir_server.backends.postgres.rows import (
    hint_payload,
    notify_channel,
    retained_results,
    snapshot_row,
)
from sayiir_server.backends.stored import decode_signal_request, decode_snapshot
from sayiir_server.model import (
    CANCEL,
    PAUSE,
    ControlSignal,
    SignalKind,
    clamp_aging_interval,
    state_of,
    timestamp,
    utc_now,
)
from sayiir_server.signals import SignalAdmission, admit_signal, apply_cancel, apply_pause, apply_unpause
from sayiir_server.snapshots import lookup_task_result, record_task_result
from sayiir_server.store import Backend
from sayiir_server.wakeups import WakeupHub

_T = TypeVar("_T")

Connection = Any
"""An asyncpg connection (asyncpg ships no type information)."""

ADVANCE_BATCH = 256
"""Most due delays and signals one find_available_tasks call advances; the rest wait for the next call."""

_ATTEMPTS = 3
"""A transaction PostgreSQL aborted as a deadlock or serialization victim is retried this many times in all."""

_RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)

_DRIVER_ERRORS = (
    asyncpg.exceptions.PostgresError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


def _not_found(instance_id: str) -> NotFoundError:
    return NotFoundError(f"workflow instance {instance_id!r} not found")


def _claim_error(instance_id: str, task_id: bytes, holder: str | None) -> BackendError:
    if holder is None:
        return NotFoundError(f"no claim on task {task_id.hex()} of workflow instance {instance_id!r}")
    return ClaimLostError(f"task {task_id.hex()} of workflow instance {instance_id!r} is claimed by worker {holder!r}")


PLAN_CACHE_MODE = "force_custom_plan"
"""plan_cache_mode of every pooled connection: plan each statement for its actual parameters and table.

asyncpg prepares every statement once per connection, and PostgreSQL switches a prepared statement to a
generic plan after five executions when that looks no worse; dispatch queries prepared while the table
was small then keep a plan that is ~100× slower once it has grown (find_available_tasks: 265–346 ms at
100,000 InProgress instances instead of 2.7 ms). Planning these statements costs far less than one such
mistake, and a per-statement setting would take a SET LOCAL round trip per call."""


def _server_settings(options: PostgresOptions) -> dict[str, str]:
    settings = {"plan_cache_mode": PLAN_CACHE_MODE}
    if options.schema is not None:
        settings["search_path"] = options.schema
    return settings


def _copy(snapshot: pb.WorkflowSnapshot) -> pb.WorkflowSnapshot:
    duplicate = pb.WorkflowSnapshot()
    duplicate.CopyFrom(snapshot)
    return duplicate


class PostgresBackend(Backend):
    """The storage traits over PostgreSQL; `wakeups` is the hub this replica's LISTEN connection feeds."""

    def __init__(
        self, pool: Any, dsn: str, description: str, options: PostgresOptions, clock: Callable[[], datetime]
    ) -> None:
        """Use `open`: it creates the pool, migrates the schema and starts listening."""
        self._pool = pool
        self._dsn = dsn
        self._description = description
        self._options = options
        self._clock = clock
        self._channel = notify_channel(options.schema)
        self.wakeups = WakeupHub()
        self.listener = WakeupListener(
            self._connect_listener, self._channel, self.wakeups, self._load_hint, options.command_timeout
        )

    @classmethod
    async def open(cls, url: str, clock: Callable[[], datetime] = utc_now) -> PostgresBackend:
        """Connect, apply missing migrations, start LISTENing; BackendUnavailableError when unreachable."""
        parsed = parse_postgres_url(url)
        options = parsed.options
        try:
            pool = await asyncpg.create_pool(
                parsed.dsn,
                min_size=options.pool_min,
                max_size=options.pool_max,
                max_inactive_connection_lifetime=options.idle_timeout,
                timeout=options.connect_timeout,
                command_timeout=options.command_timeout,
                server_settings=_server_settings(options),
            )
        except _DRIVER_ERRORS as error:
            raise BackendUnavailableError(f"cannot connect to {parsed.description}: {error}") from error
        backend = cls(pool, parsed.dsn, parsed.description, options, clock)
        try:
            await backend._run(lambda connection: migrate(connection, options.schema))
            backend.listener.start()
            await backend.listener.wait_listening(options.connect_timeout)
        except BaseException:
            await backend.close()
            raise
        return backend

    # -- the one door to the database ------------------------------------------------------------

    async def _run(self, operation: Callable[[Connection], Awaitable[_T]]) -> _T:
        """Run `operation` on a pooled connection, turning every driver failure into a BackendError."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._pool.acquire(timeout=self._options.acquire_timeout) as connection:
                    return await operation(connection)
            except BackendError:
                raise
            except _RETRYABLE as error:
                if attempt == _ATTEMPTS:
                    raise BackendUnavailableError(f"PostgreSQL kept aborting the transaction: {error}") from error
            except asyncpg.exceptions.DataError as error:
                raise SerializationError(f"PostgreSQL cannot store the value: {error}", stored=False) from error
            except _DRIVER_ERRORS as error:
                raise BackendUnavailableError(
                    f"PostgreSQL unavailable ({self._description}): {type(error).__name__}: {error}"
                ) from error
        raise AssertionError("unreachable")

    async def _in_transaction(self, operation: Callable[[Connection], Awaitable[_T]]) -> _T:
        async def transaction(connection: Connection) -> _T:
            async with connection.transaction():
                return await operation(connection)

        return await self._run(transaction)

    async def _connect_listener(self) -> Connection:
        return await asyncpg.connect(
            self._dsn, timeout=self._options.connect_timeout, command_timeout=self._options.command_timeout
        )

    # -- the one write path of snapshots ---------------------------------------------------------

    def _write_args(self, snapshot: pb.WorkflowSnapshot) -> tuple[object, ...]:
        return (*snapshot_row(snapshot).values(), hint_payload(snapshot), self._channel)

    async def _write(self, connection: Connection, snapshot: pb.WorkflowSnapshot) -> None:
        await connection.fetch(queries.SAVE_SNAPSHOT, *self._write_args(snapshot))

    @staticmethod
    async def _locked(connection: Connection, instance_id: str) -> pb.WorkflowSnapshot | None:
        blob = await connection.fetchval(queries.LOCK_SNAPSHOT, instance_id)
        return None if blob is None else decode_snapshot(blob)

    # -- SnapshotStore (SPEC §3) -------------------------------------------------------------------

    async def save_snapshot(self, snapshot: pb.WorkflowSnapshot) -> None:
        args = self._write_args(snapshot)
        await self._run(lambda connection: connection.fetch(queries.SAVE_SNAPSHOT, *args))

    async def save_task_result(self, instance_id: str, task_id: bytes, output: bytes) -> None:
        async def record(connection: Connection) -> None:
            current = await self._locked(connection, instance_id)
            if current is None:
                raise _not_found(instance_id)
            if record_task_result(current, task_id, output, self._clock()):
                await self._write(connection, current)

        await self._in_transaction(record)

    async def load_snapshot(self, instance_id: str) -> pb.WorkflowSnapshot:
        blob = await self._run(lambda connection: connection.fetchval(queries.LOAD_SNAPSHOT, instance_id))
        if blob is None:
            raise _not_found(instance_id)
        return decode_snapshot(blob)

    async def delete_snapshot(self, instance_id: str) -> None:
        deleted = await self._run(lambda connection: connection.fetchval(queries.DELETE_SNAPSHOT, instance_id))
        if deleted is None:
            raise _not_found(instance_id)

    async def list_snapshots(self) -> list[str]:
        rows = await self._run(lambda connection: connection.fetch(queries.LIST_SNAPSHOTS))
        return [row["instance_id"] for row in rows]

    async def list_snapshots_page(self, after: str | None, limit: int) -> list[str]:
        if limit <= 0:
            return []
        rows = await self._run(lambda connection: connection.fetch(queries.LIST_SNAPSHOTS_PAGE, after, limit))
        return [row["instance_id"] for row in rows]

    async def insert_snapshot_if_absent(self, snapshot: pb.WorkflowSnapshot) -> bool:
        args = self._write_args(snapshot)
        rows = await self._run(lambda connection: connection.fetch(queries.INSERT_SNAPSHOT_IF_ABSENT, *args))
        return bool(rows)

    # -- SignalStore (SPEC §4) ---------------------------------------------------------------------

    async def store_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        blob = request.SerializeToString()

        async def store(connection: Connection) -> None:
            current = await connection.fetchval(queries.SHARE_SNAPSHOT, instance_id)
            if current is None:
                raise _not_found(instance_id)
            if admit_signal(decode_snapshot(current), kind) is SignalAdmission.STORE:
                await connection.execute(queries.STORE_SIGNAL, instance_id, kind, blob)

        await self._in_transaction(store)

    async def get_signal(self, instance_id: str, kind: SignalKind) -> pb.SignalRequest | None:
        blob = await self._run(lambda connection: connection.fetchval(queries.GET_SIGNAL, instance_id, kind))
        return None if blob is None else decode_signal_request(blob)

    async def clear_signal(self, instance_id: str, kind: SignalKind) -> None:
        await self._run(lambda connection: connection.execute(queries.CLEAR_SIGNAL, instance_id, kind))

    async def send_event(self, instance_id: str, signal_name: str, payload: bytes) -> None:
        await self._run(lambda connection: connection.execute(queries.SEND_EVENT, instance_id, signal_name, payload))

    async def consume_event(self, instance_id: str, signal_name: str) -> bytes | None:
        payload: bytes | None = await self._run(
            lambda connection: connection.fetchval(queries.CONSUME_EVENT, instance_id, signal_name)
        )
        return payload

    async def check_and_cancel(self, instance_id: str, interrupted_at_task: bytes | None = None) -> bool:
        return await self._apply_control_signal(instance_id, (CANCEL,), interrupted_at_task) is not None

    async def check_and_pause(self, instance_id: str) -> bool:
        return await self._apply_control_signal(instance_id, (PAUSE,), None) is not None

    async def check_control_signals(
        self, instance_id: str, interrupted_at_task: bytes | None = None
    ) -> ControlSignal | None:
        return await self._apply_control_signal(instance_id, (CANCEL, PAUSE), interrupted_at_task)

    async def _apply_control_signal(
        self, instance_id: str, kinds: tuple[SignalKind, ...], interrupted_at_task: bytes | None
    ) -> ControlSignal | None:
        """Apply the first pending request among `kinds` (cancel before pause) to an InProgress instance."""
        # Nothing pending (the common case of a worker's guard) needs no transaction and no lock.
        pending = await self._run(lambda connection: connection.fetchval(queries.HAS_SIGNAL, instance_id, kinds))
        if not pending:
            return None

        async def apply(connection: Connection) -> ControlSignal | None:
            # The snapshot is locked first, as store_signal does, so the two cannot deadlock.
            current = await self._locked(connection, instance_id)
            requests = {row["kind"]: row["request"] for row in await connection.fetch(queries.GET_SIGNALS, instance_id)}
            kind = next((kind for kind in kinds if kind in requests), None)
            if current is None or kind is None or state_of(current) != "in_progress":
                return None
            request = decode_signal_request(requests[kind])
            if kind == CANCEL:
                apply_cancel(current, request, interrupted_at_task, self._clock())
            else:
                apply_pause(current, request, self._clock())
            await self._write(connection, current)
            await connection.execute(queries.CLEAR_SIGNAL, instance_id, kind)
            return enums.CONTROL_SIGNAL_CANCELLED if kind == CANCEL else enums.CONTROL_SIGNAL_PAUSED

        return await self._in_transaction(apply)

    async def unpause(self, instance_id: str) -> pb.WorkflowSnapshot:
        async def resume(connection: Connection) -> pb.WorkflowSnapshot:
            current = await self._locked(connection, instance_id)
            if current is None:
                raise _not_found(instance_id)
            apply_unpause(current, self._clock())
            await self._write(connection, current)
            return current

        return await self._in_transaction(resume)

    # -- TaskClaimStore (SPEC §5) ------------------------------------------------------------------

    async def claim_task(
        self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta | None
    ) -> pb.TaskClaim | None:
        now = self._clock()
        expires_at = None if ttl is None else now + ttl
        claimed = await self._run(
            lambda connection: connection.fetchval(queries.CLAIM_TASK, instance_id, task_id, worker_id, now, expires_at)
        )
        if claimed is None:
            return None
        claim = pb.TaskClaim(instance_id=instance_id, task_id=task_id, worker_id=worker_id, claimed_at=timestamp(now))
        if expires_at is not None:
            claim.expires_at.CopyFrom(timestamp(expires_at))
        return claim

    async def release_task_claim(self, instance_id: str, task_id: bytes, worker_id: str) -> None:
        row = await self._run(
            lambda connection: connection.fetchrow(queries.RELEASE_TASK_CLAIM, instance_id, task_id, worker_id)
        )
        if not row["done"]:
            raise _claim_error(instance_id, task_id, row["holder"])

    async def extend_task_claim(self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta) -> None:
        expires_at = self._clock() + ttl
        row = await self._run(
            lambda connection: connection.fetchrow(
                queries.EXTEND_TASK_CLAIM, instance_id, task_id, worker_id, expires_at
            )
        )
        if not row["done"]:
            raise _claim_error(instance_id, task_id, row["holder"])

    async def find_available_tasks(
        self, worker_id: str, limit: int, aging_interval: timedelta, worker_tags: Sequence[str]
    ) -> list[pb.AvailableTask]:
        now = self._clock()
        await self._advance_due(now)
        if limit <= 0:
            return []
        interval = clamp_aging_interval(aging_interval)
        tags = list(worker_tags)
        rows = await self._run(
            lambda connection: connection.fetch(
                queries.FIND_CANDIDATES, worker_id, limit, interval.total_seconds(), now, tags
            )
        )
        tasks = []
        for row in rows:
            task = dispatch.available_task(decode_snapshot(row["snapshot"]), worker_tags, now)
            if task is not None:
                tasks.append(task)
        return dispatch.order_and_limit(tasks, worker_id, interval, now, limit)

    async def _advance_due(self, now: datetime) -> None:
        """Rules 1 and 2: drop expired claims; move due delays and fed or timed-out signals on."""
        rows = await self._run(lambda connection: connection.fetch(queries.DUE_INSTANCES, now, ADVANCE_BATCH))
        if not rows:
            return
        instance_ids = [row["instance_id"] for row in rows]

        async def advance(connection: Connection) -> None:
            locked = await connection.fetch(queries.LOCK_DUE, instance_ids)
            if not locked:
                return
            # A cancel or pause accepted just before the rows were locked keeps its instance where it is.
            signalled = await connection.fetch(queries.SIGNALLED_AMONG, [row["instance_id"] for row in locked])
            held = {row["instance_id"] for row in signalled}
            for row in locked:
                if row["instance_id"] in held:
                    continue
                advanced = await self._advanced(connection, decode_snapshot(row["snapshot"]), now)
                if advanced is not None:
                    await self._write(connection, advanced)

        await self._in_transaction(advance)

    @staticmethod
    async def _advanced(
        connection: Connection, current: pb.WorkflowSnapshot, now: datetime
    ) -> pb.WorkflowSnapshot | None:
        """The snapshot after rule 2 (consuming the event it takes), or None when nothing released it."""
        if dispatch.is_delay_due(current, now):
            updated = _copy(current)
            dispatch.advance_past_delay(updated, now)
            return updated
        signal_name = dispatch.awaited_signal_name(current)
        if signal_name is None:
            return None
        payload = await connection.fetchval(queries.CONSUME_EVENT, current.instance_id, signal_name)
        if payload is None and dispatch.is_signal_timed_out(current, now):
            payload = b""
        if payload is None:
            return None
        updated = _copy(current)
        dispatch.advance_past_signal(updated, payload, now)
        return updated

    async def wait_for_wakeup(self, timeout: timedelta, worker_tags: Sequence[str] = ()) -> pb.TaskWakeupHint | None:
        return await self.wakeups.wait_for_wakeup(timeout, worker_tags)

    def watch_wakeups(self, worker_tags: Sequence[str] = ()) -> AsyncIterator[pb.TaskWakeupHint]:
        return self.wakeups.watch(worker_tags)

    async def find_hinted_task(self, hint: pb.TaskWakeupHint) -> pb.AvailableTask | None:
        now = self._clock()
        blob = await self._run(
            lambda connection: connection.fetchval(queries.FIND_HINTED_CANDIDATE, hint.instance_id, hint.task_id, now)
        )
        if blob is None:
            return None
        # The hint's own tags fit by construction, so no worker tags narrow the lookup.
        return dispatch.available_task(decode_snapshot(blob), (), now)

    async def save_snapshot_fenced(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        args = (*self._write_args(snapshot), task_id, worker_id, self._clock())
        rows = await self._run(lambda connection: connection.fetch(queries.SAVE_SNAPSHOT_FENCED, *args))
        return bool(rows)

    async def _load_hint(self, instance_id: str) -> pb.TaskWakeupHint | None:
        """The hint of a task announced by instance id only (it was too large for a NOTIFY payload)."""
        try:
            snapshot = await self.load_snapshot(instance_id)
        except NotFoundError:
            return None
        return dispatch.ready_hint(None, snapshot)

    # -- TaskResultStore (SPEC §6) -----------------------------------------------------------------

    async def load_task_result(self, instance_id: str, task_id: bytes) -> bytes | None:
        row = await self._run(lambda connection: connection.fetchrow(queries.LOAD_TASK_RESULT_SOURCES, instance_id))
        if row is None:
            raise _not_found(instance_id)
        snapshot = decode_snapshot(row["snapshot"])
        return lookup_task_result(snapshot, retained_results(row["retained_from"]), task_id)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def check_health(self) -> None:
        """BackendUnavailableError unless a pooled connection answers a trivial query."""
        await self._run(lambda connection: connection.fetchval(queries.PING))

    async def close(self) -> None:
        await self.listener.close()
        try:
            await asyncio.wait_for(self._pool.close(), self._options.command_timeout)
        except (TimeoutError, *_DRIVER_ERRORS):
            self._pool.terminate()

    def pool_stats(self) -> Mapping[str, float]:
        """The pool's use, for the metrics endpoint (metrics.POOL_STATS_HOOK): read from any thread, no I/O.

        size counts open connections, idle those waiting for a call, in_use those serving one; the LISTEN
        connection is not pooled and not counted.
        """
        size, idle = self._pool.get_size(), self._pool.get_idle_size()
        return {
            "size": size,
            "idle": idle,
            # The two counts are read one after the other while the loop's thread may move a connection.
            "in_use": max(size - idle, 0),
            "min_size": self._pool.get_min_size(),
            "max_size": self._pool.get_max_size(),
        }

    @property
    def description(self) -> str:
        return self._description
