"""What only the in-memory backend promises: reset(), copies, its wakeup hub.

The rules themselves are proven for every store by tests/contract (time boundaries on
an injected clock included) and tests/properties.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta

import pytest

from sayiir_client.errors import NotFoundError
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.api.wakeups import WakeupHub
from sayiir_server.backends import open_backend
from sayiir_server.backends.memory import InMemoryBackend, MemoryStorage
from sayiir_server.domain.model import CANCEL, PAUSE, current_task_id, state_of, timestamp

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


async def test_open_backend_with_a_memory_url_gives_an_engine_over_an_empty_memory_store() -> None:
    backend = await open_backend("memory://")

    assert isinstance(backend.storage, MemoryStorage)
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
    await backend.claim_task("a", FIRST_TASK, "holder", None)  # held: the request stays pending (SIG-9.2)
    request = pb.SignalRequest(reason="original")
    await backend.store_signal("a", PAUSE, request)

    request.reason = "changed by the caller"
    returned = await backend.get_signal("a", PAUSE)
    assert returned is not None
    returned.reason = "changed again"

    stored = await backend.get_signal("a", PAUSE)
    assert stored is not None
    assert stored.reason == "original"


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
