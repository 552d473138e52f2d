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

from sayiir_server.backends.postgres import queries
from sayiir_server.backends.postgres.rows import EARLIEST
from sayiir_server.domain.engine import Engine
from sayiir_server.domain.model import utc_now
from tests.contract.builders import at_signal, at_task, completed, seconds_from_now, task_id
from tests.postgres.conftest import OpenReplica, store_of

pytestmark = pytest.mark.postgres

FINISHED = 5000
READY = 500
WAITING = 200


@pytest.fixture
async def populated(postgres_url: str, open_replica: OpenReplica) -> Engine:
    backend = await open_replica(postgres_url)
    snapshots = [completed(f"done-{index}") for index in range(FINISHED)]
    snapshots += [at_task(f"ready-{index}", priority=1 + index % 5) for index in range(READY)]
    snapshots += [at_signal(f"waiting-{index}", "approval", wake_at=seconds_from_now(3600)) for index in range(WAITING)]
    await backend.save_snapshots(snapshots)
    await store_of(backend).run(lambda connection: connection.execute("ANALYZE"))
    return backend


async def _explain(backend: Engine, query: str, *args: object) -> Any:
    text = await store_of(backend).run(lambda connection: connection.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args))
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


def _ready_pages_args(worker_tags: list[str], failed_by_worker: bool = False) -> tuple[object, ...]:
    return ("worker-a", 10, utc_now(), worker_tags, failed_by_worker, None, EARLIEST, "", [])


async def test_ready_pages_read_the_ready_index_never_the_whole_table(populated: Engine) -> None:
    plan = await _explain(populated, queries.READY_PAGES, *_ready_pages_args([]))

    assert "snapshots" not in _scanned_relations(plan)
    assert "snapshots_ready" in _indexes(plan)


async def test_ready_pages_with_worker_tags_still_read_the_ready_index(populated: Engine) -> None:
    plan = await _explain(populated, queries.READY_PAGES, *_ready_pages_args(["eu", "gpu"]))

    assert "snapshots" not in _scanned_relations(plan)
    assert "snapshots_ready" in _indexes(plan)


async def test_ready_pages_of_a_worker_s_own_failures_read_an_index(populated: Engine) -> None:
    plan = await _explain(populated, queries.READY_PAGES, *_ready_pages_args([], failed_by_worker=True))

    assert "snapshots" not in _scanned_relations(plan)
    assert "snapshots_ready" in _indexes(plan)


async def test_the_due_look_reads_the_wake_at_and_signal_indexes_only(populated: Engine) -> None:
    plan = await _explain(populated, queries.DUE_WORK, utc_now(), 256)

    assert "snapshots" not in _scanned_relations(plan)
    assert "snapshots_wake_at" in _indexes(plan)


async def test_a_hinted_task_is_found_by_key(populated: Engine) -> None:
    plan = await _explain(populated, queries.HINTED_ROW, "ready-7", task_id("fetch"))

    assert "snapshots" not in _scanned_relations(plan)
    assert "snapshots_pkey" in _indexes(plan)


async def test_dispatch_over_the_populated_table_returns_the_most_urgent_ready_tasks(
    populated: Engine,
) -> None:
    tasks = await populated.find_available_tasks("worker-a", 10, timedelta(hours=1), [])

    assert len(tasks) == 10
    assert {task.snapshot.task_priority for task in tasks} == {1}
