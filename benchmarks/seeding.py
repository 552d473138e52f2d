"""Bulk seeding of a backend, run inside the server process on the very backend object it serves.

Seeding 100,000 instances through gRPC would take minutes. Memory and SQLite are seeded with plain
`save_snapshot` calls, many in flight (SQLite's group commit then shares one fsync among them). On
PostgreSQL each save is its own transaction, several times slower, and the Backend protocol has no
bulk import, so this module drives that backend's private write path (the same row, index columns
and wakeup notification as a normal save) with many rows per transaction; when those internals are
not there it falls back to plain saves and says so in the report.
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
CONCURRENT_SAVES = 256
"""Plain saves in flight at once: enough for full group commits and a busy connection pool."""

SEED_KINDS = ("in_progress", "completed")

BulkWriter = Callable[[Sequence[pb.WorkflowSnapshot]], Awaitable[None]]


def _builder(kind: str) -> Callable[[int], pb.WorkflowSnapshot]:
    now = utc_now()
    if kind == "in_progress":
        return lambda index: scaling_snapshot(index, now)
    if kind == "completed":
        return lambda index: completed_snapshot(f"done-{index:07d}")
    raise ValueError(f"unknown seed kind {kind!r}; known: {', '.join(SEED_KINDS)}")


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
    if type(backend).__module__.startswith("sayiir_server.backends.postgres"):
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
