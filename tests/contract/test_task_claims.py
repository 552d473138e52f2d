"""docs/behaviour.md CLAIM: claiming, releasing and extending task claims, and fenced saves."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sayiir_client.errors import ClaimLostError, NotFoundError
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import utc_now
from sayiir_server.domain.traits import Backend
from tests.contract.builders import assert_between, at_task, task_id
from tests.support.clock import FakeClock

LONG_TTL = timedelta(minutes=5)
TINY_TTL = timedelta(milliseconds=50)
PAST_TINY_TTL = 0.1
"""Seconds the clock moves so a TINY_TTL claim has expired."""

CHARGE = task_id("charge")


@pytest.fixture
async def running(store: Backend) -> Backend:
    """The store holding order-1, InProgress at task "charge"."""
    await store.save_snapshot(at_task("order-1", "charge", completed={"fetch": b"order"}))
    return store


# claim_task


async def test_claim_task_returns_a_claim_expiring_ttl_from_now(running: Backend) -> None:
    before = utc_now()

    claim = await running.claim_task("order-1", CHARGE, "worker-a", LONG_TTL)

    after = utc_now()
    assert claim is not None
    assert (claim.instance_id, claim.task_id, claim.worker_id) == ("order-1", CHARGE, "worker-a")
    assert_between(claim.claimed_at, before, after)
    assert_between(claim.expires_at, before + LONG_TTL, after + LONG_TTL)


async def test_claim_task_without_ttl_has_no_expiry(running: Backend) -> None:
    claim = await running.claim_task("order-1", CHARGE, "worker-a", None)

    assert claim is not None
    assert not claim.HasField("expires_at")


async def test_claim_task_returns_none_while_another_worker_holds_a_live_claim(running: Backend) -> None:
    await running.claim_task("order-1", CHARGE, "worker-a", LONG_TTL)

    assert await running.claim_task("order-1", CHARGE, "worker-b", LONG_TTL) is None


async def test_claim_task_returns_none_while_the_same_worker_holds_a_live_claim(running: Backend) -> None:
    await running.claim_task("order-1", CHARGE, "worker-a", LONG_TTL)

    assert await running.claim_task("order-1", CHARGE, "worker-a", LONG_TTL) is None


async def test_claim_task_returns_none_while_a_claim_without_expiry_exists(running: Backend) -> None:
    await running.claim_task("order-1", CHARGE, "worker-a", None)

    assert await running.claim_task("order-1", CHARGE, "worker-b", LONG_TTL) is None


async def test_claim_task_replaces_an_expired_claim(running: Backend, clock: FakeClock) -> None:
    await running.claim_task("order-1", CHARGE, "worker-a", TINY_TTL)
    clock.advance(PAST_TINY_TTL)

    claim = await running.claim_task("order-1", CHARGE, "worker-b", LONG_TTL)

    assert claim is not None
    assert claim.worker_id == "worker-b"


async def test_claims_are_keyed_by_instance_and_task(running: Backend) -> None:
    await running.save_snapshot(at_task("order-2", "charge"))
    await running.claim_task("order-1", CHARGE, "worker-a", LONG_TTL)

    assert await running.claim_task("order-1", task_id("ship"), "worker-b", LONG_TTL) is not None
    assert await running.claim_task("order-2", CHARGE, "worker-b", LONG_TTL) is not None


# release_task_claim


async def test_release_task_claim_removes_the_claim(running: Backend) -> None:
    await running.claim_task("order-1", CHARGE, "worker-a", LONG_TTL)

    await running.release_task_claim("order-1", CHARGE, "worker-a")

    assert await running.claim_task("order-1", CHARGE, "worker-b", LONG_TTL) is not None


async def test_release_task_claim_raises_claim_lost_when_another_worker_holds_it(running: Backend) -> None:
    await running.claim_task("order-1", CHARGE, "worker-a", LONG_TTL)

    with pytest.raises(ClaimLostError):
        await running.release_task_claim("order-1", CHARGE, "worker-b")
    assert await running.claim_task("order-1", CHARGE, "worker-b", LONG_TTL) is None


async def test_release_task_claim_raises_not_found_without_a_claim(running: Backend) -> None:
    with pytest.raises(NotFoundError):
        await running.release_task_claim("order-1", CHARGE, "worker-a")


# extend_task_claim


async def test_extend_task_claim_keeps_the_claim_alive_past_its_old_expiry(running: Backend, clock: FakeClock) -> None:
    await running.claim_task("order-1", CHARGE, "worker-a", TINY_TTL)

    await running.extend_task_claim("order-1", CHARGE, "worker-a", LONG_TTL)
    clock.advance(PAST_TINY_TTL)

    assert await running.claim_task("order-1", CHARGE, "worker-b", LONG_TTL) is None


async def test_extend_task_claim_sets_expiry_to_now_plus_ttl_not_added_to_the_old_one(
    running: Backend, clock: FakeClock
) -> None:
    await running.claim_task("order-1", CHARGE, "worker-a", LONG_TTL)

    await running.extend_task_claim("order-1", CHARGE, "worker-a", TINY_TTL)
    clock.advance(PAST_TINY_TTL)

    assert await running.claim_task("order-1", CHARGE, "worker-b", LONG_TTL) is not None


async def test_extend_task_claim_leaves_a_claim_without_expiry_without_one(running: Backend, clock: FakeClock) -> None:
    await running.claim_task("order-1", CHARGE, "worker-a", None)

    await running.extend_task_claim("order-1", CHARGE, "worker-a", TINY_TTL)
    clock.advance(PAST_TINY_TTL)

    assert await running.claim_task("order-1", CHARGE, "worker-b", LONG_TTL) is None


async def test_extend_task_claim_raises_claim_lost_when_another_worker_holds_it(
    running: Backend, clock: FakeClock
) -> None:
    await running.claim_task("order-1", CHARGE, "worker-a", TINY_TTL)

    with pytest.raises(ClaimLostError):
        await running.extend_task_claim("order-1", CHARGE, "worker-b", LONG_TTL)
    clock.advance(PAST_TINY_TTL)
    assert await running.claim_task("order-1", CHARGE, "worker-b", LONG_TTL) is not None


async def test_extend_task_claim_raises_not_found_without_a_claim(running: Backend) -> None:
    with pytest.raises(NotFoundError):
        await running.extend_task_claim("order-1", CHARGE, "worker-a", LONG_TTL)


# save_snapshot_fenced


def _charged() -> pb.WorkflowSnapshot:
    """order-1 after "charge" completed: what the claim holder saves."""
    return at_task("order-1", "ship", completed={"fetch": b"order", "charge": b"receipt"})


async def test_save_snapshot_fenced_saves_while_the_worker_holds_a_live_claim(running: Backend) -> None:
    await running.claim_task("order-1", CHARGE, "worker-a", LONG_TTL)
    progressed = _charged()

    assert await running.save_snapshot_fenced(progressed, CHARGE, "worker-a") is True

    assert await running.load_snapshot("order-1") == progressed


async def test_save_snapshot_fenced_writes_nothing_once_the_claim_expired(running: Backend, clock: FakeClock) -> None:
    before = await running.load_snapshot("order-1")
    await running.claim_task("order-1", CHARGE, "worker-a", TINY_TTL)
    clock.advance(PAST_TINY_TTL)

    assert await running.save_snapshot_fenced(_charged(), CHARGE, "worker-a") is False

    assert await running.load_snapshot("order-1") == before


async def test_save_snapshot_fenced_writes_nothing_under_another_workers_claim(running: Backend) -> None:
    before = await running.load_snapshot("order-1")
    await running.claim_task("order-1", CHARGE, "worker-b", LONG_TTL)

    assert await running.save_snapshot_fenced(_charged(), CHARGE, "worker-a") is False

    assert await running.load_snapshot("order-1") == before


async def test_save_snapshot_fenced_writes_nothing_without_a_claim(running: Backend) -> None:
    before = await running.load_snapshot("order-1")

    assert await running.save_snapshot_fenced(_charged(), CHARGE, "worker-a") is False

    assert await running.load_snapshot("order-1") == before


async def test_save_snapshot_fenced_checks_the_claim_on_the_named_task(running: Backend) -> None:
    before = await running.load_snapshot("order-1")
    await running.claim_task("order-1", task_id("ship"), "worker-a", LONG_TTL)

    assert await running.save_snapshot_fenced(_charged(), CHARGE, "worker-a") is False

    assert await running.load_snapshot("order-1") == before
