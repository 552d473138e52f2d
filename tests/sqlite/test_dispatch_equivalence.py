"""SQLite's indexed dispatch returns exactly what the reference (in-memory) backend returns.

find_available_tasks on SQLite reads bounded index ranges per priority and merges them; the
in-memory backend looks at every instance. Random populations (priorities, ages, tags, retry
backoffs, anti-affinity, claims, pending signals, finished runs) must get identical answers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.memory import InMemoryBackend
from sayiir_server.backends.sqlite import SqliteBackend
from sayiir_server.model import CANCEL, PAUSE, SignalKind
from sayiir_server.store import Backend
from tests.contract.builders import at_task, completed, signal_request, task_id, with_retry

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
WORKERS = ("worker-1", "worker-2")
TAGS = ("gpu", "eu")


class Clock:
    """One "now" shared by both backends, moved back to stage claims that expired."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Instance:
    priority: int | None
    age_s: int
    tags: tuple[str, ...]
    retry: tuple[int, str | None] | None  # (next_retry_at offset from NOW in s, last failed worker)
    has_input: bool
    claim: str | None  # "live", "expired" or None
    signal: SignalKind | None
    finished: bool


instances = st.builds(
    Instance,
    priority=st.none() | st.sampled_from([1, 3, 5]) | st.integers(0, 7),
    age_s=st.integers(0, 7200) | st.sampled_from([0, 60]),
    tags=st.lists(st.sampled_from(TAGS), unique=True).map(tuple),
    retry=st.sampled_from([None, None, None]) | st.tuples(st.integers(-600, 600), st.none() | st.sampled_from(WORKERS)),
    has_input=st.sampled_from([True, True, True, True, False]),
    claim=st.sampled_from([None, None, None, None, "live", "expired"]),
    signal=st.sampled_from([None, None, None, None, None, CANCEL, PAUSE]),
    finished=st.sampled_from([False, False, False, False, True]),
)


def snapshot_of(number: int, instance: Instance) -> pb.WorkflowSnapshot:
    instance_id = f"run-{number:03d}"
    if instance.finished:
        return completed(instance_id)
    snapshot = at_task(
        instance_id,
        "step",
        priority=instance.priority,
        updated_at=NOW - timedelta(seconds=instance.age_s),
        tags=instance.tags,
        initial_input=b"input" if instance.has_input else None,
    )
    if instance.retry is not None:
        offset_s, failed_by = instance.retry
        with_retry(snapshot, "step", next_retry_at=NOW + timedelta(seconds=offset_s), last_failed_worker=failed_by)
    return snapshot


async def populate(backend: Backend, clock: Clock, population: list[Instance]) -> None:
    for number, instance in enumerate(population):
        snapshot = snapshot_of(number, instance)
        await backend.save_snapshot(snapshot)
        if instance.claim is not None:
            clock.now = NOW - timedelta(minutes=10) if instance.claim == "expired" else NOW
            await backend.claim_task(snapshot.instance_id, task_id("step"), "holder", timedelta(minutes=5))
            clock.now = NOW
        if instance.signal is not None and not instance.finished:
            await backend.store_signal(snapshot.instance_id, instance.signal, signal_request())


async def dispatch_on_both(
    population: list[Instance], worker: str, worker_tags: list[str], limit: int, aging: timedelta
) -> tuple[list[pb.AvailableTask], list[pb.AvailableTask]]:
    memory_clock, sqlite_clock = Clock(), Clock()
    memory = InMemoryBackend(clock=memory_clock)
    sqlite = await SqliteBackend.open("sqlite:///:memory:", clock=sqlite_clock)
    try:
        await populate(memory, memory_clock, population)
        await populate(sqlite, sqlite_clock, population)
        expected = await memory.find_available_tasks(worker, limit, aging, worker_tags)
        found = await sqlite.find_available_tasks(worker, limit, aging, worker_tags)
    finally:
        await sqlite.close()
    return expected, found


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    population=st.lists(instances, max_size=10) | st.lists(instances, min_size=20, max_size=60),
    worker=st.sampled_from(WORKERS),
    worker_tags=st.lists(st.sampled_from(TAGS), unique=True),
    limit=st.integers(1, 4) | st.integers(1, 60),
    aging=st.sampled_from([timedelta(0), timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)]),
)
def test_sqlite_dispatch_matches_the_reference_backend(
    population: list[Instance], worker: str, worker_tags: list[str], limit: int, aging: timedelta
) -> None:
    expected, found = asyncio.run(dispatch_on_both(population, worker, worker_tags, limit, aging))

    assert [(t.instance_id, t.input) for t in found] == [(t.instance_id, t.input) for t in expected]
    assert found == expected
