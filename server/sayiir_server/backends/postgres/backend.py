"""The PostgreSQL store: one database shared by many server replicas.

Correctness across replicas comes from the database alone: single statements
where one suffices (claims, saves, fenced saves, event pops), row locks for
the engine's read-modify-write composites, SKIP LOCKED where a find advances
delays and signals, LISTEN/NOTIFY for wakeups. What rows mean is the engine's
to decide; the SQL only selects and writes rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from sayiir_client.errors import BackendError, BackendUnavailableError, SerializationError
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.postgres import queries
from sayiir_server.backends.postgres.listener import WakeupListener
from sayiir_server.backends.postgres.migrations import migrate
from sayiir_server.backends.postgres.options import PostgresOptions, parse_postgres_url
from sayiir_server.backends.postgres.pools import Connection, Pools
from sayiir_server.backends.postgres.rows import (
    EARLIEST as _EARLIEST,
)
from sayiir_server.backends.postgres.rows import (
    hint_payload,
    micros_datetime,
    notify_channel,
    retained_results,
    snapshot_row,
)
from sayiir_server.backends.stored import decode_signal_request, decode_snapshot
from sayiir_server.domain import dispatch, listing
from sayiir_server.domain.listing import ListCursor, ListedRow, WorkflowFilter
from sayiir_server.domain.model import SignalKind, timestamp, to_datetime
from sayiir_server.domain.port import (
    Candidate,
    ClaimAnswer,
    Completion,
    Composite,
    DueWork,
    Lock,
    ReadyQuery,
    WakeupSink,
    Write,
)

_T = TypeVar("_T")

_ATTEMPTS = 3
"""A transaction PostgreSQL aborted as a deadlock or serialization victim is run again, this many times in all."""


class OwnBackends:
    """The server processes (pids) of this store's pooled connections.

    A write's hint goes to this replica's hub straight after the commit, so the NOTIFY of that same write is
    not delivered again when it comes back on the LISTEN connection: one database round trip less between a
    task becoming ready and a worker on the same replica hearing of it. A pid is forgotten when its connection
    closes, before PostgreSQL can give it to another replica's backend."""

    def __init__(self) -> None:
        self._pids: set[int] = set()

    async def track(self, connection: Connection) -> None:
        pid = connection.get_server_pid()
        self._pids.add(pid)
        connection.add_termination_listener(lambda _connection: self._pids.discard(pid))

    def __contains__(self, pid: object) -> bool:
        return pid in self._pids


_RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)

_DRIVER_ERRORS = (
    asyncpg.exceptions.PostgresError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)

_LOCKS = {None: queries.LOAD_SNAPSHOT, Lock.UPDATE: queries.LOCK_SNAPSHOT}


