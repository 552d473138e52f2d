"""Where this service differs from sayiir 1.0 on purpose (docs/behaviour.md, "Differences from sayiir 1.0").

SIG-9: a cancel or pause nobody holds back applies at once. SIG-2.5: an event for a waiting run advances it
in SendEvent and announces the task. WAKE-5: a due time wakes waiting workers without a find. SNAP-1.4: a
save never replaces a final state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from sayiir_client.errors import FinalStateError
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.dispatch import signal_task_id
from sayiir_server.domain.model import CANCEL, PAUSE, find_result, state_of
from sayiir_server.domain.traits import Backend
from tests.contract.builders import (
    at_delay,
    at_signal,
    at_task,
    cancelled,
    completed,
    failed,
    paused,
    signal_request,
    task_id,
    task_position,
    task_results,
)
from tests.contract.runs import HOLDER, hold, start_run
from tests.contract.test_wakeups import hint_while
from tests.support.clock import FakeClock

StateBuilder = Callable[[str], pb.WorkflowSnapshot]
FINAL: dict[str, StateBuilder] = {"Completed": completed, "Failed": failed, "Cancelled": cancelled}
TTL = timedelta(seconds=30)
AGING = timedelta(seconds=1)
HEARD_WITHIN = timedelta(seconds=10)
"""How long a waiter may wait for a due time to wake it: the timer re-reads every second."""


# SIG-9: requests nobody holds back


@pytest.mark.parametrize(
    "waiting",
    [
        at_task("order-1", "charge", completed={"fetch": b"order"}),
        at_signal("order-1", "approval", next_task="ship", completed={"fetch": b"order"}),
    ],
    ids=["ready-unclaimed", "at-signal"],
)
async def test_sig_9_1_a_cancel_for_a_run_nobody_holds_applies_at_once(
    store: Backend, waiting: pb.WorkflowSnapshot
) -> None:
    await store.save_snapshot(waiting)

    await store.store_signal("order-1", CANCEL, signal_request("never mind", "operator"))

    snapshot = await store.load_snapshot("order-1")
    assert state_of(snapshot) == "cancelled"
    assert (snapshot.cancelled.reason, snapshot.cancelled.cancelled_by) == ("never mind", "operator")
    assert list(snapshot.cancelled.completed_tasks) == task_results({"fetch": b"order"})
    assert not snapshot.cancelled.HasField("interrupted_at_task")
    assert await store.get_signal("order-1", CANCEL) is None
    assert await store.check_and_cancel("order-1") is False


async def test_sig_9_1_a_cancel_for_a_run_parked_at_a_delay_applies_at_once(store: Backend, clock: FakeClock) -> None:
    await store.save_snapshot(at_delay("order-1", wake_at=clock.now + timedelta(days=7), next_task="ship"))

    await store.store_signal("order-1", CANCEL, signal_request())

    assert state_of(await store.load_snapshot("order-1")) == "cancelled"


async def test_sig_9_1_a_pause_for_a_run_nobody_holds_applies_at_once_keeping_its_position(store: Backend) -> None:
    waiting = at_signal("order-1", "approval", next_task="ship")
    await store.save_snapshot(waiting)

    await store.store_signal("order-1", PAUSE, signal_request("maintenance", "ops"))

    snapshot = await store.load_snapshot("order-1")
    assert state_of(snapshot) == "paused"
    assert snapshot.paused.position == waiting.in_progress.position
    assert (snapshot.paused.reason, snapshot.paused.paused_by) == ("maintenance", "ops")
    assert await store.get_signal("order-1", PAUSE) is None


async def test_sig_9_1_an_expired_claim_holds_nothing_back(store: Backend, clock: FakeClock) -> None:
    await store.save_snapshot(at_task("order-1", "charge"))
    assert await store.claim_task("order-1", task_id("charge"), "gone-worker", TTL) is not None
    clock.advance(TTL)

    await store.store_signal("order-1", CANCEL, signal_request())

    assert state_of(await store.load_snapshot("order-1")) == "cancelled"


async def test_sig_9_2_a_request_for_a_held_run_stays_pending_for_its_holder(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "charge"))
    await hold(store, "order-1", "charge")
    request = signal_request()

    await store.store_signal("order-1", CANCEL, request)

    assert state_of(await store.load_snapshot("order-1")) == "in_progress"
    assert await store.get_signal("order-1", CANCEL) == request
    assert await store.check_control_signals("order-1", task_id("charge")) == enums.CONTROL_SIGNAL_CANCELLED
    assert (await store.load_snapshot("order-1")).cancelled.interrupted_at_task == task_id("charge")


async def test_sig_9_2_a_request_held_back_applies_when_its_claim_is_released(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "charge"))
    await hold(store, "order-1", "charge")
    await store.store_signal("order-1", CANCEL, signal_request())

    await store.release_task_claim("order-1", task_id("charge"), HOLDER)

    assert state_of(await store.load_snapshot("order-1")) == "cancelled"
    assert await store.get_signal("order-1", CANCEL) is None


async def test_sig_9_5_a_request_a_dead_holders_claim_held_back_applies_once_dispatch_drops_the_claim(
    store: Backend, clock: FakeClock
) -> None:
    await store.save_snapshot(at_task("order-1", "charge"))
    assert await store.claim_task("order-1", task_id("charge"), HOLDER, timedelta(seconds=30)) is not None
    await store.store_signal("order-1", CANCEL, signal_request())
    assert state_of(await store.load_snapshot("order-1")) == "in_progress"
    clock.advance(31)  # the holder died: its claim expires unreleased

    await store.find_available_tasks("worker-b", 10, timedelta(seconds=60), [])

    assert state_of(await store.load_snapshot("order-1")) == "cancelled"
    assert await store.get_signal("order-1", CANCEL) is None


async def test_sig_9_2_a_request_held_back_applies_when_complete_task_ends_the_claim(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "charge"))
    await hold(store, "order-1", "charge")
    await store.store_signal("order-1", PAUSE, signal_request())
    next_task = at_task("order-1", "ship", completed={"charge": b"ok"})

    saved = await store.complete_task(next_task, task_id("charge"), HOLDER)

    assert saved is True
    snapshot = await store.load_snapshot("order-1")
    assert state_of(snapshot) == "paused"
    assert snapshot.paused.position == task_position("ship")


async def test_sig_9_4_unpause_applies_a_cancel_stored_while_paused(store: Backend) -> None:
    await store.save_snapshot(paused("order-1", "charge"))
    await store.store_signal("order-1", CANCEL, signal_request("stop it"))

    resumed = await store.unpause("order-1")

    assert state_of(resumed) == "cancelled"
    assert resumed.cancelled.reason == "stop it"
    assert await store.load_snapshot("order-1") == resumed
    assert await store.get_signal("order-1", CANCEL) is None


# SIG-2.5: an event for a waiting run advances it at once


async def test_sig_2_5_send_event_advances_a_run_waiting_for_it_at_once(store: Backend) -> None:
    await store.save_snapshot(at_signal("order-1", "approval", next_task="ship", completed={"pack": b"box"}))

    await store.send_event("order-1", "approval", b"approved by bob")

    snapshot = await store.load_snapshot("order-1")
    assert snapshot.in_progress.position == task_position("ship")
    recorded = find_result(snapshot.in_progress.completed_tasks, signal_task_id("approval"))
    assert recorded is not None
    assert recorded.output == b"approved by bob"
    assert snapshot.in_progress.last_completed_task_id == signal_task_id("approval")
    assert await store.consume_event("order-1", "approval") is None


async def test_sig_2_5_send_event_completes_a_wait_without_next_task_with_its_payload(store: Backend) -> None:
    await store.save_snapshot(at_signal("order-1", "approval"))

    await store.send_event("order-1", "approval", b"approved")

    snapshot = await store.load_snapshot("order-1")
    assert snapshot.completed.final_output == b"approved"


async def test_sig_2_5_send_event_announces_the_task_it_made_ready(store: Backend) -> None:
    async def approve(n: int) -> None:
        await store.save_snapshot(at_signal(f"order-{n}", "approval", next_task="ship"))
        await store.send_event(f"order-{n}", "approval", b"ok")

    hint = await hint_while(store.wait_for_wakeup(HEARD_WITHIN), approve)

    assert hint is not None
    assert hint.instance_id.startswith("order-")
    assert hint.task_id == task_id("ship")


async def test_sig_2_5_an_event_under_another_name_is_only_buffered(store: Backend) -> None:
    waiting = at_signal("order-1", "approval", next_task="ship")
    await store.save_snapshot(waiting)

    await store.send_event("order-1", "refund", b"not awaited")

    assert await store.load_snapshot("order-1") == waiting
    assert await store.consume_event("order-1", "refund") == b"not awaited"


async def test_sig_2_5_an_event_for_a_run_with_a_pending_request_is_only_buffered(store: Backend) -> None:
    waiting = at_signal("order-1", "approval", next_task="ship")
    await store.save_snapshot(waiting)
    await hold(store, "order-1", "branch")
    await store.store_signal("order-1", PAUSE, signal_request())

    await store.send_event("order-1", "approval", b"approved")

    assert await store.load_snapshot("order-1") == waiting
    assert await store.consume_event("order-1", "approval") == b"approved"


# WAKE-5: time wakes workers


@pytest.mark.due_timer
async def test_wake_5_1_a_delay_falling_due_wakes_a_waiting_worker_without_a_find(
    store: Backend, clock: FakeClock
) -> None:
    async def delay_then_let_time_pass(n: int) -> None:
        await store.save_snapshot(at_delay(f"order-{n}", wake_at=clock.now + timedelta(seconds=5), next_task="ship"))
        clock.advance(5)

    hint = await _heard(store, delay_then_let_time_pass)

    assert hint is not None
    assert hint.task_id == task_id("ship")
    assert (await store.load_snapshot(hint.instance_id)).in_progress.position == task_position("ship")


@pytest.mark.due_timer
async def test_wake_5_1_a_signal_timeout_falling_due_wakes_a_waiting_worker_without_a_find(
    store: Backend, clock: FakeClock
) -> None:
    async def wait_then_time_out(n: int) -> None:
        due = clock.now + timedelta(seconds=5)
        await store.save_snapshot(at_signal(f"order-{n}", "approval", wake_at=due, next_task="escalate"))
        clock.advance(5)

    hint = await _heard(store, wait_then_time_out)

    assert hint is not None
    assert hint.task_id == task_id("escalate")
    assert await store.load_task_result(hint.instance_id, signal_task_id("approval")) == b""


@pytest.mark.due_timer
async def test_wake_5_1_a_due_time_held_back_by_a_pending_request_wakes_nobody(
    store: Backend, clock: FakeClock
) -> None:
    waiting = at_delay("order-1", wake_at=clock.now + timedelta(seconds=1), next_task="ship")
    await store.save_snapshot(waiting)
    await hold(store, "order-1", "branch")
    await store.store_signal("order-1", PAUSE, signal_request())
    clock.advance(1)

    assert await store.wait_for_wakeup(timedelta(seconds=1.5)) is None
    assert await store.load_snapshot("order-1") == waiting


async def _heard(store: Backend, trigger: Callable[[int], Awaitable[None]]) -> pb.TaskWakeupHint | None:
    """Trigger rounds (one new due time each) until a waiter that never finds hears a hint, up to HEARD_WITHIN."""
    waiter = asyncio.ensure_future(store.wait_for_wakeup(HEARD_WITHIN))
    try:
        for round_number in range(int(HEARD_WITHIN.total_seconds() / ROUND_SECONDS)):
            await trigger(round_number)
            done, _ = await asyncio.wait({waiter}, timeout=ROUND_SECONDS)
            if done:
                return waiter.result()
        return None
    finally:
        if not waiter.done():
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)


ROUND_SECONDS = 0.5


# SNAP-1.4: final states are final


@pytest.mark.parametrize("build", FINAL.values(), ids=FINAL.keys())
async def test_snap_1_4_a_save_over_a_final_state_is_refused_and_writes_nothing(
    store: Backend, build: StateBuilder
) -> None:
    final = build("order-1")
    await store.save_snapshot(final)

    with pytest.raises(FinalStateError) as refused:
        await store.save_snapshot(at_task("order-1", "charge"))

    assert (
        refused.value.state == {"completed": "Completed", "failed": "Failed", "cancelled": "Cancelled"}[state_of(final)]
    )
    assert await store.load_snapshot("order-1") == final


@pytest.mark.parametrize("build", FINAL.values(), ids=FINAL.keys())
async def test_snap_1_4_a_fenced_save_over_a_final_state_is_refused_and_keeps_the_claim(
    store: Backend, build: StateBuilder
) -> None:
    await store.save_snapshot(at_task("order-1", "charge"))
    await hold(store, "order-1", "charge")
    final = build("order-1")
    assert await store.save_snapshot_fenced(final, task_id("charge"), HOLDER) is True

    with pytest.raises(FinalStateError):
        await store.save_snapshot_fenced(at_task("order-1", "ship"), task_id("charge"), HOLDER)

    assert await store.load_snapshot("order-1") == final
    await store.release_task_claim("order-1", task_id("charge"), HOLDER)  # still held: no NotFoundError


@pytest.mark.parametrize("build", FINAL.values(), ids=FINAL.keys())
async def test_snap_1_4_complete_task_over_a_final_state_is_refused_and_keeps_the_claim(
    store: Backend, build: StateBuilder
) -> None:
    final = build("order-1")
    await store.save_snapshot(final)
    await hold(store, "order-1", "charge")

    with pytest.raises(FinalStateError):
        await store.complete_task(completed("order-1", b"late"), task_id("charge"), HOLDER)

    assert await store.load_snapshot("order-1") == final
    await store.release_task_claim("order-1", task_id("charge"), HOLDER)


async def test_snap_1_4_a_bulk_save_with_one_final_row_writes_none(store: Backend) -> None:
    if not hasattr(store, "save_snapshots"):
        pytest.skip("bulk saves are the engine's, not an RPC")
    await store.save_snapshot(completed("order-2"))

    with pytest.raises(FinalStateError):
        await store.save_snapshots([at_task("order-1"), at_task("order-2")])

    assert await store.list_snapshots() == ["order-2"]


async def test_snap_1_4_terminate_existing_still_replaces_a_final_run(store: Backend) -> None:
    await store.save_snapshot(completed("order-1"))

    outcome = await start_run(store, "order-1", policy=enums.CONFLICT_POLICY_TERMINATE_EXISTING)

    assert outcome.WhichOneof("outcome") == "fresh"
    assert state_of(await store.load_snapshot("order-1")) == "in_progress"


async def test_snap_1_4_a_deleted_final_run_may_be_saved_again(store: Backend) -> None:
    await store.save_snapshot(failed("order-1"))
    await store.delete_snapshot("order-1")

    await store.save_snapshot(at_task("order-1"))

    assert state_of(await store.load_snapshot("order-1")) == "in_progress"
