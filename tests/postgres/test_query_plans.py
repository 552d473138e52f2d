"""Dispatch never reads the whole snapshots table: its queries go through the partial indexes.

The plans are taken on a table where most instances are finished, as in production,
after ANALYZE, with the parameters a worker sends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.postgres import PostgresBackend, queries
from sayiir_server.backends.postgres.rows import hint_payload, snapshot_row
from sayiir_server.model import utc_now
from tests.contract.builders import at_signal, at_task, completed, seconds_from_now, task_id
from tests.postgres.conftest import OpenReplica

pytestmark = pytest.mark.postgres

FINISHED = 5000
READY = 500
WAITING = 200


def _rows(snapshots: list[pb.WorkflowSnapshot]) -> list[tuple[object, ...]]:
    return [(*snapshot_row(snapshot).values(), hint_payload(snapshot), "unheard") for snapshot in snapshots]


@pytest.fixture
async def populated(postgres_url: str, open_replica: OpenReplica) -> PostgresBackend:
    backend = await open_replica(postgres_url)
    snapshots = [completed(f"done-{index}") for index in range(FINISHED)]
    snapshots += [at_task(f"ready-{index}", priority=1 + index % 5) for index in range(READY)]
    snapshots += [at_signal(f"waiting-{index}", "approval", wake_at=seconds_from_now(3600)) for index in range(WAITING)]
    rows = _rows(snapshots)

    async def load(connection: Any) -> None:
        await connection.executemany(queries.SAVE_SNAPSHOT, rows)
        await connection.execute("ANALYZE")

    await backend._run(load)
    return backend


async def _explain(backend: PostgresBackend, query: str, *args: object) -> Any:
    text = await backend._run(lambda connection: connection.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args))
    return json.loads(text)


def _nodes(plan: Any) -> Iterator[dict[str, Any]]:
    if isinstance(plan, list):
        for item in plan:
            yield from _nodes(item)
    elif isinstance(plan, dict):
        if "Node Type" in plan:
            yield plan
        for value in plan.values():
            yield from _nodes(value)


def _scanned_relations(plan: Any) -> set[str]:
    return {node["Relation Name"] for node in _nodes(plan) if node["Node Type"] == "Seq Scan"}


def _indexes(plan: Any) -> set[str]:
    return {node["Index Name"] for node in _nodes(plan) if "Index Name" in node}


async def test_find_candidates_reads_the_ready_index_never_the_whole_table(populated: PostgresBackend) -> None:
    plan = await _explain(populated, queries.FIND_CANDIDATES, "worker-a", 10, 60.0, utc_now(), [])

    assert "snapshots" not in _scanned_relations(plan)
    assert "snapshots_ready" in _indexes(plan)


async def test_find_candidates_with_worker_tags_still_reads_the_ready_index(populated: PostgresBackend) -> None:
    plan = await _explain(populated, queries.FIND_CANDIDATES, "worker-a", 10, 60.0, utc_now(), ["eu", "gpu"])

    assert "snapshots" not in _scanned_relations(plan)
    assert "snapshots_ready" in _indexes(plan)


async def test_the_due_look_reads_the_wake_at_and_signal_indexes_only(populated: PostgresBackend) -> None:
    plan = await _explain(populated, queries.DUE_INSTANCES, utc_now(), 256)

    assert "snapshots" not in _scanned_relations(plan)
    assert "snapshots_wake_at" in _indexes(plan)


async def test_a_hinted_task_is_found_by_key(populated: PostgresBackend) -> None:
    plan = await _explain(populated, queries.FIND_HINTED_CANDIDATE, "ready-7", task_id("fetch"), utc_now())

    assert "snapshots" not in _scanned_relations(plan)
    assert "snapshots_pkey" in _indexes(plan)


async def test_dispatch_over_the_populated_table_returns_the_most_urgent_ready_tasks(
    populated: PostgresBackend,
) -> None:
    tasks = await populated.find_available_tasks("worker-a", 10, timedelta(hours=1), [])

    assert len(tasks) == 10
    assert {task.snapshot.task_priority for task in tasks} == {1}
