"""Races the contract suite does not run: dispatch's own writes against the callers' writes, over two backends.

Two engines share one database (SQLite: one file, two connections; PostgreSQL: two
replicas on one schema), so every race crosses a connection, the way two server processes
would. Each scenario runs on both SQL stores through one fixture, on many instances at
once; the assertions are the outcomes some serial order of the same calls could produce.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sayiir_client.errors import CannotCancelError
from sayiir_server.domain.dispatch import signal_task_id
from sayiir_server.domain.model import CANCEL, PAUSE, find_result, state_of, utc_now
from sayiir_server.domain.traits import Backend
from tests.contract.builders import (
    at_delay,
    at_signal,
    at_task,
    completed,
    seconds_ago,
    signal_request,
    task_id,
)
from tests.races.conftest import OpenShared

INSTANCES = 24
CANCEL_RACE_INSTANCES = 128
CANCEL_RACE_ROUNDS = 10
AGING = timedelta(seconds=60)
TTL = timedelta(minutes=5)


async def _pair(open_shared: OpenShared) -> tuple[Backend, Backend]:
    return await open_shared(), await open_shared()


async def _finds(backend: Backend, calls: int) -> None:
    for _ in range(calls):
        await backend.find_available_tasks("dispatcher", 100, AGING, [])


async def _cancel_request_refused(backend: Backend, instance_id: str) -> bool:
    try:
        await backend.store_signal(instance_id, CANCEL, signal_request())
    except CannotCancelError:
        return True
    return False


async def _race_cancel_requests_against_dispatch(
    backends: tuple[Backend, Backend, Backend], released: Callable[[str], Awaitable[None]], round_: int
) -> list[tuple[str, bool]]:
    """Store a cancel on every released instance while dispatch runs on two backends; (name, refused) back."""
    first, second, third = backends
    names = [f"order-{round_}-{n:03d}" for n in range(CANCEL_RACE_INSTANCES)]
    for name in names:
        await released(name)
    requests = asyncio.gather(*(_cancel_request_refused((first, third)[n % 2], name) for n, name in enumerate(names)))
    refusals, _, _ = await asyncio.gather(requests, _finds(second, 3), _finds(first, 2))
    for name in names:
        await first.check_and_cancel(name)
    return list(zip(names, refusals, strict=True))


async def test_a_cancel_accepted_while_a_fed_signal_would_complete_the_run_cancels_it(
    open_shared: OpenShared,
) -> None:
    backends = (await open_shared(), await open_shared(), await open_shared())
    backend = backends[0]

    async def fed_signal(name: str) -> None:
        await backend.save_snapshot(at_signal(name, "approval"))
        await backend.send_event(name, "approval", name.encode())

    for round_ in range(CANCEL_RACE_ROUNDS):
        for name, refused in await _race_cancel_requests_against_dispatch(backends, fed_signal, round_):
            snapshot = await backend.load_snapshot(name)
            if refused:  # released first: the event became the final output, and the cancel came too late
                assert state_of(snapshot) == "completed"
                assert snapshot.completed.final_output == name.encode()
                assert await backend.consume_event(name, "approval") is None
            else:  # the pending request kept dispatch away: cancelled, the event still buffered
                assert state_of(snapshot) == "cancelled", name
                assert await backend.get_signal(name, CANCEL) is None
                assert await backend.consume_event(name, "approval") == name.encode()


async def test_a_cancel_accepted_while_a_due_delay_would_complete_the_run_cancels_it(
    open_shared: OpenShared,
) -> None:
    backends = (await open_shared(), await open_shared(), await open_shared())
    backend = backends[0]

    async def due_delay(name: str) -> None:
        await backend.save_snapshot(at_delay(name, wake_at=seconds_ago(1)))

    for round_ in range(CANCEL_RACE_ROUNDS):
        for name, refused in await _race_cancel_requests_against_dispatch(backends, due_delay, round_):
            state = state_of(await backend.load_snapshot(name))
            assert state == ("completed" if refused else "cancelled"), name


async def test_unpause_racing_dispatch_consumes_the_awaited_event_exactly_once(open_shared: OpenShared) -> None:
    first, second = await _pair(open_shared)
    names = [f"order-{n}" for n in range(INSTANCES)]
    for name in names:
        await first.save_snapshot(at_signal(name, "approval", next_task="ship"))
        await first.store_signal(name, PAUSE, signal_request())
        assert state_of(await first.load_snapshot(name)) == "paused"  # nobody held it: applied at once (SIG-9.1)
        await first.send_event(name, "approval", f"first for {name}".encode())
        await first.send_event(name, "approval", f"second for {name}".encode())

    await asyncio.gather(*(first.unpause(name) for name in names), _finds(second, 4), _finds(first, 2))
    await _finds(second, 1)

    for name in names:
        snapshot = await first.load_snapshot(name)
        assert snapshot.in_progress.position.at_task.task_id == task_id("ship")
        recorded = find_result(snapshot.in_progress.completed_tasks, signal_task_id("approval"))
        assert recorded is not None
        assert recorded.output == f"first for {name}".encode()
        assert await second.consume_event(name, "approval") == f"second for {name}".encode()
        assert await second.consume_event(name, "approval") is None


async def test_an_expired_holders_fenced_save_never_lands_after_its_successors_claim(
    open_shared: OpenShared,
) -> None:
    """The expired holder still believes its lease live (its clock lags), the successor's clock says expired."""
    claimed_at = utc_now()
    holder = await open_shared(lambda: claimed_at)
    successor = await open_shared(lambda: claimed_at + 2 * TTL)
    names = [f"order-{n}" for n in range(INSTANCES)]
    for name in names:
        await holder.save_snapshot(at_task(name, "charge"))
        assert await holder.claim_task(name, task_id("charge"), "expired", TTL) is not None

    async def take_over(name: str) -> bool:
        assert await successor.claim_task(name, task_id("charge"), "successor", TTL) is not None
        return await successor.save_snapshot_fenced(
            at_task(name, "ship", completed={"charge": b"successor"}), task_id("charge"), "successor"
        )

    outcomes = await asyncio.gather(
        *(
            holder.save_snapshot_fenced(
                at_task(name, "ship", completed={"charge": b"expired"}), task_id("charge"), "expired"
            )
            for name in names
        ),
        *(take_over(name) for name in names),
    )

    assert all(outcomes[INSTANCES:])
    for name in names:
        assert await holder.load_task_result(name, task_id("charge")) == b"successor"