class PostgresStore:
    """The storage port over PostgreSQL; `listener` feeds the hints of every replica's writes to `deliver`."""

    def __init__(
        self,
        pools: Pools,
        dsn: str,
        description: str,
        options: PostgresOptions,
        deliver: WakeupSink,
        own_backends: OwnBackends,
    ) -> None:
        """Use `open`: it creates the pools, migrates the schema and starts listening."""
        self._pools = pools
        self._deliver = deliver
        self._dsn = dsn
        self._description = description
        self._options = options
        self.channel = notify_channel(options.schema)
        self.listener = WakeupListener(
            self._connect_listener,
            self.channel,
            deliver,
            self._load_hint,
            options.command_timeout,
            skip_from=own_backends.__contains__,
        )

    @classmethod
    async def open(cls, url: str, deliver: WakeupSink) -> PostgresStore:
        """Connect, apply missing migrations, start LISTENing; BackendUnavailableError when unreachable."""
        parsed = parse_postgres_url(url)
        options = parsed.options
        own_backends = OwnBackends()
        try:
            pools = await Pools.open(parsed.dsn, options, own_backends.track)
        except _DRIVER_ERRORS as error:
            raise BackendUnavailableError(f"cannot connect to {parsed.description}: {error}") from error
        store = cls(pools, parsed.dsn, parsed.description, options, deliver, own_backends)
        try:
            await store.run(lambda connection: migrate(connection, options.schema))
            await store.run(fill_definition_hashes)
            store.listener.start()
            await store.listener.wait_listening(options.connect_timeout)
        except BaseException:
            await store.close()
            raise
        return store

    # -- the one door to the database ------------------------------------------------------------

    async def run(self, operation: Callable[[Connection], Awaitable[_T]], *, keyed: bool = False) -> _T:
        """Run `operation` on a pooled connection (of the keyed pool: one statement by key, see pools.py),
        turning every driver failure into a BackendError."""
        pool = self._pools.keyed if keyed else self._pools.searching
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with pool.acquire(timeout=self._options.acquire_timeout) as connection:
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

    async def write(self, composite: Composite[_T], *, single_statement: bool = False) -> _T:
        announced: list[pb.TaskWakeupHint] = []

        def attempt(connection: Connection) -> PostgresTransaction:
            announced.clear()  # what an aborted attempt announced was never committed
            return PostgresTransaction(connection, self.channel, announced)

        async def transaction(connection: Connection) -> _T:
            async with connection.transaction():
                return await composite(attempt(connection))

        if single_statement:  # one statement is atomic by itself: no BEGIN and COMMIT round trips
            result = await self.run(lambda connection: composite(attempt(connection)), keyed=True)
        else:
            result = await self.run(transaction)
        for hint in announced:
            self._deliver(hint)
        return result

    async def read(self, composite: Composite[_T]) -> _T:
        return await self.run(lambda connection: composite(PostgresTransaction(connection, self.channel)))

    async def _connect_listener(self) -> Connection:
        return await asyncpg.connect(
            self._dsn, timeout=self._options.connect_timeout, command_timeout=self._options.command_timeout
        )

    async def _load_hint(self, instance_id: str) -> pb.TaskWakeupHint | None:
        """The hint of a task announced by instance id only (it was too large for a NOTIFY payload)."""
        blob = await self.run(lambda connection: connection.fetchval(queries.LOAD_SNAPSHOT, instance_id))
        return None if blob is None else dispatch.ready_hint(decode_snapshot(blob))

    async def check_health(self) -> None:
        """BackendUnavailableError unless a pooled connection answers a trivial query."""
        await self.run(lambda connection: connection.fetchval(queries.PING))

    async def close(self) -> None:
        await self.listener.close()
        await self._pools.close(self._options.command_timeout, _DRIVER_ERRORS)

    def pool_stats(self) -> Mapping[str, float]:
        """Both pools' use, for the metrics endpoint (metrics.POOL_STATS_HOOK): read from any thread, no I/O."""
        return self._pools.stats()

    @property
    def description(self) -> str:
        return self._description


BACKFILL_BATCH = 1000


async def fill_definition_hashes(connection: Connection) -> int:
    """Give rows written before migration 0002 their definition_hash column, a batch per statement."""
    filled = 0
    while rows := await connection.fetch(queries.WITHOUT_DEFINITION, BACKFILL_BATCH):
        ids = [row["instance_id"] for row in rows]
        hashes = [decode_snapshot(row["snapshot"]).definition_hash for row in rows]
        await connection.execute(queries.SET_DEFINITIONS, ids, hashes)
        filled += len(rows)
    return filled


