"""What only the in-memory backend promises: reset(), copies, an injectable clock, its wakeup hub.

The SPEC rules themselves are proven for every backend by tests/contract; the
clock lets these tests pin the boundaries of time rules exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from sayiir_client.errors import NotFoundError
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server import dispatch
from sayiir_server.backends import open_backend
from sayiir_server.backends.memory import InMemoryBackend
from sayiir_server.model import CANCEL, PAUSE, current_task_id, state_of, timestamp
from sayiir_server.wakeups import WakeupHub

DEFINITION = hashlib.sha256(b"definition").digest()
FIRST_TASK = hashlib.sha256(b"first").digest()
SECOND_TASK = hashlib.sha256(b"second").digest()
DELAY = hashlib.sha256(b"delay").digest()
START = datetime(2030, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def running(instance_id: str, position: pb.ExecutionPosition | None = None) -> pb.WorkflowSnapshot:
    return pb.WorkflowSnapshot(
        instance_id=instance_id,
        definition_hash=DEFINITION,
        in_progress=pb.InProgressState(
            position=position or pb.ExecutionPosition(at_task=pb.AtTask(task_id=FIRST_TASK))
        ),
        created_at=timestamp(START),
        updated_at=timestamp(START),
        initial_input=b"input",
    )


def at_delay(instance_id: str, wake_at: datetime) -> pb.WorkflowSnapshot:
    delay = pb.AtDelay(
        delay_id=DELAY, entered_at=timestamp(START), wake_at=timestamp(wake_at), next_task_id=SECOND_TASK
    )
    return running(instance_id, pb.ExecutionPosition(at_delay=delay))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(clock: FakeClock) -> InMemoryBackend:
    return InMemoryBackend(clock=clock)


async def test_open_backend_with_a_memory_url_gives_an_empty_in_memory_backend() -> None:
    backend = await open_backend("memory://")

    assert isinstance(backend, InMemoryBackend)
    assert backend.description == "memory://"
    assert await backend.list_snapshots() == []
    await backend.check_health()
    await backend.close()


async def test_reset_forgets_snapshots_results_signals_events_and_claims(backend: InMemoryBackend) -> None:
    await backend.save_snapshot(running("a"))
    await backend.save_task_result("a", FIRST_TASK, b"out")
    await backend.store_signal("a", CANCEL, pb.SignalRequest())
    await backend.send_event("a", "approval", b"yes")
    await backend.claim_task("a", FIRST_TASK, "worker-1", None)

    backend.reset()

    assert await backend.list_snapshots() == []
    with pytest.raises(NotFoundError):
        await backend.load_task_result("a", FIRST_TASK)
    assert await backend.get_signal("a", CANCEL) is None
    assert await backend.consume_event("a", "approval") is None
    assert await backend.claim_task("a", FIRST_TASK, "worker-2", None) is not None


async def test_reset_leaves_a_usable_backend(backend: InMemoryBackend) -> None:
    backend.reset()
    await backend.save_snapshot(running("a"))

    assert [task.instance_id for task in await backend.find_available_tasks("w", 10, timedelta(seconds=1), [])] == ["a"]


async def test_a_loaded_snapshot_is_a_copy(backend: InMemoryBackend) -> None:
    await backend.save_snapshot(running("a"))

    loaded = await backend.load_snapshot("a")
    loaded.instance_id = "mutated"
    loaded.in_progress.completed_tasks.add(task_id=FIRST_TASK, output=b"forged")

    assert await backend.load_snapshot("a") == running("a")


async def test_a_saved_snapshot_is_copied_on_the_way_in(backend: InMemoryBackend) -> None:
    snapshot = running("a")
    await backend.save_snapshot(snapshot)

    snapshot.in_progress.completed_tasks.add(task_id=FIRST_TASK, output=b"forged")

    assert await backend.load_task_result("a", FIRST_TASK) is None


async def test_an_available_task_carries_a_copy_of_the_snapshot(backend: InMemoryBackend) -> None:
    await backend.save_snapshot(running("a"))

    [task] = await backend.find_available_tasks("w", 10, timedelta(seconds=1), [])
    task.snapshot.in_progress.position.at_task.task_id = SECOND_TASK

    assert current_task_id(await backend.load_snapshot("a")) == FIRST_TASK


async def test_signal_requests_are_copied_both_ways(backend: InMemoryBackend) -> None:
    await backend.save_snapshot(running("a"))
    request = pb.SignalRequest(reason="original")
    await backend.store_signal("a", PAUSE, request)

    request.reason = "changed by the caller"
    returned = await backend.get_signal("a", PAUSE)
    assert returned is not None
    returned.reason = "changed again"

    stored = await backend.get_signal("a", PAUSE)
    assert stored is not None
    assert stored.reason == "original"


async def test_a_claim_expires_exactly_at_expires_at(backend: InMemoryBackend, clock: FakeClock) -> None:
    claim = await backend.claim_task("a", FIRST_TASK, "worker-1", timedelta(seconds=10))
    assert claim is not None
    assert claim.expires_at == timestamp(START + timedelta(seconds=10))

    clock.advance(9.999)
    assert await backend.claim_task("a", FIRST_TASK, "worker-2", timedelta(seconds=10)) is None
    clock.advance(0.001)
    assert await backend.claim_task("a", FIRST_TASK, "worker-2", timedelta(seconds=10)) is not None


async def test_extend_sets_an_absolute_expiry_from_now(backend: InMemoryBackend, clock: FakeClock) -> None:
    await backend.claim_task("a", FIRST_TASK, "worker-1", timedelta(seconds=10))
    clock.advance(4)

    await backend.extend_task_claim("a", FIRST_TASK, "worker-1", timedelta(seconds=10))

    clock.advance(9.999)
    assert await backend.claim_task("a", FIRST_TASK, "worker-2", None) is None
    clock.advance(0.001)
    assert await backend.claim_task("a", FIRST_TASK, "worker-2", None) is not None


async def test_a_delay_advances_exactly_at_wake_at(backend: InMemoryBackend, clock: FakeClock) -> None:
    await backend.save_snapshot(at_delay("a", START + timedelta(seconds=5)))
    await backend.save_task_result("a", FIRST_TASK, b"first output")
    clock.advance(4.999)
    assert await backend.find_available_tasks("w", 10, timedelta(seconds=1), []) == []

    clock.advance(0.001)
    [task] = await backend.find_available_tasks("w", 10, timedelta(seconds=1), [])

    assert (task.task_id, task.input) == (SECOND_TASK, b"first output")
    assert (await backend.load_snapshot("a")).updated_at == timestamp(clock.now)


async def test_aging_lets_a_long_waiting_low_priority_task_overtake(backend: InMemoryBackend, clock: FakeClock) -> None:
    old_low = running("old-low")
    old_low.task_priority = 5
    await backend.save_snapshot(old_low)
    clock.advance(30)
    fresh_urgent = running("fresh-urgent")
    fresh_urgent.task_priority = 1
    fresh_urgent.updated_at.CopyFrom(timestamp(clock.now))
    await backend.save_snapshot(fresh_urgent)

    # Effective priority = priority - waited / interval; fresh-urgent is 1 - 0 = 1 under any interval.
    by_ten = await backend.find_available_tasks("w", 10, timedelta(seconds=10), [])  # old-low: 5 - 3 = 2
    by_five = await backend.find_available_tasks("w", 10, timedelta(seconds=5), [])  # old-low: 5 - 6 = -1

    assert [task.instance_id for task in by_ten] == ["fresh-urgent", "old-low"]
    assert [task.instance_id for task in by_five] == ["old-low", "fresh-urgent"]


async def test_the_wakeup_hub_is_public_and_counts_published_hints(backend: InMemoryBackend) -> None:
    assert isinstance(backend.wakeups, WakeupHub)

    await backend.save_snapshot(running("a"))
    await backend.save_snapshot(running("a"))  # still at the same task: nothing new became ready

    assert backend.wakeups.published == 1


async def test_a_watcher_hears_about_a_task_made_ready_by_advancement(
    backend: InMemoryBackend, clock: FakeClock
) -> None:
    await backend.save_snapshot(at_delay("a", START + timedelta(seconds=5)))
    watcher = backend.watch_wakeups()
    next_hint = asyncio.ensure_future(anext(watcher))
    await asyncio.sleep(0)  # let the watcher subscribe
    assert backend.wakeups.subscriber_count == 1

    clock.advance(5)
    await backend.find_available_tasks("w", 10, timedelta(seconds=1), [])

    hint = await asyncio.wait_for(next_hint, timeout=5)
    assert (hint.instance_id, hint.task_id, hint.definition_hash) == ("a", SECOND_TASK, DEFINITION)
    assert isinstance(watcher, AsyncGenerator)
    await watcher.aclose()
    assert backend.wakeups.subscriber_count == 0


async def test_unpause_publishes_a_hint_for_the_resumed_task(backend: InMemoryBackend) -> None:
    await backend.save_snapshot(running("a"))
    await backend.store_signal("a", PAUSE, pb.SignalRequest())
    await backend.check_and_pause("a")
    waiting = asyncio.ensure_future(backend.wait_for_wakeup(timedelta(seconds=5)))
    await asyncio.sleep(0)

    await backend.unpause("a")

    hint = await waiting
    assert hint is not None
    assert (hint.instance_id, hint.task_id) == ("a", FIRST_TASK)


async def test_a_fenced_save_without_the_claim_publishes_nothing(backend: InMemoryBackend) -> None:
    await backend.save_snapshot(running("a"))
    published = backend.wakeups.published
    moved_on = running("a", pb.ExecutionPosition(at_task=pb.AtTask(task_id=SECOND_TASK)))

    assert not await backend.save_snapshot_fenced(moved_on, FIRST_TASK, "w")

    assert backend.wakeups.published == published
    assert state_of(await backend.load_snapshot("a")) == "in_progress"
    assert current_task_id(await backend.load_snapshot("a")) == FIRST_TASK


def at_signal(instance_id: str, signal_name: str) -> pb.WorkflowSnapshot:
    signal = pb.AtSignal(signal_id=DELAY, signal_name=signal_name, next_task_id=SECOND_TASK)
    return running(instance_id, pb.ExecutionPosition(at_signal=signal))


async def test_find_available_tasks_looks_only_at_ready_and_due_instances(
    backend: InMemoryBackend, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finished runs and waits that nothing released are never inspected, however many there are."""
    for number in range(5_000):
        finished = running(f"done-{number}")
        finished.completed.CopyFrom(pb.CompletedState(final_output=b"out"))
        await backend.save_snapshot(finished)
    for number in range(2_500):
        await backend.save_snapshot(at_delay(f"sleeping-{number}", START + timedelta(hours=1)))
        await backend.save_snapshot(at_signal(f"waiting-{number}", "approval"))
    ready = {f"ready-{number}" for number in range(20)}
    for instance_id in ready:
        await backend.save_snapshot(running(instance_id))
    await backend.save_snapshot(at_delay("due", START + timedelta(seconds=1)))
    await backend.send_event("waiting-7", "approval", b"yes")
    clock.advance(1)
    inspected: list[str] = []
    built: list[str] = []
    offered, available = dispatch.candidate_task_id, dispatch.available_task

    def counting_offers(snapshot: pb.WorkflowSnapshot, worker_tags: Sequence[str], now: datetime) -> bytes | None:
        inspected.append(snapshot.instance_id)
        return offered(snapshot, worker_tags, now)

    def counting_builds(
        snapshot: pb.WorkflowSnapshot, worker_tags: Sequence[str], now: datetime
    ) -> pb.AvailableTask | None:
        built.append(snapshot.instance_id)
        return available(snapshot, worker_tags, now)

    monkeypatch.setattr(dispatch, "candidate_task_id", counting_offers)
    monkeypatch.setattr(dispatch, "available_task", counting_builds)

    found = await backend.find_available_tasks("w", 10, timedelta(seconds=1), [])

    assert len(found) == 10
    assert set(inspected) <= ready | {"due", "waiting-7"}
    assert len(inspected) <= len(ready) + 2
    assert built == [task.instance_id for task in found]  # only the chosen pay for a snapshot copy
    assert state_of(await backend.load_snapshot("due")) == "in_progress"
    assert current_task_id(await backend.load_snapshot("due")) == SECOND_TASK
    assert current_task_id(await backend.load_snapshot("waiting-7")) == SECOND_TASK
