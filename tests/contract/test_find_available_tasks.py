"""docs/behaviour.md DISP: find_available_tasks (rules 1–5) and find_hinted_task."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain import engine
from sayiir_server.domain.model import CANCEL, PAUSE, SignalKind
from sayiir_server.domain.traits import Backend
from tests.contract.builders import (
    at_delay,
    at_signal,
    at_task,
    cancelled,
    completed,
    failed,
    hint_for,
    paused,
    seconds_ago,
    seconds_from_now,
    signal_request,
    task_id,
    task_position,
    with_retry,
)
from tests.contract.runs import hold
from tests.support.clock import FakeClock

AGING = timedelta(minutes=1)
LONG_TTL = timedelta(minutes=5)
KINDS = pytest.mark.parametrize("kind", [CANCEL, PAUSE], ids=["cancel", "pause"])


async def find(
    store: Backend,
    worker: str = "worker-a",
    *,
    limit: int = 100,
    aging_interval: timedelta = AGING,
    tags: Sequence[str] = (),
) -> list[pb.AvailableTask]:
    return await store.find_available_tasks(worker, limit, aging_interval, tags)


async def found_instances(
    store: Backend,
    worker: str = "worker-a",
    *,
    limit: int = 100,
    aging_interval: timedelta = AGING,
    tags: Sequence[str] = (),
) -> list[str]:
    """The instance ids of find_available_tasks' answer, in dispatch order."""
    tasks = await find(store, worker, limit=limit, aging_interval=aging_interval, tags=tags)
    return [task.instance_id for task in tasks]


# Rule 3: what is a candidate, and with which input


async def test_offers_a_ready_task_with_its_run_details(store: Backend) -> None:
    snapshot = at_task("order-1", "fetch", initial_input=b"order #1")
    snapshot.trace_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await store.save_snapshot(snapshot)

    [task] = await find(store)

    assert task.instance_id == "order-1"
    assert task.task_id == task_id("fetch")
    assert task.definition_hash == snapshot.definition_hash
    assert task.trace_parent == snapshot.trace_parent
    assert task.snapshot == snapshot


async def test_input_is_the_initial_input_before_any_task_completed(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "fetch", initial_input=b"order #1"))

    [task] = await find(store)

    assert task.input == b"order #1"


async def test_input_is_the_output_of_the_last_completed_task(store: Backend) -> None:
    completed_tasks = {"fetch": b"order", "price": b"42"}
    await store.save_snapshot(at_task("order-1", "charge", completed=completed_tasks, last_completed="fetch"))

    [task] = await find(store)

    assert task.input == b"order"


async def test_skips_a_candidate_without_input(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "fetch", initial_input=None))

    assert await find(store) == []


async def test_skips_a_task_already_among_the_completed_tasks(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "charge", completed={"fetch": b"order", "charge": b"receipt"}))

    assert await find(store) == []


StateBuilder = Callable[[str], pb.WorkflowSnapshot]
NOT_IN_PROGRESS: dict[str, StateBuilder] = {
    "Completed": completed,
    "Failed": failed,
    "Cancelled": cancelled,
    "Paused": paused,
}


@pytest.mark.parametrize("build", NOT_IN_PROGRESS.values(), ids=NOT_IN_PROGRESS.keys())
async def test_skips_instances_that_are_not_in_progress(store: Backend, build: StateBuilder) -> None:
    await store.save_snapshot(build("order-1"))

    assert await find(store) == []


@KINDS
async def test_skips_an_instance_with_a_pending_control_signal(store: Backend, kind: SignalKind) -> None:
    await store.save_snapshot(at_task("order-1"))
    await hold(store, "order-1", "branch")
    await store.store_signal("order-1", kind, signal_request())

    assert await find(store) == []


async def test_a_live_claim_hides_the_task(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "fetch"))
    await store.claim_task("order-1", task_id("fetch"), "worker-b", LONG_TTL)

    assert await find(store) == []


async def test_an_expired_claim_does_not_hide_the_task(store: Backend, clock: FakeClock) -> None:
    await store.save_snapshot(at_task("order-1", "fetch"))
    await store.claim_task("order-1", task_id("fetch"), "worker-b", timedelta(milliseconds=50))
    clock.advance(0.1)

    assert await found_instances(store) == ["order-1"]