class PostgresTransaction:
    """The port's row operations on one connection (inside a transaction for writes)."""

    def __init__(self, connection: Connection, channel: str, announced: list[pb.TaskWakeupHint] | None = None) -> None:
        self._db = connection
        self._channel = channel
        self._announced = announced if announced is not None else []
        """The hints of this transaction's writes that announced a task (OwnBackends: delivered after commit)."""

    async def _write(self, statement: str, write: Write, *extra: object, fresh: bool = False) -> bool:
        """Run a snapshot write statement; True when it wrote, noting its hint when it announced one."""
        args = self._write_args(write)
        # A new row keeps nothing of a row it replaces, and replaces none: no retain or refused states.
        rows = await self._db.fetch(statement, *(args[:-2] if fresh else args), *extra)
        if rows and rows[0]["announced"] and write.hint is not None:
            self._announced.append(write.hint)
        return bool(rows)

    def _write_args(self, write: Write) -> tuple[object, ...]:
        snapshot = write.snapshot
        row = snapshot_row(snapshot).values()
        refused = sorted(write.refused_over)
        return (*row, hint_payload(write.hint, snapshot.instance_id), self._channel, write.retain, refused)

    # -- snapshots -------------------------------------------------------------------------------

    async def load(self, instance_id: str, lock: Lock | None = None) -> pb.WorkflowSnapshot | None:
        blob = await self._db.fetchval(_LOCKS[lock], instance_id)
        return None if blob is None else decode_snapshot(blob)

    async def load_retained(self, instance_id: str) -> list[pb.TaskResult]:
        row = await self._db.fetchrow(queries.LOAD_TASK_RESULT_SOURCES, instance_id)
        return [] if row is None else retained_results(row["retained_from"])

    async def put(self, write: Write) -> bool:
        return await self._write(queries.SAVE_SNAPSHOT, write)

    async def insert(self, write: Write) -> bool:
        return await self._write(queries.INSERT_SNAPSHOT_IF_ABSENT, write, fresh=True)

    async def put_if_claimed(self, write: Write, task_id: bytes, worker_id: str, now: datetime) -> bool:
        return await self._write(queries.SAVE_SNAPSHOT_FENCED, write, task_id, worker_id, now)

    async def put_and_release_each(self, completions: Sequence[Completion], now: datetime) -> list[bool]:
        # In instance id order: two batches meeting on rows lock them in the same order, never in a cycle.
        ordered = sorted(completions, key=lambda completion: completion.instance_id)
        args = [(*self._write_args(c.write), c.task_id, c.worker_id, now) for c in ordered]
        rows = await self._db.fetchmany(queries.SAVE_SNAPSHOT_AND_RELEASE, args)
        saved = {row["instance_id"]: row["announced"] for row in rows}
        for completion in ordered:
            if saved.get(completion.instance_id) and completion.write.hint is not None:
                self._announced.append(completion.write.hint)
        return [completion.instance_id in saved for completion in completions]

    async def delete(self, instance_id: str) -> bool:
        return await self._db.fetchval(queries.DELETE_SNAPSHOT, instance_id) is not None

    async def list_ids(self, after: str | None, limit: int) -> list[str]:
        return [row["instance_id"] for row in await self._db.fetch(queries.LIST_SNAPSHOTS_PAGE, after, limit)]

    async def secret(self, name: str, candidate: bytes) -> bytes:
        await self._db.execute(queries.PUT_SECRET_IF_ABSENT, name, candidate)
        value: bytes = await self._db.fetchval(queries.GET_SECRET, name)
        return value

    async def list_workflows(self, wanted: WorkflowFilter, after: ListCursor | None, limit: int) -> list[ListedRow]:
        if not wanted.newest_first:
            statement = queries.LIST_WORKFLOWS_BY_ID
        elif wanted.states:
            statement = queries.LIST_WORKFLOWS_BY_STATES_NEWEST_FIRST
        else:
            statement = queries.LIST_WORKFLOWS_NEWEST_FIRST
        args = (
            list(wanted.states),
            wanted.definition_hash,
            wanted.tag,
            wanted.prefix,
            wanted.updated_after,
            wanted.updated_before,
            micros_datetime(after.updated_us) if after is not None and wanted.newest_first else None,
            after.instance_id if after is not None else None,
            limit,
        )
        rows = await self._db.fetch(statement, *args)
        snapshots = [decode_snapshot(row["snapshot"]) for row in rows]
        signal_rows = await self._db.fetch(queries.SIGNALS_AMONG, [snapshot.instance_id for snapshot in snapshots])
        pending = listing.signals_by_instance(
            [(row["instance_id"], row["kind"], decode_signal_request(row["request"])) for row in signal_rows]
        )
        listed = []
        for snapshot, row in zip(snapshots, rows, strict=True):
            claim = _claim(snapshot, row) if row["worker_id"] is not None else None
            listed.append(ListedRow(snapshot, pending.get(snapshot.instance_id, {}), claim))
        return listed

    # -- signals and events ----------------------------------------------------------------------

    async def signals(self, instance_id: str) -> dict[SignalKind, pb.SignalRequest]:
        rows = await self._db.fetch(queries.GET_SIGNALS, instance_id)
        return {row["kind"]: decode_signal_request(row["request"]) for row in rows}

    async def has_signal(self, instance_id: str, kinds: Sequence[SignalKind]) -> bool:
        return bool(await self._db.fetchval(queries.HAS_SIGNAL, instance_id, list(kinds)))

    async def put_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        await self._db.execute(queries.STORE_SIGNAL, instance_id, kind, request.SerializeToString())

    async def delete_signal(self, instance_id: str, kind: SignalKind) -> None:
        await self._db.execute(queries.CLEAR_SIGNAL, instance_id, kind)

    async def append_event(self, instance_id: str, signal_name: str, payload: bytes) -> None:
        await self._db.execute(queries.SEND_EVENT, instance_id, signal_name, payload)

    async def pop_event(self, instance_id: str, signal_name: str) -> bytes | None:
        payload: bytes | None = await self._db.fetchval(queries.CONSUME_EVENT, instance_id, signal_name)
        return payload

    # -- claims ----------------------------------------------------------------------------------

    async def claim(self, claim: pb.TaskClaim, now: datetime) -> bool:
        expires_at = to_datetime(claim.expires_at) if claim.HasField("expires_at") else None
        args = (claim.instance_id, claim.task_id, claim.worker_id, now, expires_at)
        return await self._db.fetchval(queries.CLAIM_TASK, *args) is not None

    async def claim_unsignalled(self, claims: Sequence[pb.TaskClaim], now: datetime) -> set[tuple[str, bytes]]:
        columns = (
            [claim.instance_id for claim in claims],
            [claim.task_id for claim in claims],
            [claim.worker_id for claim in claims],
            [now] * len(claims),
            [to_datetime(claim.expires_at) if claim.HasField("expires_at") else None for claim in claims],
        )
        rows = await self._db.fetch(queries.CLAIM_UNSIGNALLED, *columns)
        return {(row["instance_id"], row["task_id"]) for row in rows}

    async def release(self, instance_id: str, task_id: bytes, worker_id: str) -> ClaimAnswer:
        row = await self._db.fetchrow(queries.RELEASE_TASK_CLAIM, instance_id, task_id, worker_id)
        return ClaimAnswer(bool(row["done"]), row["holder"])

    async def extend(self, instance_id: str, task_id: bytes, worker_id: str, expires_at: datetime) -> ClaimAnswer:
        row = await self._db.fetchrow(queries.EXTEND_TASK_CLAIM, instance_id, task_id, worker_id, expires_at)
        return ClaimAnswer(bool(row["done"]), row["holder"])

    async def claims_of(self, instance_id: str) -> list[pb.TaskClaim]:
        claims = []
        for row in await self._db.fetch(queries.CLAIMS_OF, instance_id):
            claim = pb.TaskClaim(
                instance_id=instance_id,
                task_id=row["task_id"],
                worker_id=row["worker_id"],
                claimed_at=timestamp(row["claimed_at"]),
            )
            if row["expires_at"] is not None:
                claim.expires_at.CopyFrom(timestamp(row["expires_at"]))
            claims.append(claim)
        return claims

    async def delete_claims(self, instance_id: str) -> None:
        await self._db.execute(queries.DELETE_CLAIMS_OF, instance_id)

    async def delete_expired_claims(self, now: datetime) -> set[str]:
        return {row["instance_id"] for row in await self._db.fetch(queries.DELETE_EXPIRED_CLAIMS, now)}

    # -- dispatch --------------------------------------------------------------------------------

    async def due_work(self, now: datetime, limit: int) -> DueWork:
        row = await self._db.fetchrow(queries.DUE_WORK, now, limit)
        return DueWork(bool(row["expired_claims"]), list(row["instance_ids"]))

    async def earliest_wake(self) -> datetime | None:
        wake_at: datetime | None = await self._db.fetchval(queries.EARLIEST_WAKE)
        return wake_at

    async def lock_due(self, instance_ids: Sequence[str]) -> list[Candidate]:
        locked = await self._db.fetch(queries.LOCK_DUE, list(instance_ids))
        if not locked:
            return []
        held = await self._signalled_among([row["instance_id"] for row in locked])
        return [Candidate(decode_snapshot(row["snapshot"]), row["instance_id"] in held, None) for row in locked]

    async def ready_pages(self, query: ReadyQuery) -> dict[int, list[Candidate]]:
        first = query.priority is None
        args = (
            query.worker_id,
            query.page_size,
            query.now,
            list(query.worker_tags),
            query.failed_by is not None,
            query.priority,
            _EARLIEST if first else micros_datetime(query.after.updated_us),
            "" if first else query.after.instance_id,
            list(query.definition_hashes),
        )
        pages: dict[int, list[Candidate]] = {}
        statement = queries.READY_PAGES_LOCKING if query.lock else queries.READY_PAGES
        for row in await self._db.fetch(statement, *args):
            pages.setdefault(row["priority"], []).append(_candidate(row))
        return pages

    async def _signalled_among(self, instance_ids: Sequence[str]) -> set[str]:
        rows = await self._db.fetch(queries.SIGNALLED_AMONG, list(instance_ids))
        return {row["instance_id"] for row in rows}

    async def hinted(self, instance_id: str, task_id: bytes) -> Candidate | None:
        row = await self._db.fetchrow(queries.HINTED_ROW, instance_id, task_id)
        return None if row is None else _candidate(row)


def _claim(snapshot: pb.WorkflowSnapshot, row: Any) -> pb.TaskClaim:
    """The claim columns of a row joined on the snapshot's current task."""
    claim = pb.TaskClaim(
        instance_id=snapshot.instance_id,
        task_id=snapshot.in_progress.position.at_task.task_id,
        worker_id=row["worker_id"],
        claimed_at=timestamp(row["claimed_at"]),
    )
    if row["expires_at"] is not None:
        claim.expires_at.CopyFrom(timestamp(row["expires_at"]))
    return claim


def _candidate(row: Any) -> Candidate:
    snapshot = decode_snapshot(row["snapshot"])
    claim = _claim(snapshot, row) if row["worker_id"] is not None else None
    return Candidate(snapshot, bool(row["signalled"]), claim)
