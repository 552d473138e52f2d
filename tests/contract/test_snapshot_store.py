"""docs/behaviour.md SNAP: the snapshot store."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sayiir_client.errors import NotFoundError
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import CANCEL, PAUSE, utc_now
from sayiir_server.domain.traits import Backend
from tests.contract.builders import (
    assert_between,
    at_task,
    cancelled,
    completed,
    failed,
    paused,
    seconds_ago,
    signal_request,
    task_id,
)
from tests.contract.runs import hold


async def test_load_snapshot_returns_the_saved_snapshot(store: Backend) -> None:
    snapshot = at_task("order-1", "charge", completed={"fetch": b"order"}, priority=2, tags=["eu"])
    snapshot.trace_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    await store.save_snapshot(snapshot)

    assert await store.load_snapshot("order-1") == snapshot


async def test_save_snapshot_overwrites_by_instance_id(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "fetch"))
    newer = at_task("order-1", "charge", completed={"fetch": b"order"})

    await store.save_snapshot(newer)

    assert await store.load_snapshot("order-1") == newer
    assert await store.list_snapshots() == ["order-1"]


async def test_load_snapshot_raises_not_found_when_missing(store: Backend) -> None:
    with pytest.raises(NotFoundError):
        await store.load_snapshot("order-1")


async def test_delete_snapshot_removes_the_snapshot(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1"))

    await store.delete_snapshot("order-1")

    with pytest.raises(NotFoundError):
        await store.load_snapshot("order-1")
    assert await store.list_snapshots() == []


async def test_delete_snapshot_raises_not_found_when_missing(store: Backend) -> None:
    with pytest.raises(NotFoundError):
        await store.delete_snapshot("order-1")


async def test_delete_snapshot_leaves_pending_signals(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1"))
    cancel, pause = signal_request("cancel it"), signal_request("pause it")
    await hold(store, "order-1")
    await store.store_signal("order-1", CANCEL, cancel)
    await store.store_signal("order-1", PAUSE, pause)

    await store.delete_snapshot("order-1")

    assert await store.get_signal("order-1", CANCEL) == cancel
    assert await store.get_signal("order-1", PAUSE) == pause


async def test_list_snapshots_returns_every_instance_id(store: Backend) -> None:
    for instance_id in ("order-2", "order-1", "refund-1"):
        await store.save_snapshot(at_task(instance_id))

    assert sorted(await store.list_snapshots()) == ["order-1", "order-2", "refund-1"]


async def test_list_snapshots_is_empty_without_snapshots(store: Backend) -> None:
    assert await store.list_snapshots() == []


async def test_list_snapshots_page_returns_the_first_ids_in_ascending_order(store: Backend) -> None:
    for instance_id in ("c", "a", "e", "b", "d"):
        await store.save_snapshot(at_task(instance_id))

    assert await store.list_snapshots_page(None, 3) == ["a", "b", "c"]


async def test_list_snapshots_page_continues_after_the_given_id(store: Backend) -> None:
    for instance_id in ("c", "a", "e", "b", "d"):
        await store.save_snapshot(at_task(instance_id))

    assert await store.list_snapshots_page("b", 2) == ["c", "d"]
    assert await store.list_snapshots_page("d", 2) == ["e"]
    assert await store.list_snapshots_page("e", 2) == []


async def test_list_snapshots_page_walks_every_id_exactly_once(store: Backend) -> None:
    expected = sorted(f"order-{n:03}" for n in range(25))
    for instance_id in reversed(expected):
        await store.save_snapshot(at_task(instance_id))

    walked: list[str] = []
    after: str | None = None
    while page := await store.list_snapshots_page(after, 10):
        assert len(page) <= 10
        walked.extend(page)
        after = page[-1]

    assert walked == expected


async def test_save_task_result_records_output_while_in_progress(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "charge", completed={"fetch": b"order"}, updated_at=seconds_ago(3600)))
    before = utc_now()

    await store.save_task_result("order-1", task_id("charge"), b"receipt")

    after = utc_now()
    running = (await store.load_snapshot("order-1")).in_progress
    outputs = {result.task_id: result.output for result in running.completed_tasks}
    assert outputs == {task_id("fetch"): b"order", task_id("charge"): b"receipt"}
    assert running.last_completed_task_id == task_id("charge")
    assert_between((await store.load_snapshot("order-1")).updated_at, before, after)


StateBuilder = Callable[[str], pb.WorkflowSnapshot]
NOT_IN_PROGRESS: dict[str, StateBuilder] = {
    "Completed": completed,
    "Failed": failed,
    "Cancelled": lambda instance_id: cancelled(instance_id, completed={"fetch": b"order"}),
    "Paused": lambda instance_id: paused(instance_id, "charge", completed={"fetch": b"order"}),
}


@pytest.mark.parametrize("build", NOT_IN_PROGRESS.values(), ids=NOT_IN_PROGRESS.keys())
async def test_save_task_result_changes_nothing_when_not_in_progress(store: Backend, build: StateBuilder) -> None:
    snapshot = build("order-1")
    await store.save_snapshot(snapshot)

    await store.save_task_result("order-1", task_id("charge"), b"receipt")

    assert await store.load_snapshot("order-1") == snapshot


async def test_save_task_result_raises_not_found_without_snapshot(store: Backend) -> None:
    with pytest.raises(NotFoundError):
        await store.save_task_result("order-1", task_id("charge"), b"receipt")