async def test_a_task_result_racing_the_completed_save_never_drops_the_retained_results(
    open_shared: OpenShared,
) -> None:
    first, second = await _pair(open_shared)
    names = [f"order-{n}" for n in range(INSTANCES)]
    for name in names:
        await first.save_snapshot(at_task(name, "join", completed={"fetch": b"fetched"}))

    await asyncio.gather(
        *(first.save_task_result(name, task_id("branch"), b"branch") for name in names),
        *(second.save_snapshot(completed(name)) for name in names),
    )

    for name in names:
        assert state_of(await first.load_snapshot(name)) == "completed"
        assert await second.load_task_result(name, task_id("fetch")) == b"fetched"
        assert await second.load_task_result(name, task_id("branch")) in (b"branch", None)


async def test_sig_9_3_a_cancel_racing_a_claiming_find_either_waits_for_the_claim_or_applies_unclaimed(
    open_shared: OpenShared,
) -> None:
    """StoreSignal on one backend, ClaimAvailableTasks on another: each run ends up claimed with its request
    pending for the holder, or cancelled and unclaimed; never cancelled under a claim, never pending unheld."""
    canceller, claimer = await _pair(open_shared)
    for round_ in range(CANCEL_RACE_ROUNDS):
        names = [f"order-{round_}-{n:03d}" for n in range(CANCEL_RACE_INSTANCES)]
        for name in names:
            await canceller.save_snapshot(at_task(name, "charge"))

        async def claim_all() -> set[str]:
            claimed: set[str] = set()
            for _ in range(4):
                batch = await claimer.claim_available_tasks("claimer", 50, TTL)
                claimed |= {item.task.instance_id for item in batch}
            return claimed

        _, claimed = await asyncio.gather(
            asyncio.gather(*(canceller.store_signal(name, CANCEL, signal_request()) for name in names)), claim_all()
        )

        for name in names:
            state = state_of(await canceller.load_snapshot(name))
            pending = await canceller.get_signal(name, CANCEL)
            if name in claimed:
                assert (state, pending is not None) == ("in_progress", True), name
            else:
                assert (state, pending) == ("cancelled", None), name
