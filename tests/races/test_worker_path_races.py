"""The worker path under contention: many claimers and completers over two engines on one database.

Two engines share one database (SQLite: one file; PostgreSQL: two replicas on one schema), 32 callers
split between them claim and complete 1,000 single-task workflows as fast as they can. CLAIM-AVAIL-1.3:
concurrent callers never receive the same task; COMPLETE-1.1: a completion saves and releases at once,
so no task is left behind and none runs twice. (The lock order that keeps claimers and completers on one row
from deadlocking is pinned down deterministically in tests/postgres/test_replica_races.py; this race rarely
hits that window.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from sayiir_client.tasks import completed_with
from sayiir_server.domain.model import state_of
from sayiir_server.domain.traits import Backend
from tests.contract.builders import at_task, task_id
from tests.races.conftest import OpenShared

TASKS = 1000
CALLERS = 32
CLAIM_LIMIT = 5
TTL = timedelta(minutes=5)
FETCH = task_id("fetch")
_IDLE_ROUNDS = 20
"""A caller stops after this many empty claims in a row once every task was handed out."""


async def _claim_and_complete(engine: Backend, worker_id: str, handed_out: Counter[str], total: list[int]) -> None:
    idle = 0
    while idle < _IDLE_ROUNDS:
        claimed = await engine.claim_available_tasks(worker_id, CLAIM_LIMIT, TTL)
        if not claimed:
            idle += 1 if total[0] >= TASKS else 0
            await asyncio.sleep(0)
            continue
        idle = 0
        for item in claimed:
            handed_out[item.task.instance_id] += 1
            total[0] += 1
            assert await engine.complete_task(completed_with(item.task.snapshot, b"done"), FETCH, worker_id)


async def test_claimers_and_completers_over_two_replicas_take_each_task_exactly_once(open_shared: OpenShared) -> None:
    first, second = await open_shared(), await open_shared()
    for number in range(TASKS):
        await first.save_snapshot(at_task(f"order-{number:04d}"))
    handed_out: Counter[str] = Counter()
    total = [0]

    await asyncio.wait_for(
        asyncio.gather(
            *(_claim_and_complete(first if n % 2 else second, f"worker-{n}", handed_out, total) for n in range(CALLERS))
        ),
        timeout=120,
    )

    assert len(handed_out) == TASKS
    assert set(handed_out.values()) == {1}
    assert not await first.find_available_tasks("auditor", 10, timedelta(seconds=60), [])
    for number in range(0, TASKS, 97):
        snapshot = await second.load_snapshot(f"order-{number:04d}")
        assert snapshot is not None
        assert state_of(snapshot) == "completed"
