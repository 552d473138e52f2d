"""docs/behaviour.md SIG: cancel and pause signals, external events, and the check-and-apply composites."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sayiir_client.errors import CannotCancelError, CannotPauseError, NotFoundError
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import CANCEL, PAUSE, SignalKind, utc_now
from sayiir_server.domain.signals import validate_signal_allowed
from sayiir_server.domain.traits import Backend
from tests.contract.builders import (
    assert_between,
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
    with_deadline,
)
from tests.contract.runs import hold

StateBuilder = Callable[[str], pb.WorkflowSnapshot]
KINDS = pytest.mark.parametrize("kind", [CANCEL, PAUSE], ids=["cancel", "pause"])
CANCEL_REFUSED: dict[str, StateBuilder] = {"Completed": completed, "Failed": failed}
PAUSE_REFUSED: dict[str, StateBuilder] = {"Completed": completed, "Failed": failed, "Cancelled": cancelled}


async def _pending_on_finished_instance(store: Backend, kind: SignalKind) -> pb.SignalRequest:
    """A request stored while InProgress, left pending after the instance completed."""
    await store.save_snapshot(at_task("order-1"))
    request = signal_request()
    await hold(store, "order-1")
    await store.store_signal("order-1", kind, request)
    await store.save_snapshot(completed("order-1"))
    return request


# store_signal / get_signal / clear_signal


@KINDS
async def test_store_signal_raises_not_found_without_snapshot(store: Backend, kind: SignalKind) -> None:
    with pytest.raises(NotFoundError):
        await store.store_signal("order-1", kind, signal_request())


@KINDS
async def test_store_signal_stores_the_request_for_an_in_progress_instance(store: Backend, kind: SignalKind) -> None:
    await store.save_snapshot(at_task("order-1"))
    request = signal_request("stop", "alice")

    await hold(store, "order-1")
    await store.store_signal("order-1", kind, request)

    assert await store.get_signal("order-1", kind) == request


@KINDS
async def test_store_signal_replaces_an_earlier_request_of_the_same_kind(store: Backend, kind: SignalKind) -> None:
    await store.save_snapshot(at_task("order-1"))
    await hold(store, "order-1")
    await store.store_signal("order-1", kind, signal_request("first", "alice"))
    second = signal_request("second", "bob")

    await store.store_signal("order-1", kind, second)

    assert await store.get_signal("order-1", kind) == second


@pytest.mark.parametrize("build", CANCEL_REFUSED.values(), ids=CANCEL_REFUSED.keys())
async def test_store_cancel_raises_cannot_cancel_when_completed_or_failed(store: Backend, build: StateBuilder) -> None:
    await store.save_snapshot(build("order-1"))

    with pytest.raises(CannotCancelError):
        await store.store_signal("order-1", CANCEL, signal_request())
    assert await store.get_signal("order-1", CANCEL) is None


async def test_store_cancel_is_ignored_when_already_cancelled(store: Backend) -> None:
    await store.save_snapshot(cancelled("order-1"))

    await store.store_signal("order-1", CANCEL, signal_request())

    assert await store.get_signal("order-1", CANCEL) is None


async def test_store_cancel_is_stored_for_a_paused_instance(store: Backend) -> None:
    await store.save_snapshot(paused("order-1"))
    request = signal_request()

    await store.store_signal("order-1", CANCEL, request)

    assert await store.get_signal("order-1", CANCEL) == request


@pytest.mark.parametrize("build", PAUSE_REFUSED.values(), ids=PAUSE_REFUSED.keys())
async def test_store_pause_raises_cannot_pause_when_completed_failed_or_cancelled(
    store: Backend, build: StateBuilder
) -> None:
    await store.save_snapshot(build("order-1"))

    with pytest.raises(CannotPauseError):
        await store.store_signal("order-1", PAUSE, signal_request())
    assert await store.get_signal("order-1", PAUSE) is None


async def test_store_pause_is_ignored_when_already_paused(store: Backend) -> None:
    await store.save_snapshot(paused("order-1"))

    await store.store_signal("order-1", PAUSE, signal_request())

    assert await store.get_signal("order-1", PAUSE) is None


@KINDS
async def test_get_signal_returns_none_without_a_request(store: Backend, kind: SignalKind) -> None:
    await store.save_snapshot(at_task("order-1"))

    assert await store.get_signal("order-1", kind) is None


@KINDS
async def test_clear_signal_removes_the_pending_request(store: Backend, kind: SignalKind) -> None:
    await store.save_snapshot(at_task("order-1"))
    await hold(store, "order-1")
    await store.store_signal("order-1", kind, signal_request())

    await store.clear_signal("order-1", kind)

    assert await store.get_signal("order-1", kind) is None


@KINDS
async def test_clear_signal_is_never_an_error(store: Backend, kind: SignalKind) -> None:
    await store.save_snapshot(at_task("order-1"))

    await store.clear_signal("order-1", kind)
    await store.clear_signal("no-such-order", kind)

    assert await store.get_signal("order-1", kind) is None


async def test_cancel_and_pause_requests_are_independent(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1"))
    cancel = signal_request("cancel it")
    await hold(store, "order-1")
    await store.store_signal("order-1", CANCEL, cancel)
    assert await store.get_signal("order-1", PAUSE) is None

    pause = signal_request("pause it")
    await store.store_signal("order-1", PAUSE, pause)
    await store.clear_signal("order-1", PAUSE)

    assert await store.get_signal("order-1", CANCEL) == cancel
    assert await store.get_signal("order-1", PAUSE) is None


# events


async def test_consume_event_returns_payloads_oldest_first(store: Backend) -> None:
    for payload in (b"one", b"two", b"three"):
        await store.send_event("order-1", "approval", payload)

    consumed = [await store.consume_event("order-1", "approval") for _ in range(3)]

    assert consumed == [b"one", b"two", b"three"]
    assert await store.consume_event("order-1", "approval") is None


async def test_consume_event_returns_none_when_nothing_was_sent(store: Backend) -> None:
    assert await store.consume_event("order-1", "approval") is None


async def test_events_are_isolated_by_signal_name(store: Backend) -> None:
    await store.send_event("order-1", "approval", b"approved")

    assert await store.consume_event("order-1", "shipment") is None
    assert await store.consume_event("order-1", "approval") == b"approved"


async def test_events_are_isolated_by_instance(store: Backend) -> None:
    await store.send_event("order-1", "approval", b"approved")

    assert await store.consume_event("order-2", "approval") is None
    assert await store.consume_event("order-1", "approval") == b"approved"


async def test_send_event_is_accepted_for_a_missing_instance(store: Backend) -> None:
    await store.send_event("not-started-yet", "approval", b"early")

    assert await store.consume_event("not-started-yet", "approval") == b"early"


async def test_send_event_is_accepted_for_a_terminal_instance(store: Backend) -> None:
    await store.save_snapshot(completed("order-1"))

    await store.send_event("order-1", "approval", b"late")

    assert await store.consume_event("order-1", "approval") == b"late"


async def test_send_event_keeps_an_empty_payload(store: Backend) -> None:
    await store.send_event("order-1", "ping", b"")

    assert await store.consume_event("order-1", "ping") == b""


# check_and_cancel


async def test_check_and_cancel_applies_a_pending_cancel(store: Backend) -> None:
    await store.save_snapshot(with_deadline(at_task("order-1", "charge", completed={"fetch": b"order"}), "charge"))
    await hold(store, "order-1", "charge")
    await store.store_signal("order-1", CANCEL, signal_request("fraud suspected", "risk-team"))
    before = utc_now()

    applied = await store.check_and_cancel("order-1", task_id("charge"))

    after = utc_now()
    assert applied is True
    snapshot = await store.load_snapshot("order-1")
    assert snapshot.WhichOneof("state") == "cancelled"
    assert snapshot.cancelled.reason == "fraud suspected"
    assert snapshot.cancelled.cancelled_by == "risk-team"
    assert_between(snapshot.cancelled.cancelled_at, before, after)
    assert list(snapshot.cancelled.completed_tasks) == task_results({"fetch": b"order"})
    assert snapshot.cancelled.interrupted_at_task == task_id("charge")
    assert not snapshot.HasField("task_deadline")
    assert await store.get_signal("order-1", CANCEL) is None


async def test_check_and_cancel_without_interrupted_task_records_none(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1"))
    await hold(store, "order-1")
    await store.store_signal("order-1", CANCEL, signal_request())

    assert await store.check_and_cancel("order-1") is True

    assert not (await store.load_snapshot("order-1")).cancelled.HasField("interrupted_at_task")


async def test_check_and_cancel_returns_false_without_a_pending_cancel(store: Backend) -> None:
    snapshot = at_task("order-1")
    await store.save_snapshot(snapshot)

    assert await store.check_and_cancel("order-1") is False
    assert await store.load_snapshot("order-1") == snapshot


async def test_check_and_cancel_returns_false_when_not_in_progress_and_keeps_the_request(store: Backend) -> None:
    request = await _pending_on_finished_instance(store, CANCEL)

    assert await store.check_and_cancel("order-1") is False

    assert (await store.load_snapshot("order-1")).WhichOneof("state") == "completed"
    assert await store.get_signal("order-1", CANCEL) == request


async def test_check_and_cancel_returns_false_while_paused_and_keeps_the_request(store: Backend) -> None:
    await store.save_snapshot(paused("order-1"))
    request = signal_request()
    await store.store_signal("order-1", CANCEL, request)

    assert await store.check_and_cancel("order-1") is False

    assert (await store.load_snapshot("order-1")).WhichOneof("state") == "paused"
    assert await store.get_signal("order-1", CANCEL) == request


# check_and_pause


async def test_check_and_pause_applies_a_pending_pause(store: Backend) -> None:
    running = at_task("order-1", "charge", completed={"fetch": b"order", "price": b"42"}, last_completed="price")
    await store.save_snapshot(with_deadline(running, "charge"))
    await hold(store, "order-1", "charge")
    await store.store_signal("order-1", PAUSE, signal_request("maintenance window", "ops"))
    before = utc_now()

    applied = await store.check_and_pause("order-1")

    after = utc_now()
    assert applied is True
    snapshot = await store.load_snapshot("order-1")
    assert snapshot.WhichOneof("state") == "paused"
    assert snapshot.paused.reason == "maintenance window"
    assert snapshot.paused.paused_by == "ops"
    assert_between(snapshot.paused.paused_at, before, after)
    assert snapshot.paused.position == task_position("charge")
    assert list(snapshot.paused.completed_tasks) == task_results({"fetch": b"order", "price": b"42"})
    assert snapshot.paused.last_completed_task_id == task_id("price")
    assert not snapshot.HasField("task_deadline")
    assert await store.get_signal("order-1", PAUSE) is None


async def test_check_and_pause_keeps_a_waiting_position(store: Backend) -> None:
    waiting = at_signal("order-1", "approval")
    await store.save_snapshot(waiting)
    await hold(store, "order-1")
    await store.store_signal("order-1", PAUSE, signal_request())

    assert await store.check_and_pause("order-1") is True

    assert (await store.load_snapshot("order-1")).paused.position == waiting.in_progress.position


async def test_check_and_pause_returns_false_without_a_pending_pause(store: Backend) -> None:
    snapshot = at_task("order-1")
    await store.save_snapshot(snapshot)

    assert await store.check_and_pause("order-1") is False
    assert await store.load_snapshot("order-1") == snapshot


async def test_check_and_pause_returns_false_when_not_in_progress_and_keeps_the_request(store: Backend) -> None:
    request = await _pending_on_finished_instance(store, PAUSE)

    assert await store.check_and_pause("order-1") is False

    assert (await store.load_snapshot("order-1")).WhichOneof("state") == "completed"
    assert await store.get_signal("order-1", PAUSE) == request


# check_control_signals


async def test_check_control_signals_applies_cancel_before_pause(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "charge"))
    await hold(store, "order-1", "charge")
    await store.store_signal("order-1", PAUSE, signal_request("pause it"))
    await store.store_signal("order-1", CANCEL, signal_request("cancel it"))

    signal = await store.check_control_signals("order-1", task_id("charge"))

    assert signal == enums.CONTROL_SIGNAL_CANCELLED
    snapshot = await store.load_snapshot("order-1")
    assert snapshot.cancelled.reason == "cancel it"
    assert snapshot.cancelled.interrupted_at_task == task_id("charge")


async def test_check_control_signals_applies_a_lone_pause(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1"))
    await hold(store, "order-1")
    await store.store_signal("order-1", PAUSE, signal_request("pause it"))

    signal = await store.check_control_signals("order-1")

    assert signal == enums.CONTROL_SIGNAL_PAUSED
    assert (await store.load_snapshot("order-1")).paused.reason == "pause it"


async def test_check_control_signals_returns_none_without_requests(store: Backend) -> None:
    snapshot = at_task("order-1")
    await store.save_snapshot(snapshot)

    assert await store.check_control_signals("order-1") is None
    assert await store.load_snapshot("order-1") == snapshot


# unpause


async def test_unpause_resumes_the_saved_position_and_results(store: Backend) -> None:
    await store.save_snapshot(paused("order-1", "charge", completed={"fetch": b"order", "price": b"42"}))

    resumed = await store.unpause("order-1")

    assert resumed.WhichOneof("state") == "in_progress"
    assert resumed.in_progress.position == task_position("charge")
    assert list(resumed.in_progress.completed_tasks) == task_results({"fetch": b"order", "price": b"42"})
    assert resumed.in_progress.last_completed_task_id == task_id("price")
    assert await store.load_snapshot("order-1") == resumed


async def test_unpause_after_check_and_pause_restores_the_running_state(store: Backend) -> None:
    running = at_task("order-1", "charge", completed={"fetch": b"order"})
    await store.save_snapshot(running)
    await store.store_signal("order-1", PAUSE, signal_request())
    await store.check_and_pause("order-1")

    resumed = await store.unpause("order-1")

    assert resumed.in_progress == running.in_progress


async def test_unpause_raises_cannot_pause_when_not_paused(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1"))

    with pytest.raises(CannotPauseError) as raised:
        await store.unpause("order-1")
    assert "InProgress" in str(raised.value)


async def test_unpause_raises_cannot_pause_when_completed(store: Backend) -> None:
    await store.save_snapshot(completed("order-1"))

    with pytest.raises(CannotPauseError):
        await store.unpause("order-1")
    assert (await store.load_snapshot("order-1")).WhichOneof("state") == "completed"


async def test_unpause_raises_not_found_when_missing(store: Backend) -> None:
    with pytest.raises(NotFoundError):
        await store.unpause("order-1")


# validate_signal_allowed (a pure rule: no store involved)


@pytest.mark.parametrize("status", ["Completed", "Failed"])
def test_validate_signal_allowed_refuses_cancel_for_finished_statuses(status: str) -> None:
    with pytest.raises(CannotCancelError):
        validate_signal_allowed(status, CANCEL)


@pytest.mark.parametrize("status", ["Completed", "Failed", "Cancelled"])
def test_validate_signal_allowed_refuses_pause_for_terminal_statuses(status: str) -> None:
    with pytest.raises(CannotPauseError):
        validate_signal_allowed(status, PAUSE)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        pytest.param("InProgress", CANCEL, id="cancel-InProgress"),
        pytest.param("Paused", CANCEL, id="cancel-Paused"),
        pytest.param("Cancelled", CANCEL, id="cancel-Cancelled"),
        pytest.param("InProgress", PAUSE, id="pause-InProgress"),
        pytest.param("Paused", PAUSE, id="pause-Paused"),
    ],
)
def test_validate_signal_allowed_accepts_the_other_statuses(status: str, kind: SignalKind) -> None:
    validate_signal_allowed(status, kind)


@KINDS
def test_validate_signal_allowed_accepts_an_unknown_status(kind: SignalKind) -> None:
    validate_signal_allowed("Hibernating", kind)
