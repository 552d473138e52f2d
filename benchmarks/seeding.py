"""Bulk seeding of a backend, run inside the server process on the very backend object it serves.

Seeding 100,000 instances through gRPC would take minutes, so every store is seeded through the
engine's public bulk write, `Engine.save_snapshots`: the same rows, index columns and wakeup
hints as single saves, many snapshots per transaction.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.workload import completed_snapshot, ready_snapshot, scaling_snapshot
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.engine import Engine
from sayiir_server.domain.model import utc_now

ROWS_PER_TRANSACTION = 2_000

SEED_KINDS = ("in_progress", "completed", "worker_path")

WORKER_PATH_INPUT = b"x" * 2048
"""The 2 KB input of the single-task workflows the worker-path rows complete."""


def _builder(kind: str) -> Callable[[int], pb.WorkflowSnapshot]:
    now = utc_now()
    if kind == "in_progress":
        return lambda index: scaling_snapshot(index, now)
    if kind == "completed":
        return lambda index: completed_snapshot(f"done-{index:07d}")
    if kind == "worker_path":
        return lambda index: ready_snapshot(f"wp-{index:07d}", initial_input=WORKER_PATH_INPUT)
    raise ValueError(f"unknown seed kind {kind!r}; known: {', '.join(SEED_KINDS)}")


async def seed(backend: Engine, kind: str, start: int, count: int) -> str:
    """Save instances number start … start+count−1 of `kind` ("in_progress": ready tasks; "completed").

    Returns how they were written, for the report.
    """
    build = _builder(kind)
    for first in range(start, start + count, ROWS_PER_TRANSACTION):
        last = min(first + ROWS_PER_TRANSACTION, start + count)
        await backend.save_snapshots([build(index) for index in range(first, last)])
    return f"{ROWS_PER_TRANSACTION:,} snapshots per transaction (Engine.save_snapshots)"
