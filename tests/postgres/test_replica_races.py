"""Replicas racing on one database: row locks and SKIP LOCKED keep every effect single."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from sayiir_server.api.wakeups import WakeupHub
from sayiir_server.backends.postgres import backend as postgres_backend
from sayiir_server.domain.claims import new_claim
from sayiir_server.domain.dispatch import signal_task_id
from sayiir_server.domain.engine import Engine
from sayiir_server.domain.model import find_result, utc_now
from sayiir_server.domain.port import Lock, Transaction
from tests.contract.builders import at_delay, at_signal, at_task, completed, seconds_ago, task_id
from tests.postgres.conftest import OpenReplica

pytestmark = pytest.mark.postgres

REPLICAS = 3
INSTANCES = 40
ROUNDS = 3
AGING = timedelta(seconds=60)
QUIET = timedelta(milliseconds=500)
"""How long to keep collecting hints after the race, so late duplicates would be seen."""


async def _replicas(url: str, open_replica: OpenReplica) -> list[Engine]:
    return list(await asyncio.gather(*(open_replica(url) for _ in range(REPLICAS))))


async def _race_finds(replicas: list[Engine]) -> None:
    await asyncio.gather(
        *(
            replica.find_available_tasks(f"worker-{index}", 100, AGING, [])
            for _ in range(ROUNDS)
            for index, replica in enumerate(replicas)
        )
    )


async def _hints_during(replica: Engine, race: asyncio.Future[None]) -> Counter[str]:
    """Instance ids of every hint `replica` hears while the race runs and for QUIET after."""
    hub = replica.wakeups
    assert isinstance(hub, WakeupHub)
    subscription = hub.subscribe()
    heard: Counter[str] = Counter()
    try:
        await race
        while (hint := await subscription.next(QUIET)) is not None:
            heard[hint.instance_id] += 1
    finally:
        subscription.close()
    return heard


async def test_replicas_racing_to_advance_fed_signals_consume_each_event_once(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    replicas = await _replicas(postgres_url, open_replica)
    names = [f"order-{index}" for index in range(INSTANCES)]
    for name in names:
        await replicas[0].save_snapshot(at_signal(name, "approval", next_task="ship"))
        await replicas[0].send_event(name, "approval", f"first for {name}".encode())
        await replicas[0].send_event(name, "approval", f"second for {name}".encode())

    await _race_finds(replicas)

    for name in names:
        snapshot = await replicas[1].load_snapshot(name)
        assert snapshot.in_progress.position.at_task.task_id == task_id("ship")
        recorded = find_result(snapshot.in_progress.completed_tasks, signal_task_id("approval"))
        assert recorded is not None
        assert recorded.output == f"first for {name}".encode()
        assert await replicas[2].consume_event(name, "approval") == f"second for {name}".encode()
        assert await replicas[2].consume_event(name, "approval") is None


async def test_replicas_racing_to_advance_due_delays_advance_and_announce_each_once(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    replicas = await _replicas(postgres_url, open_replica)
    names = [f"order-{index}" for index in range(INSTANCES)]
    for name in names:
        await replicas[0].save_snapshot(at_delay(name, wake_at=seconds_ago(1), next_task="ship"))

    heard = await _hints_during(replicas[0], asyncio.ensure_future(_race_finds(replicas)))

    assert heard == Counter(dict.fromkeys(names, 1))
    for name in names:
        snapshot = await replicas[1].load_snapshot(name)
        assert snapshot.in_progress.position.at_task.task_id == task_id("ship")


async def test_replicas_racing_to_claim_one_task_grant_exactly_one_claim(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    replicas = await _replicas(postgres_url, open_replica)
    await replicas[0].save_snapshot(at_task("order-1", "charge"))

    claims = await asyncio.gather(
        *(
            replica.claim_task("order-1", task_id("charge"), f"worker-{index}-{attempt}", timedelta(minutes=5))
            for attempt in range(5)
            for index, replica in enumerate(replicas)
        )
    )

    assert len([claim for claim in claims if claim is not None]) == 1


async def test_replicas_racing_to_record_fork_branch_results_keep_all_of_them(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    replicas = await _replicas(postgres_url, open_replica)
    await replicas[0].save_snapshot(at_task("order-1", "join"))
    branches = [f"branch-{index}" for index in range(30)]

    await asyncio.gather(
        *(
            replicas[index % REPLICAS].save_task_result("order-1", task_id(branch), branch.encode())
            for index, branch in enumerate(branches)
        )
    )

    snapshot = await replicas[0].load_snapshot("order-1")
    recorded = {result.task_id: result.output for result in snapshot.in_progress.completed_tasks}
    assert recorded == {task_id(branch): branch.encode() for branch in branches}


async def test_a_completion_waits_for_a_claimer_holding_its_row_instead_of_deadlocking(
    postgres_url: str, open_replica: OpenReplica, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COMPLETE-1.1 under the claimer's lock order: the snapshot row first, then its claim.

    The claimer locks the row, then (a round trip later) tries the claim the completer holds; the
    completer must not hold that claim row while it waits for the snapshot row, or each waits for
    the other until PostgreSQL aborts one of them as a deadlock (retried, so seen here with retries off)."""
    monkeypatch.setattr(postgres_backend, "_ATTEMPTS", 1)
    completer, claimer = await open_replica(postgres_url), await open_replica(postgres_url)
    snapshot = at_task("order-1")
    await completer.save_snapshot(snapshot)
    fetch = task_id("fetch")
    assert await completer.claim_task("order-1", fetch, "worker-a", timedelta(minutes=5)) is not None
    row_locked, claim_tried = asyncio.Event(), asyncio.Event()

    async def lock_row_then_claim(tx: Transaction) -> bool:
        await tx.load("order-1", Lock.UPDATE)
        row_locked.set()
        await claim_tried.wait()
        lease = new_claim("order-1", fetch, "worker-b", utc_now(), timedelta(minutes=5))
        return bool(await tx.claim_unsignalled([lease], utc_now()))

    claiming = asyncio.ensure_future(claimer.storage.write(lock_row_then_claim))
    await row_locked.wait()
    finished = completed("order-1")
    completing = asyncio.ensure_future(completer.complete_task(finished, fetch, "worker-a"))
    await asyncio.sleep(0.2)  # the completion reaches PostgreSQL and waits for the row
    claim_tried.set()

    assert await asyncio.wait_for(claiming, 10) is False
    assert await asyncio.wait_for(completing, 10) is True
