"""The worker loop in two round trips: ClaimAvailableTasks (CLAIM-AVAIL-*) and CompleteTask (COMPLETE-*)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from sayiir_client.errors import FinalStateError, NotFoundError
from sayiir_client.tasks import TaskCompletion
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import CANCEL, PAUSE, SignalKind, timestamp
from sayiir_server.domain.traits import Backend
from tests.contract.builders import (
    OTHER_DEFINITION_HASH,
    at_task,
    completed,
    seconds_ago,
    signal_request,
    task_id,
    task_position,
    with_retry,
)
from tests.support.clock import FakeClock

TTL = timedelta(minutes=5)
FETCH = task_id("fetch")


async def claim(store: Backend, worker: str = "worker-a", limit: int = 10, **options: object) -> list[pb.ClaimedTask]:
    return await store.claim_available_tasks(worker, limit, TTL, **options)  # type: ignore[arg-type]


def ids(claimed: list[pb.ClaimedTask]) -> list[str]:
    return [item.task.instance_id for item in claimed]


def done(snapshot: pb.WorkflowSnapshot, output: bytes) -> pb.WorkflowSnapshot:
    """The snapshot after its task: the workflow completed with `output`."""
    finished = pb.WorkflowSnapshot()
    finished.CopyFrom(snapshot)
    finished.completed.final_output = output
    return finished


async def test_claim_available_tasks_claims_the_most_urgent_tasks_for_the_caller(
    store: Backend, clock: FakeClock
) -> None:
    await store.save_snapshot(at_task("low", priority=5, updated_at=seconds_ago(1)))
    await store.save_snapshot(at_task("urgent", priority=1, updated_at=seconds_ago(1)))
    await store.save_snapshot(at_task("middle", priority=3, updated_at=seconds_ago(1)))

    claimed = await claim(store, limit=2)

    assert ids(claimed) == ["urgent", "middle"]
    for item in claimed:
        assert item.claim.worker_id == "worker-a"
        assert (item.claim.instance_id, item.claim.task_id) == (item.task.instance_id, FETCH)
        assert item.claim.expires_at == timestamp(clock.now + TTL)
        assert item.task.input == b"initial input"
        assert item.task.snapshot.in_progress.position == task_position("fetch")


async def test_a_claimed_task_is_held_by_its_claimer_and_offered_to_nobody_else(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1"))
    [first] = await claim(store, "worker-a")

    assert await claim(store, "worker-b") == []
    assert await store.find_available_tasks("worker-b", 10, timedelta(seconds=1), []) == []
    assert await store.claim_task("order-1", FETCH, "worker-b", TTL) is None
    assert first.claim.worker_id == "worker-a"


@pytest.mark.parametrize("kind", [CANCEL, PAUSE], ids=["cancel", "pause"])
async def test_a_task_with_a_pending_request_is_never_handed_out(store: Backend, kind: SignalKind) -> None:
    await store.save_snapshot(at_task("order-1"))
    await store.store_signal("order-1", kind, signal_request())

    assert await claim(store) == []
    assert await store.claim_task("order-1", FETCH, "worker-b", TTL) is not None  # nothing was claimed


async def test_only_tasks_of_the_asked_definitions_are_claimed(store: Backend) -> None:
    ours = at_task("ours")
    theirs = at_task("theirs")
    theirs.definition_hash = OTHER_DEFINITION_HASH
    await store.save_snapshot(ours)
    await store.save_snapshot(theirs)

    assert ids(await claim(store, definition_hashes=[ours.definition_hash])) == ["ours"]
    assert ids(await claim(store, "worker-b", definition_hashes=[OTHER_DEFINITION_HASH])) == ["theirs"]


async def test_only_tasks_whose_tags_the_worker_carries_are_claimed(store: Backend) -> None:
    await store.save_snapshot(at_task("gpu-task", tags=["gpu"]))
    await store.save_snapshot(at_task("any-task"))

    assert ids(await claim(store, "cpu-worker", worker_tags=["cpu"])) == ["any-task"]
    assert ids(await claim(store, "gpu-worker", worker_tags=["gpu"])) == ["gpu-task"]


async def test_a_task_backing_off_after_a_failure_is_not_claimed(store: Backend) -> None:
    await store.save_snapshot(with_retry(at_task("order-1"), "fetch", next_retry_at=seconds_ago(-60)))

    assert await claim(store) == []


async def test_claim_available_tasks_respects_its_limit(store: Backend) -> None:
    for number in range(5):
        await store.save_snapshot(at_task(f"order-{number}", updated_at=seconds_ago(10 - number)))

    assert ids(await claim(store, limit=3)) == ["order-0", "order-1", "order-2"]
    assert ids(await claim(store, "worker-b", limit=3)) == ["order-3", "order-4"]


async def test_a_waiting_claim_takes_a_task_made_ready_while_it_waits(store: Backend) -> None:
    waiting = asyncio.ensure_future(claim(store, wait=timedelta(seconds=10)))
    await asyncio.sleep(0.2)
    assert not waiting.done()

    await store.save_snapshot(at_task("order-1"))

    claimed = await asyncio.wait_for(waiting, 5)
    assert ids(claimed) == ["order-1"]
    assert claimed[0].claim.worker_id == "worker-a"


async def test_a_waiting_claim_answers_empty_once_its_wait_passed(store: Backend) -> None:
    assert await claim(store, wait=timedelta(milliseconds=300)) == []


async def test_complete_task_saves_and_releases_the_claim_in_one_step(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1"))
    [item] = await claim(store)

    assert await store.complete_task(done(item.task.snapshot, b"shipped"), FETCH, "worker-a")

    assert (await store.load_snapshot("order-1")).completed.final_output == b"shipped"
    with pytest.raises(NotFoundError):
        await store.release_task_claim("order-1", FETCH, "worker-a")


async def test_complete_task_after_the_lease_expired_writes_nothing(store: Backend, clock: FakeClock) -> None:
    await store.save_snapshot(at_task("order-1"))
    [item] = await claim(store)
    clock.advance(TTL + timedelta(seconds=1))

    assert not await store.complete_task(done(item.task.snapshot, b"late"), FETCH, "worker-a")

    assert (await store.load_snapshot("order-1")).WhichOneof("state") == "in_progress"


async def test_complete_task_by_a_worker_without_the_claim_writes_nothing(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1"))
    [item] = await claim(store, "worker-a")

    assert not await store.complete_task(done(item.task.snapshot, b"stolen"), FETCH, "worker-b")

    assert (await store.load_snapshot("order-1")).WhichOneof("state") == "in_progress"
    await store.release_task_claim("order-1", FETCH, "worker-a")  # still worker-a's


async def test_concurrent_claimers_never_receive_the_same_task(store: Backend) -> None:
    for number in range(60):
        await store.save_snapshot(at_task(f"order-{number:02d}"))

    batches = await asyncio.gather(*(claim(store, f"worker-{n}", limit=4) for n in range(16)))

    claimed = [instance_id for batch in batches for instance_id in ids(batch)]
    assert len(claimed) == len(set(claimed))
    assert set(claimed) <= {f"order-{number:02d}" for number in range(60)}


async def test_concurrent_completions_are_each_answered_by_their_own_claim(store: Backend) -> None:
    for number in range(24):
        await store.save_snapshot(at_task(f"order-{number:02d}"))
    claimed = await claim(store, "worker-a", limit=24)
    workers = ["worker-a" if number % 3 else "worker-b" for number in range(len(claimed))]

    saved = await asyncio.gather(
        *(
            store.complete_task(done(item.task.snapshot, b"shipped"), FETCH, worker)
            for item, worker in zip(claimed, workers, strict=True)
        )
    )

    assert saved == [worker == "worker-a" for worker in workers]
    for item, worker in zip(claimed, workers, strict=True):
        stored = await store.load_snapshot(item.task.instance_id)
        assert stored.WhichOneof("state") == ("completed" if worker == "worker-a" else "in_progress")


async def test_concurrent_repeats_of_one_completion_save_once(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1"))
    [item] = await claim(store)

    answers = await asyncio.gather(
        *(store.complete_task(done(item.task.snapshot, b"shipped"), FETCH, "worker-a") for _ in range(6)),
        return_exceptions=True,
    )

    assert answers.count(True) == 1
    assert all(isinstance(answer, FinalStateError) for answer in answers if answer is not True)  # SNAP-1.4


async def test_complete_tasks_answers_each_completion_as_complete_task_would(store: Backend) -> None:
    for instance_id in ("order-1", "order-2", "order-3"):
        await store.save_snapshot(at_task(instance_id))
    claimed = {item.task.instance_id: item for item in await claim(store, "worker-a")}
    await store.save_snapshot(completed("order-3"))

    answers = await store.complete_tasks(
        [
            TaskCompletion(done(claimed["order-1"].task.snapshot, b"shipped"), FETCH, "worker-a"),
            TaskCompletion(done(claimed["order-2"].task.snapshot, b"stolen"), FETCH, "worker-b"),
            TaskCompletion(done(claimed["order-3"].task.snapshot, b"late"), FETCH, "worker-a"),
        ]
    )

    assert answers[:2] == [True, False]
    assert isinstance(answers[2], FinalStateError)
    assert answers[2].state == "Completed"
    assert (await store.load_snapshot("order-1")).completed.final_output == b"shipped"
    assert (await store.load_snapshot("order-2")).WhichOneof("state") == "in_progress"


async def test_complete_tasks_of_nothing_answers_nothing(store: Backend) -> None:
    assert await store.complete_tasks([]) == []
