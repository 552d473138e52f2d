"""Bulk seeding of a backend, run inside the server process on the very backend object it serves.

Seeding 100,000 instances through gRPC, or one durable transaction per save, would take minutes. The
Backend protocol has no bulk import, so for SQLite and PostgreSQL this module drives each backend's
own private write path (the same row, index columns and wakeup hint as a normal save) many rows per
transaction. When those internals are not there (renamed, another backend) it falls back to plain
`save_snapshot` calls and says so. The memory backend is seeded through `save_snapshot`: it has no
transactions to batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from benchmarks.workload import completed_snapshot, scaling_snapshot
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.model import utc_now
from sayiir_server.store import Backend

ROWS_PER_TRANSACTION = 2_000
CONCURRENT_SAVES = 64
"""Plain saves in flight at once on the fallback path: enough to keep a connection pool busy."""

SEED_KINDS = ("in_progress", "completed")

BulkWriter = Callable[[Sequence[pb.WorkflowSnapshot]], Awaitable[None]]


def _builder(kind: str) -> Callable[[int], pb.WorkflowSnapshot]:
    now = utc_now()
    if kind == "in_progress":
        return lambda index: scaling_snapshot(index, now)
    if kind == "completed":
        return lambda index: completed_snapshot(f"done-{index:07d}")
    raise ValueError(f"unknown seed kind {kind!r}; known: {', '.join(SEED_KINDS)}")


def _sqlite_writer(backend: Any) -> BulkWriter | None:
    storage: Any = getattr(backend, "_storage", None)
    if not (hasattr(backend, "_run") and hasattr(storage, "_transaction") and hasattr(storage, "_write")):
        return None

    async def write(snapshots: Sequence[pb.WorkflowSnapshot]) -> None:
        def transaction() -> None:
            with storage._transaction(write=True):
                for snapshot in snapshots:
                    storage._write(None, snapshot)

        await backend._run(transaction)

    return write


def _postgres_writer(backend: Any) -> BulkWriter | None:
    if not (hasattr(backend, "_in_transaction") and hasattr(backend, "_write_args")):
        return None
    try:
        from sayiir_server.backends.postgres.queries import SAVE_SNAPSHOT
    except ImportError:
        return None

    async def write(snapshots: Sequence[pb.WorkflowSnapshot]) -> None:
        rows = [backend._write_args(snapshot) for snapshot in snapshots]

        async def transaction(connection: Any) -> None:
            await connection.executemany(SAVE_SNAPSHOT, rows)

        await backend._in_transaction(transaction)

    return write


def _bulk_writer(backend: Backend) -> BulkWriter | None:
    module = type(backend).__module__
    if module.startswith("sayiir_server.backends.sqlite"):
        return _sqlite_writer(backend)
    if module.startswith("sayiir_server.backends.postgres"):
        return _postgres_writer(backend)
    return None


async def seed(backend: Backend, kind: str, start: int, count: int) -> str:
    """Save instances number start … start+count−1 of `kind` ("in_progress": ready tasks; "completed").

    Returns how they were written, for the report.
    """
    build = _builder(kind)
    bulk = _bulk_writer(backend)
    if bulk is not None:
        for first in range(start, start + count, ROWS_PER_TRANSACTION):
            last = min(first + ROWS_PER_TRANSACTION, start + count)
            await bulk([build(index) for index in range(first, last)])
        return f"{ROWS_PER_TRANSACTION:,} rows per transaction"
    for first in range(start, start + count, CONCURRENT_SAVES):
        last = min(first + CONCURRENT_SAVES, start + count)
        await asyncio.gather(*(backend.save_snapshot(build(index)) for index in range(first, last)))
    return "save_snapshot per instance"
