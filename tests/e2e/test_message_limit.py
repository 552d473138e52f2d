"""SIZE rules end to end, on every backend behind a server with a small message limit: one large input never
stops dispatch, a find answers the most urgent tasks that fit, an undispatchable snapshot is never stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2

from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.domain.engine import Engine
from sayiir_server.domain.sizes import SizeLimits
from tests.contract.builders import DEFINITION_HASH, at_task, first_task
from tests.e2e.every_backend import KIND_PARAMS, MAX_MESSAGE_BYTES, Served, serving
from tests.e2e.wire import details, google_status

LIMITS = SizeLimits(MAX_MESSAGE_BYTES)
TTL = Duration(seconds=60)
NEAR_THE_LIMIT = LIMITS.max_snapshot_bytes - 1024
"""An input whose run's snapshot still fits the limit, with little to spare."""


@pytest.fixture(params=KIND_PARAMS)
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Served]:
    async with serving([request.param], tmp_path) as every:
        yield every[request.param]


async def _prepare(rpc: dict[str, Any], instance_id: str, input_bytes: int) -> Any:
    request = rr.PrepareRunRequest(
        instance_id=instance_id,
        definition_hash=DEFINITION_HASH,
        input=b"x" * input_bytes,
        first_task=first_task(),
    )
    return await rpc["Lifecycle.PrepareRun"](request, timeout=10)


async def _find(rpc: dict[str, Any], limit: int) -> Any:
    return await rpc["TaskClaimStore.FindAvailableTasks"](rr.FindAvailableTasksRequest(worker_id="w", limit=limit))


async def _claim(rpc: dict[str, Any], limit: int) -> Any:
    request = rr.ClaimAvailableTasksRequest(worker_id="w", ttl=TTL, limit=limit)
    return await rpc["TaskClaimStore.ClaimAvailableTasks"](request)


def _invalid_field(error: grpc.aio.AioRpcError) -> str:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    (bad_request,) = details(google_status(error), error_details_pb2.BadRequest)
    (violation,) = bad_request.field_violations
    field: str = violation.field
    return field


async def test_a_run_whose_input_is_near_the_limit_is_found_and_claimed_input_once(served: Served) -> None:
    await _prepare(served.rpc, "order-big", NEAR_THE_LIMIT)

    found = await served.rpc["TaskClaimStore.FindAvailableTasks"](
        rr.FindAvailableTasksRequest(worker_id="w", limit=1), timeout=10
    )
    claimed = await _claim(served.rpc, 1)

    (task,) = found.tasks
    assert (task.instance_id, task.input, task.input_in_snapshot) == ("order-big", b"", True)
    assert len(task.snapshot.initial_input) == NEAR_THE_LIMIT
    assert [claim.task.instance_id for claim in claimed.tasks] == ["order-big"]


async def test_ten_large_ready_runs_answer_the_dispatch_order_prefix_that_fits(served: Served) -> None:
    quarter = MAX_MESSAGE_BYTES // 4
    for number in range(10):  # on the still fake clock, equal urgency: dispatch order is the instance id's (DISP-4.4)
        await _prepare(served.rpc, f"order-{number}", quarter)

    found = await served.rpc["TaskClaimStore.FindAvailableTasks"](
        rr.FindAvailableTasksRequest(worker_id="w", limit=10), timeout=10
    )
    claimed = await _claim(served.rpc, 10)

    found_ids = [task.instance_id for task in found.tasks]
    assert 1 <= len(found_ids) < 10
    assert found_ids == [f"order-{number}" for number in range(len(found_ids))]
    assert found.ByteSize() <= MAX_MESSAGE_BYTES
    assert [claim.task.instance_id for claim in claimed.tasks] == found_ids


async def test_a_run_that_could_never_be_dispatched_is_refused_naming_input_and_nothing_is_stored(
    served: Served,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _prepare(served.rpc, "order-huge", LIMITS.max_snapshot_bytes)

    assert _invalid_field(refused.value) == "input"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await served.rpc["SnapshotStore.LoadSnapshot"](rr.LoadSnapshotRequest(instance_id="order-huge"), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_snapshot_that_could_never_be_dispatched_is_refused_naming_snapshot(served: Served) -> None:
    snapshot = at_task("order-huge", initial_input=b"x" * LIMITS.max_snapshot_bytes)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.rpc["SnapshotStore.SaveSnapshot"](rr.SaveSnapshotRequest(snapshot=snapshot), timeout=10)

    assert _invalid_field(refused.value) == "snapshot"
    listed = await served.rpc["SnapshotStore.ListSnapshots"](rr.ListSnapshotsRequest(), timeout=10)
    assert list(listed.instance_ids) == []


async def _store_an_oversized_and_two_small_runs(engine: Engine) -> None:
    # Written before the server applies its limit, as by a server with a larger --max-message-bytes.
    await engine.save_snapshot(at_task("order-0-oversized", initial_input=b"x" * MAX_MESSAGE_BYTES))
    for name in ("order-1", "order-2"):
        await engine.save_snapshot(at_task(name))


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_a_stored_task_too_large_to_dispatch_is_passed_over_and_the_others_are_found(
    kind: str, tmp_path: Path
) -> None:
    async with serving([kind], tmp_path, prepare=_store_an_oversized_and_two_small_runs) as every:
        rpc = every[kind].rpc
        found = await rpc["TaskClaimStore.FindAvailableTasks"](
            rr.FindAvailableTasksRequest(worker_id="w", limit=10), timeout=10
        )
        hinted = await _claim(rpc, 10)

    assert [task.instance_id for task in found.tasks] == ["order-1", "order-2"]
    assert [claim.task.instance_id for claim in hinted.tasks] == ["order-1", "order-2"]
