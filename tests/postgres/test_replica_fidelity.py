"""SIG-2.5 and WAKE-5 across replicas: an event or a due time written through one replica wakes workers of another."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from sayiir_server.backends import open_backend
from sayiir_server.domain.model import state_of
from sayiir_server.domain.timer import REREAD_PERIOD
from tests.contract.builders import at_delay, at_signal, seconds_from_now, task_id, task_position
from tests.postgres.conftest import OpenReplica

pytestmark = pytest.mark.postgres

HEARD_WITHIN = timedelta(seconds=10)
"""Generous: a hint crosses replicas in milliseconds; a due time written elsewhere is heard within a re-read."""

TTL = timedelta(seconds=30)


async def test_sig_2_5_an_event_sent_through_one_replica_wakes_a_waiting_worker_on_another(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    replica_a = await open_replica(postgres_url, timer=True)
    replica_b = await open_replica(postgres_url, timer=True)
    await replica_a.save_snapshot(at_signal("order-1", "approval", next_task="ship"))
    waiting = asyncio.ensure_future(replica_b.wait_for_wakeup(HEARD_WITHIN))
    await asyncio.sleep(0)

    await replica_a.send_event("order-1", "approval", b"approved")

    hint = await waiting
    assert hint is not None
    assert (hint.instance_id, hint.task_id) == ("order-1", task_id("ship"))


async def test_sig_2_5_an_event_through_one_replica_hands_the_next_task_to_a_claim_waiting_on_another(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    replica_a = await open_replica(postgres_url, timer=True)
    replica_b = await open_replica(postgres_url, timer=True)
    await replica_a.save_snapshot(at_signal("order-1", "approval", next_task="ship"))
    claiming = asyncio.ensure_future(replica_b.claim_available_tasks("worker-b", 1, TTL, wait=HEARD_WITHIN))
    await asyncio.sleep(0.1)  # the claim looked once, found nothing, and waits for a hint

    await replica_a.send_event("order-1", "approval", b"approved")

    [claimed] = await claiming
    task = claimed.task
    assert (task.instance_id, task.task_id, task.input) == ("order-1", task_id("ship"), b"approved")


async def test_wake_5_1_a_delay_written_through_a_replica_without_timer_falls_due_on_another(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    """A has no timer: only B's periodic re-read can learn of the due time A wrote; the hint B's advance
    announces reaches A's waiter through NOTIFY."""
    replica_a = await open_backend(postgres_url, timer=False)
    try:
        await open_replica(postgres_url, timer=True)  # B
        waiting = asyncio.ensure_future(replica_a.wait_for_wakeup(HEARD_WITHIN))
        await asyncio.sleep(0)

        await replica_a.save_snapshot(at_delay("order-1", wake_at=seconds_from_now(0.3), next_task="ship"))

        hint = await waiting
        assert hint is not None
        assert (hint.instance_id, hint.task_id) == ("order-1", task_id("ship"))
        assert (await replica_a.load_snapshot("order-1")).in_progress.position == task_position("ship")
    finally:
        await replica_a.close()


async def test_wake_5_1_replicas_timers_firing_together_advance_each_due_run_once(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    replicas = [await open_replica(postgres_url, timer=True) for _ in range(3)]
    names = [f"order-{n}" for n in range(40)]
    heard: list[str] = []

    async def watch() -> None:
        async for hint in replicas[0].watch_wakeups():
            heard.append(hint.instance_id)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    try:
        due = seconds_from_now(0.5)
        for n, name in enumerate(names):
            await replicas[n % 3].save_snapshot(at_delay(name, wake_at=due, next_task="ship"))
        await asyncio.sleep(0.5 + 2 * REREAD_PERIOD.total_seconds())
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

    for name in names:
        snapshot = await replicas[1].load_snapshot(name)
        assert state_of(snapshot) == "in_progress"
        assert snapshot.in_progress.position == task_position("ship")
    assert sorted(heard) == sorted(names)
