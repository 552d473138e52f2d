"""docs/behaviour.md WAKE: wait_for_wakeup and watch_wakeups hear about tasks that became ready.

A waiter subscribes at some moment the test cannot observe (over a network even
less), so each test makes one more task ready per round until the waiter
answers, instead of sleeping and hoping it subscribed in time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.traits import Backend
from tests.contract.builders import (
    DEFINITION_HASH,
    at_delay,
    at_task,
    first_task,
    paused,
    seconds_ago,
    seconds_from_now,
    task_id,
)
from tests.contract.runs import start_run

Trigger = Callable[[int], Awaitable[None]]
ROUNDS = 40
ROUND_WAIT_SECONDS = 0.05
WAITER_TIMEOUT = timedelta(seconds=10)


async def hint_while(waiting: Awaitable[pb.TaskWakeupHint | None], trigger: Trigger) -> pb.TaskWakeupHint | None:
    """Run trigger(0), trigger(1), ... until the waiter answers; its answer (None if it never did)."""
    waiter = asyncio.ensure_future(waiting)
    try:
        for round_number in range(ROUNDS):
            await trigger(round_number)
            done, _ = await asyncio.wait({waiter}, timeout=ROUND_WAIT_SECONDS)
            if done:
                return waiter.result()
        return None
    finally:
        if not waiter.done():
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)


async def next_hint(stream: AsyncIterator[pb.TaskWakeupHint]) -> pb.TaskWakeupHint:
    return await anext(stream)


async def close(stream: AsyncIterator[pb.TaskWakeupHint]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


# wait_for_wakeup


async def test_wait_for_wakeup_returns_a_hint_when_prepare_run_makes_a_task_ready(store: Backend) -> None:
    async def start_order(n: int) -> None:
        await start_run(store, f"order-{n}", first=first_task("fetch", tags=["eu"]))

    hint = await hint_while(store.wait_for_wakeup(WAITER_TIMEOUT), start_order)

    assert hint is not None
    assert hint.instance_id.startswith("order-")
    assert (hint.task_id, hint.definition_hash, list(hint.task_tags)) == (task_id("fetch"), DEFINITION_HASH, ["eu"])


async def test_wait_for_wakeup_returns_a_hint_when_a_saved_snapshot_makes_a_task_ready(store: Backend) -> None:
    for n in range(ROUNDS):
        await store.save_snapshot(at_delay(f"order-{n}", wake_at=seconds_from_now(3600), next_task="charge"))

    async def move_to_charge(n: int) -> None:
        await store.save_snapshot(at_task(f"order-{n}", "charge"))

    hint = await hint_while(store.wait_for_wakeup(WAITER_TIMEOUT), move_to_charge)

    assert hint is not None
    assert hint.instance_id.startswith("order-")
    assert hint.task_id == task_id("charge")


async def test_wait_for_wakeup_returns_none_after_its_timeout(store: Backend) -> None:
    started = time.monotonic()

    hint = await store.wait_for_wakeup(timedelta(milliseconds=50))

    assert hint is None
    assert time.monotonic() - started >= 0.04


async def test_wait_for_wakeup_skips_hints_whose_tags_do_not_fit_the_worker(store: Backend) -> None:
    async def ready_cpu_then_gpu(n: int) -> None:
        await store.save_snapshot(at_task(f"cpu-{n}", tags=["cpu"]))
        await store.save_snapshot(at_task(f"gpu-{n}", tags=["gpu"]))

    hint = await hint_while(store.wait_for_wakeup(WAITER_TIMEOUT, ["gpu"]), ready_cpu_then_gpu)

    assert hint is not None
    assert hint.instance_id.startswith("gpu-")


# watch_wakeups


async def test_watch_wakeups_yields_a_hint_when_unpause_makes_a_task_ready(store: Backend) -> None:
    for n in range(ROUNDS):
        await store.save_snapshot(paused(f"order-{n}", "charge"))

    async def unpause(n: int) -> None:
        await store.unpause(f"order-{n}")

    stream = store.watch_wakeups()
    try:
        hint = await hint_while(next_hint(stream), unpause)
    finally:
        await close(stream)

    assert hint is not None
    assert hint.instance_id.startswith("order-")
    assert hint.task_id == task_id("charge")


async def test_watch_wakeups_yields_a_hint_when_a_due_delay_advances(store: Backend) -> None:
    async def release_delay(n: int) -> None:
        await store.save_snapshot(at_delay(f"order-{n}", wake_at=seconds_ago(1), next_task="ship"))
        await store.find_available_tasks("worker-a", 1, timedelta(minutes=1), ())

    stream = store.watch_wakeups()
    try:
        hint = await hint_while(next_hint(stream), release_delay)
    finally:
        await close(stream)

    assert hint is not None
    assert hint.instance_id.startswith("order-")
    assert hint.task_id == task_id("ship")


async def test_watch_wakeups_keeps_yielding_hints(store: Backend) -> None:
    async def start_order(n: int) -> None:
        await start_run(store, f"order-{n}")

    async def start_refund(n: int) -> None:
        await start_run(store, f"refund-{n}")

    stream = store.watch_wakeups()
    try:
        first = await hint_while(next_hint(stream), start_order)
        second = await hint_while(next_hint(stream), start_refund)
    finally:
        await close(stream)

    assert first is not None
    assert second is not None


async def test_watch_wakeups_skips_hints_whose_tags_do_not_fit_the_worker(store: Backend) -> None:
    async def ready_cpu_then_gpu(n: int) -> None:
        await store.save_snapshot(at_task(f"cpu-{n}", tags=["cpu"]))
        await store.save_snapshot(at_task(f"gpu-{n}", tags=["gpu"]))

    stream = store.watch_wakeups(["gpu"])
    try:
        hint = await hint_while(next_hint(stream), ready_cpu_then_gpu)
    finally:
        await close(stream)

    assert hint is not None
    assert hint.instance_id.startswith("gpu-")
