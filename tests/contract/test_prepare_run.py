"""docs/behaviour.md RUN: prepare_run, its conflict policies and its refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sayiir_client.errors import AlreadyExistsError, DefinitionMismatchError, InvalidInstanceIdError
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import CANCEL, PAUSE, ConflictPolicy, utc_now
from sayiir_server.domain.traits import Backend
from tests.contract.builders import (
    DEFINITION_HASH,
    OTHER_DEFINITION_HASH,
    assert_between,
    at_signal,
    at_task,
    completed,
    failed,
    first_task,
    signal_request,
    task_id,
    task_position,
)
from tests.contract.runs import hold, start_run

POLICIES = {
    "fail": enums.CONFLICT_POLICY_FAIL,
    "use-existing": enums.CONFLICT_POLICY_USE_EXISTING,
    "terminate-existing": enums.CONFLICT_POLICY_TERMINATE_EXISTING,
}


async def test_a_fresh_run_saves_a_snapshot_at_the_first_task(store: Backend) -> None:
    before = utc_now()

    outcome = await start_run(store, "order-1", input=b"order #1", first=first_task("fetch", priority=2, tags=["eu"]))

    after = utc_now()
    assert outcome.WhichOneof("outcome") == "fresh"
    snapshot = outcome.fresh.snapshot
    assert snapshot == await store.load_snapshot("order-1")
    assert snapshot.instance_id == "order-1"
    assert snapshot.definition_hash == DEFINITION_HASH
    assert snapshot.in_progress.position == task_position("fetch")
    assert list(snapshot.in_progress.completed_tasks) == []
    assert snapshot.initial_input == b"order #1"
    assert snapshot.task_priority == 2
    assert list(snapshot.task_tags) == ["eu"]
    assert_between(snapshot.created_at, before, after)


async def test_a_fresh_run_without_priority_leaves_it_absent(store: Backend) -> None:
    outcome = await start_run(store, "order-1", first=first_task("fetch"))

    assert not outcome.fresh.snapshot.HasField("task_priority")


@pytest.mark.parametrize(
    "policy", [enums.CONFLICT_POLICY_FAIL, enums.CONFLICT_POLICY_UNSPECIFIED], ids=["fail", "unspecified"]
)
async def test_fail_policy_refuses_an_existing_run_with_already_exists(store: Backend, policy: ConflictPolicy) -> None:
    existing = at_task("order-1", "charge", completed={"fetch": b"order"})
    await store.save_snapshot(existing)

    with pytest.raises(AlreadyExistsError) as raised:
        await start_run(store, "order-1", policy=policy)

    assert raised.value.instance_id == "order-1"
    assert await store.load_snapshot("order-1") == existing


async def test_use_existing_reports_the_status_of_an_existing_run(store: Backend) -> None:
    existing = at_signal("order-1", "approval")
    await store.save_snapshot(existing)

    outcome = await start_run(store, "order-1", policy=enums.CONFLICT_POLICY_USE_EXISTING)

    assert outcome.WhichOneof("outcome") == "existing_status"
    awaiting = outcome.existing_status.status.awaiting_signal
    assert (awaiting.signal_id, awaiting.signal_name) == (task_id("wait for approval"), "approval")
    assert not outcome.existing_status.HasField("final_output")
    assert await store.load_snapshot("order-1") == existing


async def test_use_existing_reports_the_final_output_of_a_completed_run(store: Backend) -> None:
    await store.save_snapshot(completed("order-1", b"shipped"))

    outcome = await start_run(store, "order-1", policy=enums.CONFLICT_POLICY_USE_EXISTING)

    assert outcome.existing_status.status == pb.WorkflowStatus(completed=pb.StatusCompleted())
    assert outcome.existing_status.final_output == b"shipped"


async def test_use_existing_reports_a_failure_without_final_output(store: Backend) -> None:
    await store.save_snapshot(failed("order-1", "card declined"))

    outcome = await start_run(store, "order-1", policy=enums.CONFLICT_POLICY_USE_EXISTING)

    assert outcome.existing_status.status == pb.WorkflowStatus(failed=pb.StatusFailed(error="card declined"))
    assert not outcome.existing_status.HasField("final_output")


async def test_terminate_existing_starts_afresh_and_clears_both_signals(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "charge", completed={"fetch": b"old order"}))
    await hold(store, "order-1", "charge")
    await store.store_signal("order-1", CANCEL, signal_request())
    await store.store_signal("order-1", PAUSE, signal_request())

    outcome = await start_run(store, "order-1", input=b"new order", policy=enums.CONFLICT_POLICY_TERMINATE_EXISTING)

    assert outcome.WhichOneof("outcome") == "fresh"
    stored = await store.load_snapshot("order-1")
    assert stored == outcome.fresh.snapshot
    assert stored.in_progress.position == task_position("fetch")
    assert list(stored.in_progress.completed_tasks) == []
    assert stored.initial_input == b"new order"
    assert await store.get_signal("order-1", CANCEL) is None
    assert await store.get_signal("order-1", PAUSE) is None


async def test_terminate_existing_drops_the_old_run_s_claims_so_its_worker_cannot_save_over_the_new_run(
    store: Backend,
) -> None:
    await start_run(store, "order-1", input=b"old order")
    assert await store.claim_task("order-1", task_id("fetch"), "old-worker", timedelta(minutes=5)) is not None

    await start_run(store, "order-1", input=b"new order", policy=enums.CONFLICT_POLICY_TERMINATE_EXISTING)

    stale = await store.load_snapshot("order-1")
    stale.completed.final_output = b"the old run's result"
    assert not await store.save_snapshot_fenced(stale, task_id("fetch"), "old-worker")
    assert (await store.load_snapshot("order-1")).initial_input == b"new order"
    assert await store.claim_task("order-1", task_id("fetch"), "new-worker", timedelta(minutes=5)) is not None


@pytest.mark.parametrize("policy", POLICIES.values(), ids=POLICIES.keys())
async def test_a_definition_mismatch_is_refused_whatever_the_policy(store: Backend, policy: ConflictPolicy) -> None:
    existing = at_task("order-1")
    existing.definition_hash = OTHER_DEFINITION_HASH
    await store.save_snapshot(existing)

    with pytest.raises(DefinitionMismatchError) as raised:
        await start_run(store, "order-1", definition_hash=DEFINITION_HASH, policy=policy)

    assert raised.value.expected == DEFINITION_HASH
    assert raised.value.found == OTHER_DEFINITION_HASH
    assert await store.load_snapshot("order-1") == existing


async def test_an_empty_instance_id_is_invalid(store: Backend) -> None:
    with pytest.raises(InvalidInstanceIdError) as raised:
        await start_run(store, "")

    assert (raised.value.length, raised.value.max_length) == (0, 256)
    assert await store.list_snapshots() == []


async def test_an_instance_id_of_257_bytes_is_invalid(store: Backend) -> None:
    with pytest.raises(InvalidInstanceIdError) as raised:
        await start_run(store, "x" * 257)

    assert (raised.value.length, raised.value.max_length) == (257, 256)
    assert await store.list_snapshots() == []


async def test_an_instance_id_of_256_bytes_is_accepted(store: Backend) -> None:
    instance_id = "x" * 256

    outcome = await start_run(store, instance_id)

    assert outcome.fresh.snapshot.instance_id == instance_id
    assert await store.list_snapshots() == [instance_id]


async def test_instance_id_length_counts_utf8_bytes_not_characters(store: Backend) -> None:
    with pytest.raises(InvalidInstanceIdError) as raised:
        await start_run(store, "é" * 129)

    assert raised.value.length == 258
