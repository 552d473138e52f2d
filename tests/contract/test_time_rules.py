"""Time rules at their exact boundaries, on every store, with the store's clock moved by the test.

CLAIM-LIVE: a claim is live until now reaches expires_at; an extension is absolute from now.
DISP-2: a delay advances once now reaches wake_at. DISP-4: aging lets a long-waiting task overtake.
"""

from __future__ import annotations

from datetime import timedelta

from sayiir_server.domain.model import timestamp
from sayiir_server.domain.traits import Backend
from tests.contract.builders import at_delay, at_task, task_id
from tests.support.clock import FakeClock

FETCH = task_id("fetch")
SHIP = task_id("ship")
AGING_NOT_RELEVANT = timedelta(seconds=1)


async def test_a_claim_expires_exactly_at_expires_at(store: Backend, clock: FakeClock) -> None:
    claim = await store.claim_task("order-1", FETCH, "worker-a", timedelta(seconds=10))
    assert claim is not None
    assert claim.expires_at == timestamp(clock.now + timedelta(seconds=10))

    clock.advance(9.999)
    assert await store.claim_task("order-1", FETCH, "worker-b", timedelta(seconds=10)) is None
    clock.advance(0.001)
    assert await store.claim_task("order-1", FETCH, "worker-b", timedelta(seconds=10)) is not None


async def test_an_extension_sets_an_absolute_expiry_from_now(store: Backend, clock: FakeClock) -> None:
    await store.claim_task("order-1", FETCH, "worker-a", timedelta(seconds=10))
    clock.advance(4)

    await store.extend_task_claim("order-1", FETCH, "worker-a", timedelta(seconds=10))

    clock.advance(9.999)
    assert await store.claim_task("order-1", FETCH, "worker-b", None) is None
    clock.advance(0.001)
    assert await store.claim_task("order-1", FETCH, "worker-b", None) is not None


async def test_a_delay_advances_exactly_at_wake_at(store: Backend, clock: FakeClock) -> None:
    delayed = at_delay(
        "order-1", wake_at=clock.now + timedelta(seconds=5), next_task="ship", completed={"fetch": b"out"}
    )
    await store.save_snapshot(delayed)
    clock.advance(4.999)
    assert await store.find_available_tasks("worker-a", 10, AGING_NOT_RELEVANT, []) == []

    clock.advance(0.001)
    [task] = await store.find_available_tasks("worker-a", 10, AGING_NOT_RELEVANT, [])

    assert (task.task_id, task.input) == (SHIP, b"out")
    assert (await store.load_snapshot("order-1")).updated_at == timestamp(clock.now)


async def test_aging_lets_a_long_waiting_low_priority_task_overtake(store: Backend, clock: FakeClock) -> None:
    await store.save_snapshot(at_task("old-low", priority=5, updated_at=clock.now))
    clock.advance(30)
    await store.save_snapshot(at_task("fresh-urgent", priority=1, updated_at=clock.now))

    # Effective priority = priority - waited / interval; fresh-urgent is 1 - 0 = 1 under any interval.
    by_ten = await store.find_available_tasks("worker-a", 10, timedelta(seconds=10), [])  # old-low: 5 - 3 = 2
    by_five = await store.find_available_tasks("worker-a", 10, timedelta(seconds=5), [])  # old-low: 5 - 6 = -1

    assert [task.instance_id for task in by_ten] == ["fresh-urgent", "old-low"]
    assert [task.instance_id for task in by_five] == ["old-low", "fresh-urgent"]
