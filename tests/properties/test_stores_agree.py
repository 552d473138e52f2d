"""Every store gives the same answers as the naive in-memory oracle, and the oracle's finds are the pure rules'.

Hypothesis draws a population (ready tasks of every priority, age, tag set, retry state and
anti-affinity; delays and signal waits, due or not; finished and paused runs) and a sequence
of operations (finds, claims, releases, extensions, fenced saves, signals, events, results,
unpause, prepare_run, clock ticks). The sequence runs on the memory oracle and on SQLite and
PostgreSQL, each with its own fake clock; every answer (find order included) and the final
stored state must be identical. Each find of the oracle is also checked against a full sort of
every candidate by the dispatch rules (the engine's merge of per-priority pages must not differ).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends import open_backend
from sayiir_server.backends.memory import InMemoryBackend
from sayiir_server.domain import dispatch, selection
from sayiir_server.domain.engine import Engine
from sayiir_server.domain.model import CANCEL, PAUSE, clamp_aging_interval, timestamp
from sayiir_server.domain.port import FIRST_PAGE, ReadyQuery, Transaction
from tests.contract.builders import (
    DEFINITION_HASH,
    completed,
    delay_position,
    first_task,
    in_progress,
    paused,
    signal_position,
    task_id,
    with_retry,
)

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
WORKERS = ("worker-1", "worker-2")
TAGS = ("gpu", "eu")
INSTANCES = 12
SIGNAL = "approval"


class FakeClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Instance:
    kind: str  # ready, delay, signal, completed, paused
    priority: int | None
    age_s: int
    tags: tuple[str, ...]
    retry: tuple[int, str | None] | None  # (next_retry_at offset from NOW in s, last failed worker)
    has_input: bool
    wake_offset_s: int


instances = st.builds(
    Instance,
    kind=st.sampled_from(["ready"] * 6 + ["delay", "signal", "completed", "paused"]),
    priority=st.none() | st.integers(1, 5),
    age_s=st.integers(0, 7200) | st.sampled_from([0, 60]),
    tags=st.lists(st.sampled_from(TAGS), unique=True).map(tuple),
    retry=st.none() | st.tuples(st.integers(-600, 600), st.none() | st.sampled_from(WORKERS)),
    has_input=st.sampled_from([True, True, True, False]),
    wake_offset_s=st.integers(-60, 60),
)


def snapshot_of(number: int, instance: Instance) -> pb.WorkflowSnapshot:
    instance_id = f"run-{number:02d}"
    if instance.kind in ("completed", "paused"):
        snapshot = completed(instance_id) if instance.kind == "completed" else paused(instance_id)
        snapshot.created_at.CopyFrom(timestamp(NOW - timedelta(hours=1)))
        snapshot.updated_at.CopyFrom(timestamp(NOW - timedelta(seconds=instance.age_s)))
        if instance.kind == "paused":
            snapshot.paused.paused_at.CopyFrom(timestamp(NOW))
        return snapshot
    wake_at = NOW + timedelta(seconds=instance.wake_offset_s)
    position = pb.ExecutionPosition(at_task=pb.AtTask(task_id=task_id("step")))
    if instance.kind == "delay":
        position = delay_position("nap", wake_at, "step")
    elif instance.kind == "signal":
        position = signal_position(SIGNAL, wake_at if instance.wake_offset_s % 2 else None, "step")
    snapshot = in_progress(  # entered_at of a delay is wall-clock: built once, saved to every store
        instance_id,
        position,
        priority=instance.priority,
        updated_at=NOW - timedelta(seconds=instance.age_s),
        tags=instance.tags,
        initial_input=b"input" if instance.has_input else None,
    )
    if instance.retry is not None:
        offset_s, failed_by = instance.retry
        with_retry(snapshot, "step", next_retry_at=NOW + timedelta(seconds=offset_s), last_failed_worker=failed_by)
    return snapshot


numbers = st.integers(0, INSTANCES - 1)
workers = st.sampled_from(WORKERS)
operations = st.one_of(
    st.tuples(
        st.just("find"),
        workers,
        st.lists(st.sampled_from(TAGS), unique=True),
        st.integers(1, 6),
        st.sampled_from([0, 1, 60, 3600]),
    ),
    st.tuples(st.just("claim"), numbers, workers, st.sampled_from([None, 5, 600])),
    st.tuples(st.just("release"), numbers, workers),
    st.tuples(st.just("extend"), numbers, workers, st.sampled_from([0, 5, 600])),
    st.tuples(st.just("fenced_complete"), numbers, workers),
    st.tuples(st.just("store_signal"), numbers, st.sampled_from([CANCEL, PAUSE])),
    st.tuples(st.just("check"), numbers),
    st.tuples(st.just("unpause"), numbers),
    st.tuples(st.just("event"), numbers, st.binary(max_size=3)),
    st.tuples(st.just("task_result"), numbers, st.binary(max_size=3)),
    st.tuples(st.just("load_result"), numbers),
    st.tuples(st.just("delete"), numbers),
    st.tuples(st.just("prepare"), numbers, st.sampled_from([1, 2, 3])),
    st.tuples(st.just("tick"), st.sampled_from([1, 30, 120, 900])),
)


POLICIES = (enums.CONFLICT_POLICY_FAIL, enums.CONFLICT_POLICY_USE_EXISTING, enums.CONFLICT_POLICY_TERMINATE_EXISTING)


def instance_id(number: int) -> str:
    return f"run-{number:02d}"


def normal(value: Any) -> Any:
    """An answer in a form every store must give identically."""
    if isinstance(value, Message):
        return (type(value).__name__, value.SerializeToString(deterministic=True))
    if isinstance(value, list):
        return [normal(item) for item in value]
    return value


async def apply(store: Engine, clock: FakeClock, operation: tuple[Any, ...]) -> Any:
    name, *arguments = operation
    try:
        return normal(await _run(store, clock, name, *arguments))
    except Exception as error:  # the error's kind is the answer
        return type(error).__name__


async def _run(store: Engine, clock: FakeClock, name: str, *arguments: Any) -> Any:
    if name == "find":
        worker, tags, limit, aging_s = arguments
        return await store.find_available_tasks(worker, limit, timedelta(seconds=aging_s), tags)
    if name == "claim":
        number, worker, ttl_s = arguments
        ttl = None if ttl_s is None else timedelta(seconds=ttl_s)
        return await store.claim_task(instance_id(number), task_id("step"), worker, ttl)
    if name == "release":
        return await store.release_task_claim(instance_id(arguments[0]), task_id("step"), arguments[1])
    if name == "extend":
        number, worker, ttl_s = arguments
        return await store.extend_task_claim(instance_id(number), task_id("step"), worker, timedelta(seconds=ttl_s))
    if name == "fenced_complete":
        number, worker = arguments
        done = completed(instance_id(number), final_output=b"done by " + worker.encode())
        done.created_at.CopyFrom(timestamp(NOW))
        done.updated_at.CopyFrom(timestamp(clock.now))
        return await store.save_snapshot_fenced(done, task_id("step"), worker)
    if name == "store_signal":
        request = pb.SignalRequest(reason="property", requested_by="hypothesis", requested_at=timestamp(clock.now))
        return await store.store_signal(instance_id(arguments[0]), arguments[1], request)
    if name == "check":
        return await store.check_control_signals(instance_id(arguments[0]), task_id("step"))
    if name == "unpause":
        return await store.unpause(instance_id(arguments[0]))
    if name == "event":
        return await store.send_event(instance_id(arguments[0]), SIGNAL, arguments[1])
    if name == "task_result":
        return await store.save_task_result(instance_id(arguments[0]), task_id("step"), arguments[1])
    if name == "load_result":
        return await store.load_task_result(instance_id(arguments[0]), task_id("step"))
    if name == "delete":
        return await store.delete_snapshot(instance_id(arguments[0]))
    if name == "prepare":
        policy = (
            enums.CONFLICT_POLICY_FAIL,
            enums.CONFLICT_POLICY_USE_EXISTING,
            enums.CONFLICT_POLICY_TERMINATE_EXISTING,
        )
        outcome = await store.prepare_run(
            instance_id(arguments[0]), DEFINITION_HASH, b"fresh", first_task("step"), policy[arguments[1] - 1]
        )
        return outcome.WhichOneof("outcome")
    if name == "tick":
        clock.now += timedelta(seconds=arguments[0])
        return None
    raise AssertionError(name)


async def stored_state(store: Engine) -> list[Any]:
    state = []
    for stored_id in await store.list_snapshots():
        signals = [await store.get_signal(stored_id, kind) for kind in (CANCEL, PAUSE)]
        state.append((stored_id, normal(await store.load_snapshot(stored_id)), normal(signals)))
    return state


async def reference_find(memory: InMemoryBackend, operation: tuple[Any, ...], now: datetime) -> Any:
    """DISP-3..5 as a full sort of every ready row, over the oracle's state after its own find."""
    _, worker, tags, limit, aging_s = operation
    demand = selection.Demand(worker, limit, clamp_aging_interval(timedelta(seconds=aging_s)), tuple(tags), now)

    async def every_candidate(transaction: Transaction) -> list[pb.AvailableTask]:
        query = ReadyQuery(None, None, worker, now, tags, FIRST_PAGE, page_size=10**6)
        pages = await transaction.ready_pages(query)
        rows = [candidate for page in pages.values() for candidate in page]
        tasks = [dispatch.available_task(c.snapshot, tags, now) for c in rows if selection.accepted(c, demand)]
        return [task for task in tasks if task is not None]

    candidates = await memory.storage.read(every_candidate)
    return normal(dispatch.order_and_limit(candidates, worker, demand.aging_interval, now, limit))


