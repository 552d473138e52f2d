"""docs/behaviour.md RES (load_task_result) and the result retention of SNAP."""

from __future__ import annotations

import pytest

from sayiir_client.errors import NotFoundError
from sayiir_server.domain.model import CANCEL, PAUSE
from sayiir_server.domain.traits import Backend
from tests.contract.builders import at_task, cancelled, completed, failed, paused, signal_request, task_id

RESULTS = {"fetch": b"order", "charge": b"receipt"}


async def test_load_task_result_returns_the_output_while_in_progress(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "ship", completed=RESULTS))

    assert await store.load_task_result("order-1", task_id("fetch")) == b"order"
    assert await store.load_task_result("order-1", task_id("charge")) == b"receipt"


async def test_load_task_result_returns_an_output_recorded_by_save_task_result(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "fetch"))

    await store.save_task_result("order-1", task_id("fetch"), b"order")

    assert await store.load_task_result("order-1", task_id("fetch")) == b"order"


async def test_load_task_result_returns_none_for_a_task_that_never_ran(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "ship", completed=RESULTS))

    assert await store.load_task_result("order-1", task_id("ship")) is None


async def test_load_task_result_raises_not_found_for_a_missing_instance(store: Backend) -> None:
    with pytest.raises(NotFoundError):
        await store.load_task_result("order-1", task_id("fetch"))


async def test_load_task_result_answers_from_retained_results_after_completion(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "ship", completed=RESULTS))

    await store.save_snapshot(completed("order-1"))

    assert await store.load_task_result("order-1", task_id("fetch")) == b"order"
    assert await store.load_task_result("order-1", task_id("charge")) == b"receipt"
    assert await store.load_task_result("order-1", task_id("ship")) is None


async def test_load_task_result_answers_from_retained_results_after_failure(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "ship", completed=RESULTS))

    await store.save_snapshot(failed("order-1"))

    assert await store.load_task_result("order-1", task_id("charge")) == b"receipt"


async def test_results_recorded_by_save_task_result_are_retained_after_completion(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "fetch"))
    await store.save_task_result("order-1", task_id("fetch"), b"order")

    await store.save_snapshot(completed("order-1"))

    assert await store.load_task_result("order-1", task_id("fetch")) == b"order"


async def test_load_task_result_answers_from_a_paused_snapshot(store: Backend) -> None:
    await store.save_snapshot(paused("order-1", "ship", completed=RESULTS))

    assert await store.load_task_result("order-1", task_id("charge")) == b"receipt"


async def test_load_task_result_answers_from_a_cancelled_snapshot(store: Backend) -> None:
    await store.save_snapshot(cancelled("order-1", completed=RESULTS))

    assert await store.load_task_result("order-1", task_id("charge")) == b"receipt"


async def test_load_task_result_answers_after_check_and_pause(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "ship", completed=RESULTS))
    await store.store_signal("order-1", PAUSE, signal_request())
    await store.check_and_pause("order-1")

    assert await store.load_task_result("order-1", task_id("fetch")) == b"order"


async def test_load_task_result_answers_after_check_and_cancel(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "ship", completed=RESULTS))
    await store.store_signal("order-1", CANCEL, signal_request())
    await store.check_and_cancel("order-1", task_id("ship"))

    assert await store.load_task_result("order-1", task_id("fetch")) == b"order"


async def test_delete_snapshot_drops_retained_results(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "ship", completed=RESULTS))
    await store.save_snapshot(completed("order-1"))

    await store.delete_snapshot("order-1")

    with pytest.raises(NotFoundError):
        await store.load_task_result("order-1", task_id("fetch"))
    await store.save_snapshot(completed("order-1"))
    assert await store.load_task_result("order-1", task_id("fetch")) is None
