"""Atomicity under real concurrency (docs/behaviour.md SNAP to RUN): the callers race with asyncio.gather."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sayiir_client.errors import AlreadyExistsError
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_server.domain.model import CANCEL, PAUSE
from sayiir_server.domain.traits import Backend
from tests.contract.builders import at_task, signal_request, task_id
from tests.contract.runs import hold, start_run

RACERS = 32
FORK_BRANCHES = 16


async def test_concurrent_claims_on_one_task_grant_exactly_one(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "charge"))

    claims = await asyncio.gather(
        *(store.claim_task("order-1", task_id("charge"), f"worker-{n}", timedelta(minutes=5)) for n in range(RACERS))
    )

    granted = [claim for claim in claims if claim is not None]
    assert len(granted) == 1


async def test_concurrent_check_and_cancel_applies_the_cancel_exactly_once(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "charge"))
    await hold(store, "order-1", "charge")
    await store.store_signal("order-1", CANCEL, signal_request())

    applied = await asyncio.gather(*(store.check_and_cancel("order-1") for _ in range(RACERS)))

    assert applied.count(True) == 1
    assert (await store.load_snapshot("order-1")).WhichOneof("state") == "cancelled"


async def test_concurrent_check_and_pause_applies_the_pause_exactly_once(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "charge"))
    await hold(store, "order-1", "charge")
    await store.store_signal("order-1", PAUSE, signal_request())

    applied = await asyncio.gather(*(store.check_and_pause("order-1") for _ in range(RACERS)))

    assert applied.count(True) == 1
    assert (await store.load_snapshot("order-1")).WhichOneof("state") == "paused"


async def test_concurrent_check_control_signals_cancel_exactly_once_and_never_pause(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "charge"))
    await hold(store, "order-1", "charge")
    await store.store_signal("order-1", PAUSE, signal_request())
    await store.store_signal("order-1", CANCEL, signal_request())

    signals = await asyncio.gather(*(store.check_control_signals("order-1") for _ in range(RACERS)))

    assert signals.count(enums.CONTROL_SIGNAL_CANCELLED) == 1
    assert enums.CONTROL_SIGNAL_PAUSED not in signals
    assert (await store.load_snapshot("order-1")).WhichOneof("state") == "cancelled"


async def test_concurrent_task_results_of_one_instance_are_all_kept(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "join"))
    branches = [f"branch-{n}" for n in range(FORK_BRANCHES)]

    await asyncio.gather(*(store.save_task_result("order-1", task_id(branch), branch.encode()) for branch in branches))

    stored = await store.load_snapshot("order-1")
    assert {result.task_id for result in stored.in_progress.completed_tasks} == {task_id(b) for b in branches}
    for branch in branches:
        assert await store.load_task_result("order-1", task_id(branch)) == branch.encode()


async def test_concurrent_prepare_run_with_fail_policy_creates_exactly_one_run(store: Backend) -> None:
    outcomes = await asyncio.gather(
        start_run(store, "order-1", input=b"first"),
        start_run(store, "order-1", input=b"second"),
        return_exceptions=True,
    )

    fresh = [o for o in outcomes if not isinstance(o, BaseException) and o.WhichOneof("outcome") == "fresh"]
    refused = [o for o in outcomes if isinstance(o, AlreadyExistsError)]
    assert (len(fresh), len(refused)) == (1, 1)
    [winner] = fresh
    assert await store.load_snapshot("order-1") == winner.fresh.snapshot


async def test_concurrent_prepare_run_with_terminate_existing_all_start_fresh(store: Backend) -> None:
    await start_run(store, "order-1", input=b"original")
    outcomes = await asyncio.gather(
        *(
            start_run(store, "order-1", input=f"run-{n}".encode(), policy=enums.CONFLICT_POLICY_TERMINATE_EXISTING)
            for n in range(8)
        )
    )

    assert all(o.WhichOneof("outcome") == "fresh" for o in outcomes)
    stored = await store.load_snapshot("order-1")
    assert stored in [o.fresh.snapshot for o in outcomes]