async def answers_of(
    store: Engine, clock: FakeClock, snapshots: list[pb.WorkflowSnapshot], ops: list[Any]
) -> list[Any]:
    for snapshot in snapshots:
        await store.save_snapshot(snapshot)
    answers = [await apply(store, clock, operation) for operation in ops]
    return [*answers, await stored_state(store)]


@asynccontextmanager
async def opened(kind: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Engine]:
    if kind == "postgres":
        from tests.support.postgres import temporary_database_url

        async with temporary_database_url() as url:
            store = await open_backend(url, clock=clock, timer=False)
            try:
                yield store
            finally:
                await store.close()
        return
    store = await open_backend("sqlite:///:memory:" if kind == "sqlite" else "memory://", clock=clock, timer=False)
    try:
        yield store
    finally:
        await store.close()


async def compare(kind: str, tmp_path: Path, population: list[Instance], ops: list[Any]) -> None:
    snapshots = [snapshot_of(number, instance) for number, instance in enumerate(population)]
    oracle_clock = FakeClock()
    oracle = InMemoryBackend(clock=oracle_clock)
    for snapshot in snapshots:
        await oracle.save_snapshot(snapshot)
    expected = []
    for operation in ops:
        expected.append(await apply(oracle, oracle_clock, operation))
        if operation[0] == "find":
            assert expected[-1] == await reference_find(oracle, operation, oracle_clock.now), operation
    expected.append(await stored_state(oracle))
    clock = FakeClock()
    async with opened(kind, tmp_path, clock) as store:
        found = await answers_of(store, clock, snapshots, ops)
    for step, (want, got) in enumerate(zip(expected, found, strict=True)):
        assert got == want, f"step {step}: {ops[step] if step < len(ops) else 'final state'}"


@pytest.mark.parametrize(
    ("kind", "examples"),
    [pytest.param("sqlite", 100, id="sqlite"), pytest.param("postgres", 30, id="postgres", marks=pytest.mark.postgres)],
)
def test_every_store_answers_as_the_memory_oracle_and_its_finds_are_the_pure_rules(
    kind: str, examples: int, tmp_path: Path
) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        population=st.lists(instances, min_size=1, max_size=INSTANCES),
        ops=st.lists(operations, min_size=8, max_size=30),
    )
    def check(population: list[Instance], ops: list[Any]) -> None:
        asyncio.run(compare(kind, tmp_path, population, ops))

    check()
