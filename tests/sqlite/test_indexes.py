"""find_available_tasks and find_hinted_task touch only the rows they need (docs/behaviour.md DISP, issue: scaling).

Two kinds of proof, neither timed: the query plans search the partial indexes instead of scanning the
snapshots table, and the number of SQLite virtual-machine steps a call executes does not grow with
finished instances, waiting instances, or (for a fixed limit) with more ready ones.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.api.wakeups import WakeupHub
from sayiir_server.backends.sqlite import queries
from sayiir_server.backends.sqlite.schema import open_database
from sayiir_server.backends.sqlite.storage import SqliteStorage, run_to_completion
from sayiir_server.domain.engine import Engine
from sayiir_server.domain.port import Composite
from tests.contract.builders import at_delay, at_signal, at_task, completed, failed, paused, seconds_ago, task_id

T = TypeVar("T")

LIMIT = 10
AGING = timedelta(minutes=1)

PLAN_PARAMETERS = {
    "now_us": 0,
    "worker_tags": '["gpu"]',
    "priority": 3,
    "after_us": 0,
    "after_id": "",
    "worker_id": "worker-1",
    "page_size": LIMIT,
    "instance_id": "order-1",
    "task_id": task_id("fetch"),
    "failed_by": None,
    "definition_hashes": None,
    "limit": 256,
}

DISPATCH_QUERIES = {
    "READY_PRIORITIES": "snapshots_ready",
    "READY_PAGE": "snapshots_ready",
    "DUE_IDS": "snapshots_due",
    "HINTED_ROW": "sqlite_autoindex_snapshots_1",
}


@pytest.fixture
def database(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(str(tmp_path / "sayiir.db"))
    yield connection
    connection.close()


def query_plan(connection: sqlite3.Connection, statement: str) -> list[str]:
    parameters = {name: value for name, value in PLAN_PARAMETERS.items() if f":{name}" in statement}
    return [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)]


@pytest.mark.parametrize(("query", "index"), DISPATCH_QUERIES.items())
def test_dispatch_query_searches_its_index_and_never_scans_snapshots(
    database: sqlite3.Connection, query: str, index: str
) -> None:
    plan = query_plan(database, getattr(queries, query))

    assert any(step.startswith("SEARCH") and f"INDEX {index}" in step for step in plan), plan
    assert not any(step.startswith("SCAN s") or step.startswith("SCAN snapshots") for step in plan), plan


class InlineStore:
    """The storage port over a SqliteStorage on the test's own thread, so the engine runs synchronously."""

    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage

    async def write(self, composite: Composite[T], *, single_statement: bool = False) -> T:
        return self._storage.run(composite, write=True)

    async def read(self, composite: Composite[T]) -> T:
        return self._storage.run(composite, write=False)

    async def check_health(self) -> None:
        self._storage.ping()

    async def close(self) -> None:
        self._storage.close()

    @property
    def description(self) -> str:
        return "sqlite inline"


def engine_on(database: sqlite3.Connection) -> Engine:
    return Engine(InlineStore(SqliteStorage(database)), WakeupHub())


def seed(engine: Engine, database: sqlite3.Connection, snapshots: Sequence[pb.WorkflowSnapshot]) -> None:
    """Save quickly: durability is not under test here."""
    database.execute("PRAGMA synchronous = OFF")
    run_to_completion(engine.save_snapshots(snapshots))


def ready(count: int, prefix: str) -> list[pb.WorkflowSnapshot]:
    return [
        at_task(f"{prefix}-{n:06d}", priority=1 + n % 5, updated_at=seconds_ago(n % 600), tags=["gpu"] if n % 2 else [])
        for n in range(count)
    ]


def finished_and_waiting(count: int) -> list[pb.WorkflowSnapshot]:
    """Instances dispatch must never look at: finished, paused, or waiting for a time or an event."""
    kinds = [
        lambda n: completed(f"done-{n:06d}"),
        lambda n: failed(f"failed-{n:06d}"),
        lambda n: paused(f"paused-{n:06d}"),
        lambda n: at_delay(f"sleeping-{n:06d}", wake_at=seconds_ago(-3600), next_task="wake"),
        lambda n: at_signal(f"waiting-{n:06d}", "approval", next_task="ship"),
    ]
    return [kinds[n % len(kinds)](n) for n in range(count)]


@contextmanager
def counted_steps(database: sqlite3.Connection) -> Iterator[list[int]]:
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    database.set_progress_handler(count, 1)
    try:
        yield steps
    finally:
        database.set_progress_handler(None, 1)


def steps_of_find(engine: Engine, database: sqlite3.Connection, worker_tags: Sequence[str] = ()) -> int:
    run_to_completion(engine.find_available_tasks("worker-1", LIMIT, AGING, worker_tags))  # warm the cache
    with counted_steps(database) as steps:
        found = run_to_completion(engine.find_available_tasks("worker-1", LIMIT, AGING, worker_tags))
    assert len(found) == LIMIT
    return steps[0]


@pytest.mark.parametrize("worker_tags", [(), ("gpu",)])
def test_find_cost_does_not_grow_with_finished_or_waiting_instances(
    database: sqlite3.Connection, worker_tags: tuple[str, ...]
) -> None:
    engine = engine_on(database)
    seed(engine, database, ready(50, "ready") + finished_and_waiting(50))
    before = steps_of_find(engine, database, worker_tags)

    seed(engine, database, finished_and_waiting(5000)[50:])

    assert steps_of_find(engine, database, worker_tags) <= before


def test_find_cost_grows_far_slower_than_the_ready_instances(database: sqlite3.Connection) -> None:
    engine = engine_on(database)
    seed(engine, database, ready(100, "first"))
    with_hundred = steps_of_find(engine, database)

    seed(engine, database, ready(9900, "more"))

    with_ten_thousand = steps_of_find(engine, database)
    assert with_ten_thousand < 2 * with_hundred, (with_hundred, with_ten_thousand)


def test_find_hinted_task_cost_does_not_grow_with_instances(database: sqlite3.Connection) -> None:
    engine = engine_on(database)
    seed(engine, database, ready(10, "ready") + finished_and_waiting(10))
    hint = pb.TaskWakeupHint(instance_id="ready-000003", task_id=task_id("fetch"))

    def steps_of_hinted_find() -> int:
        with counted_steps(database) as steps:
            assert run_to_completion(engine.find_hinted_task(hint)) is not None
        return steps[0]

    before = steps_of_hinted_find()
    seed(engine, database, finished_and_waiting(2000)[10:] + ready(2000, "more"))

    assert steps_of_hinted_find() <= before


@pytest.mark.parametrize("states", [1, 2])
def test_a_listing_by_state_walks_snapshots_by_state_in_update_order(database: sqlite3.Connection, states: int) -> None:
    statement = queries.list_workflows_statement(frozenset({"states"}), True, True, states)
    parameters: dict[str, object] = {f"state_{index}": "in_progress" for index in range(states)}
    parameters |= {"limit": LIMIT, "cursor_us": 0, "cursor_id": ""}

    plan = [row[3] for row in database.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)]

    searches = [step for step in plan if step.startswith("SEARCH s")]
    assert len(searches) == states, plan
    assert all("INDEX snapshots_by_state (state=? AND (updated_at_us,instance_id)<(?,?))" in step for step in searches)
    assert not any(step.startswith("SCAN s") for step in plan), plan
