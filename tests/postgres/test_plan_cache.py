"""No generic plan outlives the table it was chosen for: the searching pool's connections plan each execution
for its parameters (plan_cache_mode=force_custom_plan), so the dispatch query prepared while the table was
small still reads the partial index after it has grown; the keyed pool, which only runs statements by key,
lets PostgreSQL cache their plans.

Nothing here is timed: PostgreSQL counts, per prepared statement, how many generic and custom plans it
used (pg_prepared_statements), and each test runs the backend on a pool of one connection so that every
call lands on the connection it inspects.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from sayiir_server.backends.postgres import queries
from sayiir_server.backends.postgres.options import parse_postgres_url
from sayiir_server.backends.postgres.pools import KEYED_PLAN_CACHE_MODE, PLAN_CACHE_MODE
from sayiir_server.backends.postgres.rows import EARLIEST
from sayiir_server.domain.engine import Engine
from sayiir_server.domain.model import utc_now
from tests.contract.builders import at_task, completed, task_id
from tests.postgres.conftest import OpenReplica, store_of

pytestmark = pytest.mark.postgres

SMALL = 20
GROWN = 5_000
CALLS_WHILE_SMALL = 8
"""More than the five custom plans after which PostgreSQL may switch a prepared statement to a generic one."""

PLAN_COUNTS = "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1"


def _one_connection(url: str) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), ("pool_min", "1"), ("pool_max", "1")])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


async def _seed_ready(backend: Engine, first: int, count: int) -> None:
    """`count` ready InProgress instances in one transaction (the seeding path of the benchmarks)."""
    await backend.save_snapshots([at_task(f"ready-{index}") for index in range(first, first + count)])


async def _find(backend: Engine) -> None:
    assert len(await backend.find_available_tasks("worker-a", 10, timedelta(hours=1), [])) == 10


async def _plan_counts(backend: Engine, statement: str, *, keyed: bool = False) -> tuple[int, int]:
    row = await store_of(backend).run(lambda connection: connection.fetchrow(PLAN_COUNTS, statement), keyed=keyed)
    assert row is not None, "the statement was not prepared on the pooled connection"
    return row["generic_plans"], row["custom_plans"]


async def test_searches_plan_each_execution_and_statements_by_key_may_reuse_a_plan(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    store = store_of(await open_replica(postgres_url))

    def mode(connection: Any) -> Any:
        return connection.fetchval("SHOW plan_cache_mode")

    assert await store.run(mode) == PLAN_CACHE_MODE
    assert await store.run(mode, keyed=True) == KEYED_PLAN_CACHE_MODE


async def test_completions_run_a_cached_generic_plan(postgres_url: str, open_replica: OpenReplica) -> None:
    backend = await open_replica(_one_connection(postgres_url))
    fetch = task_id("fetch")
    for index in range(CALLS_WHILE_SMALL):
        await backend.save_snapshot(at_task(f"order-{index}"))
        assert await backend.claim_task(f"order-{index}", fetch, "worker-a", timedelta(minutes=5)) is not None
        assert await backend.complete_task(completed(f"order-{index}"), fetch, "worker-a")

    generic, _custom = await _plan_counts(backend, queries.SAVE_SNAPSHOT_AND_RELEASE, keyed=True)
    assert generic > 0


async def test_ready_pages_never_run_a_generic_plan_cached_while_the_table_was_small(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    backend = await open_replica(_one_connection(postgres_url))
    await _seed_ready(backend, 0, SMALL)
    for _ in range(CALLS_WHILE_SMALL):
        await _find(backend)

    await _seed_ready(backend, SMALL, GROWN)
    await _find(backend)

    generic, custom = await _plan_counts(backend, queries.READY_PAGES)
    assert generic == 0
    assert custom == CALLS_WHILE_SMALL + 1


async def test_without_the_setting_postgresql_caches_a_generic_plan_of_ready_pages(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    """The trap the setting avoids, shown on a plain connection (plan_cache_mode=auto) on the same table."""
    backend = await open_replica(postgres_url)
    await _seed_ready(backend, 0, SMALL)
    parsed = parse_postgres_url(postgres_url)
    plain: Any = await asyncpg.connect(
        parsed.dsn, server_settings={"search_path": parsed.options.schema or "public", "plan_cache_mode": "auto"}
    )
    try:
        arguments: tuple[object, ...] = ("worker-a", 10, utc_now(), [], False, None, EARLIEST, "", [])
        for _ in range(CALLS_WHILE_SMALL):
            await plain.fetch(queries.READY_PAGES, *arguments)
        generic, _custom = await plain.fetchrow(PLAN_COUNTS, queries.READY_PAGES)
    finally:
        await plain.close()

    assert generic > 0