async def test_a_claim_on_another_task_does_not_hide_the_task(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "fetch"))
    await store.claim_task("order-1", task_id("ship"), "worker-b", LONG_TTL)

    assert await found_instances(store) == ["order-1"]


async def test_find_available_tasks_does_not_claim(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "fetch"))

    await find(store)

    assert await store.claim_task("order-1", task_id("fetch"), "worker-b", LONG_TTL) is not None


async def test_skips_a_task_waiting_out_its_retry_backoff(store: Backend) -> None:
    await store.save_snapshot(with_retry(at_task("order-1", "fetch"), "fetch", next_retry_at=seconds_from_now(60)))

    assert await find(store) == []


async def test_offers_a_task_whose_retry_backoff_elapsed(store: Backend) -> None:
    await store.save_snapshot(with_retry(at_task("order-1", "fetch"), "fetch", next_retry_at=seconds_ago(1)))

    assert await found_instances(store) == ["order-1"]


async def test_a_worker_without_tags_takes_a_tagged_task(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", tags=["gpu"]))

    assert await found_instances(store, tags=()) == ["order-1"]


async def test_a_tagged_task_is_skipped_by_a_worker_lacking_one_of_its_tags(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", tags=["gpu", "eu"]))

    assert await find(store, tags=["gpu"]) == []


async def test_a_tagged_task_fits_a_worker_carrying_all_its_tags(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", tags=["gpu", "eu"]))

    assert await found_instances(store, tags=["eu", "gpu", "ssd"]) == ["order-1"]


async def test_an_untagged_task_fits_a_tagged_worker(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", tags=()))

    assert await found_instances(store, tags=["gpu"]) == ["order-1"]


# Rule 2: delays and signals released by time or events


async def test_a_delay_not_yet_due_is_left_waiting(store: Backend) -> None:
    waiting = at_delay("order-1", wake_at=seconds_from_now(60), next_task="ship")
    await store.save_snapshot(waiting)

    assert await find(store) == []
    assert await store.load_snapshot("order-1") == waiting


async def test_a_due_delay_advances_to_its_next_task(store: Backend) -> None:
    await store.save_snapshot(at_delay("order-1", wake_at=seconds_ago(1), next_task="ship", completed={"pack": b"box"}))

    [task] = await find(store)

    stored = await store.load_snapshot("order-1")
    assert stored.in_progress.position == task_position("ship")
    assert (task.task_id, task.input) == (task_id("ship"), b"box")
    assert task.snapshot == stored


async def test_a_due_delay_without_next_task_completes_with_the_delay_nodes_stored_result(store: Backend) -> None:
    await store.save_snapshot(
        at_delay("order-1", wake_at=seconds_ago(1), delay="cool-off", completed={"pack": b"box", "cool-off": b"rested"})
    )

    assert await find(store) == []

    stored = await store.load_snapshot("order-1")
    assert stored.WhichOneof("state") == "completed"
    assert stored.completed.final_output == b"rested"


async def test_a_due_delay_without_next_task_or_stored_result_completes_empty(store: Backend) -> None:
    await store.save_snapshot(at_delay("order-1", wake_at=seconds_ago(1), completed={"pack": b"box"}))

    await find(store)

    stored = await store.load_snapshot("order-1")
    assert stored.WhichOneof("state") == "completed"
    assert stored.completed.final_output == b""


@KINDS
async def test_a_due_delay_is_not_advanced_while_a_control_signal_is_pending(store: Backend, kind: SignalKind) -> None:
    waiting = at_delay("order-1", wake_at=seconds_ago(1), next_task="ship")
    await store.save_snapshot(waiting)
    await hold(store, "order-1", "branch")
    await store.store_signal("order-1", kind, signal_request())

    await find(store)

    assert await store.load_snapshot("order-1") == waiting


async def test_a_buffered_event_advances_the_signal_wait_to_its_next_task(store: Backend) -> None:
    await store.save_snapshot(at_signal("order-1", "approval", next_task="ship", completed={"pack": b"box"}))
    await store.send_event("order-1", "approval", b"approved by bob")

    [task] = await find(store)

    assert (task.task_id, task.input) == (task_id("ship"), b"approved by bob")
    stored = await store.load_snapshot("order-1")
    assert stored.in_progress.position == task_position("ship")
    assert await store.load_task_result("order-1", task_id("approval")) == b"approved by bob"
    assert await store.consume_event("order-1", "approval") is None


async def test_a_signal_wait_consumes_only_the_oldest_event(store: Backend) -> None:
    await store.save_snapshot(at_signal("order-1", "approval", next_task="ship"))
    await store.send_event("order-1", "approval", b"first")
    await store.send_event("order-1", "approval", b"second")

    [task] = await find(store)

    assert task.input == b"first"
    assert await store.consume_event("order-1", "approval") == b"second"


async def test_a_buffered_event_completes_a_signal_wait_without_next_task_with_its_payload(store: Backend) -> None:
    await store.save_snapshot(at_signal("order-1", "approval"))
    await store.send_event("order-1", "approval", b"approved by bob")

    await find(store)

    stored = await store.load_snapshot("order-1")
    assert stored.WhichOneof("state") == "completed"
    assert stored.completed.final_output == b"approved by bob"


async def test_a_timed_out_signal_wait_advances_with_an_empty_payload(store: Backend) -> None:
    await store.save_snapshot(at_signal("order-1", "approval", wake_at=seconds_ago(1), next_task="ship"))

    [task] = await find(store)

    assert (task.task_id, task.input) == (task_id("ship"), b"")
    assert await store.load_task_result("order-1", task_id("approval")) == b""


async def test_a_signal_wait_without_event_before_its_timeout_is_left_waiting(store: Backend) -> None:
    waiting = at_signal("order-1", "approval", wake_at=seconds_from_now(60), next_task="ship")
    await store.save_snapshot(waiting)
    await store.send_event("order-1", "other-signal", b"not for this wait")

    assert await find(store) == []
    assert await store.load_snapshot("order-1") == waiting


@KINDS
async def test_a_buffered_event_is_not_consumed_while_a_control_signal_is_pending(
    store: Backend, kind: SignalKind
) -> None:
    waiting = at_signal("order-1", "approval", next_task="ship")
    await store.save_snapshot(waiting)
    await hold(store, "order-1", "branch")
    await store.store_signal("order-1", kind, signal_request())
    await store.send_event("order-1", "approval", b"approved")

    await find(store)

    assert await store.load_snapshot("order-1") == waiting
    assert await store.consume_event("order-1", "approval") == b"approved"


# Rules 4 and 5: order and limit


async def test_orders_by_ascending_priority_with_absent_counting_as_three(store: Backend) -> None:
    moment = seconds_ago(1)
    await store.save_snapshot(at_task("low", priority=5, updated_at=moment))
    await store.save_snapshot(at_task("default", priority=None, updated_at=moment))
    await store.save_snapshot(at_task("urgent", priority=1, updated_at=moment))
    await store.save_snapshot(at_task("high", priority=2, updated_at=moment))
    await store.save_snapshot(at_task("lower", priority=4, updated_at=moment))

    assert await found_instances(store) == ["urgent", "high", "default", "lower", "low"]


async def test_aging_lets_a_long_waiting_low_priority_task_overtake_a_fresh_urgent_one(store: Backend) -> None:
    await store.save_snapshot(at_task("patient", priority=5, updated_at=seconds_ago(3600)))
    await store.save_snapshot(at_task("fresh", priority=1))

    assert await found_instances(store, aging_interval=timedelta(minutes=1)) == ["patient", "fresh"]
    assert await found_instances(store, aging_interval=timedelta(days=1)) == ["fresh", "patient"]


@pytest.mark.parametrize("aging_interval", [timedelta(0), timedelta(seconds=-5)], ids=["zero", "negative"])
async def test_a_zero_or_negative_aging_interval_counts_as_one_second(
    store: Backend, aging_interval: timedelta
) -> None:
    await store.save_snapshot(at_task("patient", priority=5, updated_at=seconds_ago(10)))
    await store.save_snapshot(at_task("fresh", priority=1))

    assert await found_instances(store, aging_interval=aging_interval) == ["patient", "fresh"]


async def test_tasks_this_worker_failed_last_come_after_the_others(store: Backend) -> None:
    moment = seconds_ago(1)
    retried = at_task("retried", priority=1, updated_at=moment)
    await store.save_snapshot(with_retry(retried, "fetch", next_retry_at=seconds_ago(1), last_failed_worker="worker-a"))
    await store.save_snapshot(at_task("other", priority=5, updated_at=moment))

    assert await found_instances(store, "worker-a") == ["other", "retried"]
    assert await found_instances(store, "worker-b") == ["retried", "other"]


async def test_limit_cuts_the_list_after_ordering(store: Backend) -> None:
    moment = seconds_ago(1)
    for instance_id, priority in (("third", 3), ("first", 1), ("fourth", 4), ("second", 2)):
        await store.save_snapshot(at_task(instance_id, priority=priority, updated_at=moment))

    assert await found_instances(store, limit=2) == ["first", "second"]


# find_hinted_task


async def test_find_hinted_task_returns_the_available_task_it_names(store: Backend) -> None:
    snapshot = at_task("order-1", "charge", completed={"fetch": b"order"})
    await store.save_snapshot(snapshot)

    task = await store.find_hinted_task(hint_for(snapshot, "charge"))

    assert task is not None
    assert (task.instance_id, task.task_id, task.input) == ("order-1", task_id("charge"), b"order")
    assert task.definition_hash == snapshot.definition_hash
    assert task.snapshot == snapshot


async def test_find_hinted_task_does_not_claim(store: Backend) -> None:
    snapshot = at_task("order-1", "charge")
    await store.save_snapshot(snapshot)

    await store.find_hinted_task(hint_for(snapshot, "charge"))

    assert await store.claim_task("order-1", task_id("charge"), "worker-b", LONG_TTL) is not None


async def test_find_hinted_task_returns_none_while_the_task_is_claimed(store: Backend) -> None:
    snapshot = at_task("order-1", "charge")
    await store.save_snapshot(snapshot)
    await store.claim_task("order-1", task_id("charge"), "worker-b", LONG_TTL)

    assert await store.find_hinted_task(hint_for(snapshot, "charge")) is None


@KINDS
async def test_find_hinted_task_returns_none_while_a_control_signal_is_pending(
    store: Backend, kind: SignalKind
) -> None:
    snapshot = at_task("order-1", "charge")
    await store.save_snapshot(snapshot)
    await hold(store, "order-1", "branch")
    await store.store_signal("order-1", kind, signal_request())

    assert await store.find_hinted_task(hint_for(snapshot, "charge")) is None


async def test_find_hinted_task_returns_none_once_the_instance_moved_on(store: Backend) -> None:
    snapshot = at_task("order-1", "charge")
    await store.save_snapshot(snapshot)
    await store.save_snapshot(at_task("order-1", "ship", completed={"charge": b"receipt"}))

    assert await store.find_hinted_task(hint_for(snapshot, "charge")) is None


async def test_find_hinted_task_returns_none_for_a_missing_instance(store: Backend) -> None:
    assert await store.find_hinted_task(hint_for(at_task("order-1", "charge"), "charge")) is None


async def test_due_instances_held_by_pending_requests_never_starve_the_others_of_their_advance(
    store: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's worth of due delays nobody may advance (a pause is pending on each) must not fill the batch."""
    monkeypatch.setattr(engine, "ADVANCE_BATCH", 4)
    for n in range(40):
        await store.save_snapshot(at_delay(f"held-{n}", wake_at=seconds_ago(1), next_task="ship"))
        await hold(store, f"held-{n}", "branch")
        await store.store_signal(f"held-{n}", PAUSE, signal_request())
    await store.save_snapshot(at_delay("free", wake_at=seconds_ago(1), next_task="ship"))

    tasks = await find(store)

    assert [task.instance_id for task in tasks] == ["free"]
    assert (await store.load_snapshot("held-0")).in_progress.position.HasField("at_delay")
