"""Every valid Timestamp and Duration gets the same answer on every backend: stored and read back alike, or
refused alike (the proto's whole range, 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z)."""

from __future__ import annotations

import asyncio
import itertools
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sayiir_client.v1 import request_response_pb2 as rr
from tests.contract.builders import at_task, delay_position, in_progress, task_id
from tests.e2e.every_backend import Served, serving
from tests.support.backends import ACTIVE_BACKEND_KINDS
from tests.support.clock import FakeClock

FIRST_SECOND = -62_135_596_800
"""0001-01-01T00:00:00Z."""
LAST_SECOND = 253_402_300_799
"""9999-12-31T23:59:59Z."""
MAX_DURATION_SECONDS = 315_576_000_000
LAST_NANO = 999_999_999

timestamps = st.builds(
    Timestamp,
    seconds=st.integers(FIRST_SECOND, LAST_SECOND) | st.sampled_from([FIRST_SECOND, LAST_SECOND, 0]),
    nanos=st.integers(0, LAST_NANO) | st.sampled_from([0, 999_999, 999_999_500, LAST_NANO]),
)
MAX_TTL_SECONDS = 36_500 * 86_400
"""The longest claim ttl (ID-2); longer valid Durations are refused, and must be refused alike."""
durations = (st.integers(0, MAX_TTL_SECONDS) | st.integers(0, MAX_DURATION_SECONDS)).flatmap(
    lambda seconds: st.builds(Duration, seconds=st.just(seconds), nanos=st.integers(0, LAST_NANO))
) | st.integers(-MAX_DURATION_SECONDS, -1).map(lambda seconds: Duration(seconds=seconds))
Answer = tuple[Any, ...]


async def _call(call: Any, request: Any) -> tuple[bool, Any]:
    try:
        return True, await call(request, timeout=10)
    except grpc.aio.AioRpcError as error:
        return False, (error.code(), error.details())


async def _wake_at_answer(served: Served, instance_id: str, wake_at: Timestamp) -> Answer:
    snapshot = in_progress(instance_id, delay_position("cool-off", FakeClock().now, "charge"))
    snapshot.in_progress.position.at_delay.wake_at.CopyFrom(wake_at)
    saved, refusal = await _call(served.rpc["SnapshotStore.SaveSnapshot"], rr.SaveSnapshotRequest(snapshot=snapshot))
    if not saved:
        return ("refused", *refusal)
    _, loaded = await _call(served.rpc["SnapshotStore.LoadSnapshot"], rr.LoadSnapshotRequest(instance_id=instance_id))
    stored = loaded.snapshot.in_progress.position.at_delay.wake_at
    return ("stored", stored.seconds, stored.nanos)


async def _ttl_answer(served: Served, instance_id: str, ttl: Duration) -> Answer:
    await served.rpc["SnapshotStore.SaveSnapshot"](rr.SaveSnapshotRequest(snapshot=at_task(instance_id)), timeout=10)
    request = rr.ClaimTaskRequest(instance_id=instance_id, task_id=task_id("fetch"), worker_id="w", ttl=ttl)
    claimed, answer = await _call(served.rpc["TaskClaimStore.ClaimTask"], request)
    if not claimed:
        return ("refused", *answer)
    expires = answer.claim.expires_at
    return ("claimed", expires.seconds, expires.nanos)


def test_every_valid_timestamp_and_duration_gets_the_same_answer_on_every_backend(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    stack = AsyncExitStack()
    every: dict[str, Served] = loop.run_until_complete(
        stack.enter_async_context(serving(ACTIVE_BACKEND_KINDS, tmp_path, FakeClock()))
    )
    numbers = itertools.count()

    async def answers(wake_at: Timestamp, ttl: Duration) -> dict[str, tuple[Answer, Answer]]:
        number = next(numbers)
        return {
            kind: (
                await _wake_at_answer(served, f"delay-{number}", wake_at),
                await _ttl_answer(served, f"claim-{number}", ttl),
            )
            for kind, served in every.items()
        }

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(wake_at=timestamps, ttl=durations)
    @example(wake_at=Timestamp(seconds=LAST_SECOND, nanos=LAST_NANO), ttl=Duration(seconds=MAX_DURATION_SECONDS))
    @example(wake_at=Timestamp(seconds=FIRST_SECOND), ttl=Duration())
    def same_everywhere(wake_at: Timestamp, ttl: Duration) -> None:
        found = loop.run_until_complete(answers(wake_at, ttl))
        assert len(set(found.values())) == 1, found

    try:
        same_everywhere()
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()
