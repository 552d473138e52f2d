"""LIST-*: ListWorkflows' filters, orders, paging and summaries, on every backend and transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from sayiir_client import AsyncPersistenceClient, InvalidArgumentError
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.errors import InvalidFieldError
from sayiir_server.domain.model import CANCEL, PAUSE, timestamp
from sayiir_server.domain.traits import Backend
from tests.contract.builders import (
    DEFINITION_HASH,
    OTHER_DEFINITION_HASH,
    at_delay,
    at_signal,
    at_task,
    cancelled,
    completed,
    failed,
    paused,
    seconds_ago,
    seconds_from_now,
    signal_request,
    task_id,
    with_retry,
)
from tests.contract.conftest import over_grpc
from tests.contract.listing import list_all, list_page, listed_ids
from tests.contract.runs import hold
from tests.support.backends import ACTIVE_BACKEND_KINDS, open_test_backend
from tests.support.clock import FakeClock

NEWEST_FIRST = enums.WORKFLOW_ORDER_NEWEST_FIRST
BY_ID = enums.WORKFLOW_ORDER_INSTANCE_ID


def with_updated(snapshot: pb.WorkflowSnapshot, updated_at: datetime) -> pb.WorkflowSnapshot:
    snapshot.updated_at.CopyFrom(timestamp(updated_at))
    return snapshot


async def save_aged(store: Backend, *ids: str) -> None:
    """At-task instances updated a second apart, the first oldest."""
    for age, instance_id in enumerate(reversed(ids), start=1):
        await store.save_snapshot(at_task(instance_id, updated_at=seconds_ago(age)))


# --- LIST-1 filters --------------------------------------------------------------------------------------------


async def test_list_1_1_no_filter_lists_every_workflow(store: Backend) -> None:
    await store.save_snapshot(at_task("a"))
    await store.save_snapshot(completed("b"))
    await store.save_snapshot(failed("c"))

    assert sorted(await listed_ids(store)) == ["a", "b", "c"]


async def test_list_1_2_states_select_workflows_in_any_of_them(store: Backend) -> None:
    for snapshot in (at_task("running"), completed("done"), failed("broken"), cancelled("stopped"), paused("held")):
        await store.save_snapshot(snapshot)

    assert await listed_ids(store, states=[enums.WORKFLOW_STATE_PAUSED]) == ["held"]
    both = await listed_ids(store, states=[enums.WORKFLOW_STATE_COMPLETED, enums.WORKFLOW_STATE_FAILED])
    assert sorted(both) == ["broken", "done"]


async def test_list_1_2_several_states_page_in_one_newest_first_order(store: Backend) -> None:
    await store.save_snapshot(at_task("running-old", updated_at=seconds_ago(50)))
    await store.save_snapshot(with_updated(failed("broken-new"), seconds_ago(10)))
    await store.save_snapshot(at_task("running-new", updated_at=seconds_ago(20)))
    await store.save_snapshot(with_updated(failed("broken-old"), seconds_ago(40)))
    await store.save_snapshot(with_updated(completed("done"), seconds_ago(30)))

    walked = await listed_ids(
        store, states=[enums.WORKFLOW_STATE_FAILED, enums.WORKFLOW_STATE_IN_PROGRESS], page_size=1
    )

    assert walked == ["broken-new", "running-new", "broken-old", "running-old"]


async def test_list_1_3_definition_hash_selects_its_workflows(store: Backend) -> None:
    await store.save_snapshot(at_task("v1"))
    other = at_task("v2")
    other.definition_hash = OTHER_DEFINITION_HASH
    await store.save_snapshot(other)

    assert await listed_ids(store, definition_hash=OTHER_DEFINITION_HASH) == ["v2"]
    assert await listed_ids(store, definition_hash=DEFINITION_HASH) == ["v1"]


async def test_list_1_4_tag_selects_workflows_whose_current_task_carries_it(store: Backend) -> None:
    await store.save_snapshot(at_task("eu", tags=["eu", "gpu"]))
    await store.save_snapshot(at_task("us", tags=["us"]))
    await store.save_snapshot(at_task("untagged"))

    assert await listed_ids(store, tag="gpu") == ["eu"]
    assert await listed_ids(store, tag="none") == []


async def test_list_1_5_prefix_selects_instance_ids_starting_with_it(store: Backend) -> None:
    for instance_id in ("order-1", "order-10", "orders", "refund-1", "order"):
        await store.save_snapshot(at_task(instance_id))

    assert sorted(await listed_ids(store, prefix="order-")) == ["order-1", "order-10"]
    assert sorted(await listed_ids(store, prefix="order-1")) == ["order-1", "order-10"]


async def test_list_1_6_updated_after_is_inclusive_and_updated_before_exclusive(store: Backend) -> None:
    start = seconds_ago(100)
    for seconds in range(5):
        await store.save_snapshot(at_task(f"at-{seconds}", updated_at=start + timedelta(seconds=seconds)))

    window = await listed_ids(
        store, updated_after=start + timedelta(seconds=1), updated_before=start + timedelta(seconds=3)
    )

    assert window == ["at-2", "at-1"]


async def test_list_1_1_every_filter_given_must_hold(store: Backend) -> None:
    await store.save_snapshot(at_task("order-eu", tags=["eu"]))
    await store.save_snapshot(at_task("refund-eu", tags=["eu"]))
    await store.save_snapshot(at_task("order-us", tags=["us"]))
    await store.save_snapshot(completed("order-done"))

    found = await listed_ids(store, prefix="order-", tag="eu", states=[enums.WORKFLOW_STATE_IN_PROGRESS])

    assert found == ["order-eu"]


# --- LIST-2 order and paging -----------------------------------------------------------------------------------


async def test_list_2_1_newest_first_orders_by_descending_update_then_descending_id(store: Backend) -> None:
    same = seconds_ago(10)
    await store.save_snapshot(at_task("old", updated_at=seconds_ago(20)))
    await store.save_snapshot(at_task("tie-a", updated_at=same))
    await store.save_snapshot(at_task("tie-b", updated_at=same))
    await store.save_snapshot(at_task("new", updated_at=seconds_ago(1)))

    assert await listed_ids(store) == ["new", "tie-b", "tie-a", "old"]
    assert await listed_ids(store, order=NEWEST_FIRST) == ["new", "tie-b", "tie-a", "old"]


async def test_list_2_1_instance_id_order_is_ascending_utf8_bytes(store: Backend) -> None:
    for instance_id in ("b", "é", "a", "Z", "a-1"):
        await store.save_snapshot(at_task(instance_id, updated_at=seconds_ago(len(instance_id))))

    assert await listed_ids(store, order=BY_ID) == ["Z", "a", "a-1", "b", "é"]


@pytest.mark.parametrize("order", [NEWEST_FIRST, BY_ID], ids=["newest-first", "by-id"])
async def test_list_2_2_pages_hold_at_most_page_size_and_the_last_has_no_token(
    store: Backend, order: enums.WorkflowOrder.ValueType
) -> None:
    await save_aged(store, *(f"order-{number}" for number in range(5)))

    first = await list_page(store, order=order, page_size=2)
    second = await list_page(store, order=order, page_size=2, page_token=first.next_page_token)
    third = await list_page(store, order=order, page_size=2, page_token=second.next_page_token)

    assert [len(page.workflows) for page in (first, second, third)] == [2, 2, 1]
    assert first.next_page_token
    assert second.next_page_token
    assert third.next_page_token == ""


async def test_list_2_2_an_exactly_full_last_page_has_no_token(store: Backend) -> None:
    await save_aged(store, "a", "b")

    page = await list_page(store, page_size=2)

    assert (len(page.workflows), page.next_page_token) == (2, "")


@pytest.mark.parametrize("order", [NEWEST_FIRST, BY_ID], ids=["newest-first", "by-id"])
async def test_list_2_4_walking_the_pages_yields_every_workflow_once_in_order(
    store: Backend, order: enums.WorkflowOrder.ValueType
) -> None:
    ids = [f"order-{number:02d}" for number in range(11)]
    await save_aged(store, *ids)

    walked = await listed_ids(store, order=order, page_size=3)

    assert walked == (sorted(ids) if order == BY_ID else list(reversed(ids)))


@pytest.mark.parametrize("order", [NEWEST_FIRST, BY_ID], ids=["newest-first", "by-id"])
async def test_list_2_4_workflows_created_during_a_walk_never_duplicate_or_hide_others(
    store: Backend, order: enums.WorkflowOrder.ValueType
) -> None:
    present = [f"order-{number:02d}" for number in range(0, 20, 2)]
    await save_aged(store, *present)

    walked: list[str] = []
    token = ""
    for inserted in range(1, 40, 2):
        page = await list_page(store, order=order, page_size=3, page_token=token)
        walked.extend(summary.instance_id for summary in page.workflows)
        if not page.next_page_token:
            break
        token = page.next_page_token
        await store.save_snapshot(at_task(f"order-{inserted:02d}"))  # newest, and between the ids

    assert len(walked) == len(set(walked))
    assert [instance_id for instance_id in walked if instance_id in present] == (
        sorted(present) if order == BY_ID else list(reversed(present))
    )


async def test_list_2_2_page_size_zero_means_one_hundred(store: Backend) -> None:
    await asyncio.gather(*(store.save_snapshot(at_task(f"order-{number:03d}")) for number in range(101)))

    page = await list_page(store, page_size=0)

    assert len(page.workflows) == 100
    assert page.next_page_token


@pytest.mark.parametrize("page_size", [-1, 1001])
async def test_list_2_2_a_page_size_outside_0_to_1000_is_invalid(store: Backend, page_size: int) -> None:
    with pytest.raises((InvalidArgumentError, InvalidFieldError)) as raised:
        await list_page(store, page_size=page_size)

    assert cast(InvalidFieldError, raised.value).field == "page_size"


async def test_list_1_2_an_unspecified_state_is_invalid(store: Backend) -> None:
    with pytest.raises((InvalidArgumentError, InvalidFieldError)) as raised:
        await list_page(store, states=[enums.WORKFLOW_STATE_IN_PROGRESS, enums.WORKFLOW_STATE_UNSPECIFIED])

    assert cast(InvalidFieldError, raised.value).field == "states[1]"


# LIST-2.3: page tokens are the servicer's, so these run over gRPC only, on every backend.


@pytest.fixture(
    params=[
        pytest.param(kind, id=f"{kind}-grpc", marks=[pytest.mark.postgres] if kind == "postgres" else [])
        for kind in ACTIVE_BACKEND_KINDS
    ]
)
async def served(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[AsyncPersistenceClient]:
    async with over_grpc(request, lambda: open_test_backend(request.param, tmp_path, clock)) as client:
        assert isinstance(client, AsyncPersistenceClient)
        yield client


async def test_list_2_3_a_token_issued_for_other_filters_is_invalid(served: AsyncPersistenceClient) -> None:
    await save_aged(served, "order-1", "order-2", "refund-1")
    page = await served.list_workflows(prefix="order-", page_size=1)

    with pytest.raises(InvalidArgumentError) as raised:
        await served.list_workflows(prefix="refund-", page_size=1, page_token=page.next_page_token)

    assert raised.value.field == "page_token"


async def test_list_2_3_a_token_of_the_other_order_is_invalid(served: AsyncPersistenceClient) -> None:
    await save_aged(served, "order-1", "order-2")
    page = await served.list_workflows(page_size=1)

    with pytest.raises(InvalidArgumentError) as raised:
        await served.list_workflows(order=BY_ID, page_size=1, page_token=page.next_page_token)

    assert raised.value.field == "page_token"


async def test_list_2_3_a_token_the_server_did_not_issue_is_invalid(served: AsyncPersistenceClient) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        await served.list_workflows(page_token="b3JkZXItMQ==")

    assert raised.value.field == "page_token"


async def test_list_2_3_the_same_filters_with_another_page_size_accept_the_token(
    served: AsyncPersistenceClient,
) -> None:
    await save_aged(served, "order-1", "order-2", "order-3")
    first = await served.list_workflows(prefix="order-", page_size=1)

    rest = await served.list_workflows(prefix="order-", page_size=10, page_token=first.next_page_token)

    assert [summary.instance_id for summary in rest.workflows] == ["order-2", "order-1"]


# --- LIST-3 summaries ------------------------------------------------------------------------------------------


async def summary_of(store: Backend, instance_id: str) -> object:
    (summary,) = [s for s in await list_all(store) if s.instance_id == instance_id]
    return summary


async def test_list_3_1_a_summary_carries_the_ids_state_and_times_as_stored(store: Backend) -> None:
    snapshot = at_task("order-1", updated_at=seconds_ago(5))
    await store.save_snapshot(snapshot)

    (summary,) = await list_all(store)

    assert (summary.instance_id, summary.definition_hash) == ("order-1", DEFINITION_HASH)
    assert summary.state == enums.WORKFLOW_STATE_IN_PROGRESS
    assert (summary.created_at, summary.updated_at) == (snapshot.created_at, snapshot.updated_at)


async def test_list_3_2_position_kind_and_current_task_while_running_or_paused(store: Backend) -> None:
    await store.save_snapshot(at_task("at-task", "charge"))
    await store.save_snapshot(at_delay("at-delay", wake_at=seconds_from_now(60)))
    await store.save_snapshot(at_signal("at-signal", "approved"))
    await store.save_snapshot(paused("held", "ship"))
    await store.save_snapshot(completed("done"))

    summaries = {summary.instance_id: summary for summary in await list_all(store)}

    assert summaries["at-task"].position_kind == enums.POSITION_KIND_AT_TASK
    assert summaries["at-task"].current_task_id == task_id("charge")
    assert summaries["at-delay"].position_kind == enums.POSITION_KIND_AT_DELAY
    assert summaries["at-signal"].position_kind == enums.POSITION_KIND_AT_SIGNAL
    assert (summaries["held"].position_kind, summaries["held"].current_task_id) == (
        enums.POSITION_KIND_AT_TASK,
        task_id("ship"),
    )
    assert summaries["done"].position_kind == enums.POSITION_KIND_UNSPECIFIED
    for waiting in ("at-delay", "at-signal", "done"):
        assert not summaries[waiting].HasField("current_task_id"), waiting


async def test_list_3_3_priority_defaults_to_three_and_tags_are_the_current_tasks(store: Backend) -> None:
    await store.save_snapshot(at_task("urgent", priority=1, tags=["eu", "gpu"]))
    await store.save_snapshot(at_task("plain"))

    summaries = {summary.instance_id: summary for summary in await list_all(store)}

    assert (summaries["urgent"].priority, list(summaries["urgent"].tags)) == (1, ["eu", "gpu"])
    assert (summaries["plain"].priority, list(summaries["plain"].tags)) == (3, [])


async def test_list_3_4_pending_cancel_and_pause_requests_are_shown(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1"))
    await store.save_snapshot(at_task("order-2"))
    cancel, pause = signal_request("wrong address", "alice"), signal_request("audit", "bob")
    await hold(store, "order-1")  # held by a worker, the requests stay pending (SIG-9.2)
    await store.store_signal("order-1", CANCEL, cancel)
    await store.store_signal("order-1", PAUSE, pause)

    summaries = {summary.instance_id: summary for summary in await list_all(store)}

    assert (summaries["order-1"].pending_cancel, summaries["order-1"].pending_pause) == (cancel, pause)
    assert not summaries["order-2"].HasField("pending_cancel")
    assert not summaries["order-2"].HasField("pending_pause")


async def test_list_3_5_the_live_claim_on_the_current_task_is_shown_until_it_expires(
    store: Backend, clock: FakeClock
) -> None:
    await store.save_snapshot(at_task("order-1", "fetch"))
    claim = await store.claim_task("order-1", task_id("fetch"), "worker-7", timedelta(seconds=30))
    assert claim is not None

    (live,) = await list_all(store)
    clock.advance(31)
    (expired,) = await list_all(store)

    assert (live.claim.worker_id, live.claim.expires_at) == ("worker-7", timestamp(clock.now - timedelta(seconds=1)))
    assert live.claim == claim
    assert not expired.HasField("claim")


async def test_list_3_5_a_claim_on_another_task_is_not_shown(store: Backend) -> None:
    await store.save_snapshot(at_task("order-1", "charge"))
    await store.claim_task("order-1", task_id("fetch"), "worker-7", timedelta(seconds=30))

    (summary,) = await list_all(store)

    assert not summary.HasField("claim")


async def test_list_3_6_retry_attempts_and_next_retry_of_the_current_task(store: Backend) -> None:
    retry_at = seconds_from_now(30)
    await store.save_snapshot(with_retry(at_task("retrying", "fetch"), "fetch", next_retry_at=retry_at))
    await store.save_snapshot(with_retry(at_task("moved-on", "charge"), "fetch", next_retry_at=retry_at))

    summaries = {summary.instance_id: summary for summary in await list_all(store)}

    assert (summaries["retrying"].retry_attempts, summaries["retrying"].next_retry_at) == (1, timestamp(retry_at))
    assert summaries["moved-on"].retry_attempts == 0
    assert not summaries["moved-on"].HasField("next_retry_at")


async def test_list_3_7_listing_changes_nothing(store: Backend) -> None:
    due = at_delay("sleeping", wake_at=seconds_ago(1), next_task="wake")
    await store.save_snapshot(due)

    await list_all(store)

    assert await store.load_snapshot("sleeping") == due
