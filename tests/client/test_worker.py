"""sayiir_client.Worker runs the worker protocol (WORKER-1) against a real server: claim, run, heartbeat, complete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta

import grpc
import pytest

from sayiir_client import AsyncPersistenceClient, DefinitionHash, TaskId, Worker, WorkerOptions
from sayiir_client.errors import FinalStateError, TransportError
from sayiir_client.tasks import TaskCompletion
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.worker import TaskHandler
from sayiir_server.backends.memory import InMemoryBackend
from tests.client.serving import served_backend

GREETING = DefinitionHash.from_name("greeting/v1")
OTHER = DefinitionHash.from_name("other/v1")
GREET = TaskId.from_name("greet")
WITHIN = 10.0
"""Seconds any awaited outcome may take before the test fails (a bound, not a measurement)."""


@pytest.fixture
async def client() -> AsyncIterator[AsyncPersistenceClient]:
    async with served_backend(InMemoryBackend()) as address, AsyncPersistenceClient(address) as client:
        yield client


async def start(client: AsyncPersistenceClient, instance_id: str, definition: bytes = GREETING) -> None:
    await client.prepare_run(instance_id, definition, b"world", pb.FirstTask(task_id=GREET))


def options(**overrides: object) -> WorkerOptions:
    settings: dict[str, object] = {"definition_hashes": [GREETING], "claim_wait": timedelta(milliseconds=200)}
    return WorkerOptions(**(settings | overrides))  # type: ignore[arg-type]


async def running_until(worker: Worker, done: Callable[[], Awaitable[bool]]) -> None:
    """Run `worker` until `done()` holds, then stop it and wait for its graceful end."""
    running = asyncio.ensure_future(worker.run())
    try:
        async with asyncio.timeout(WITHIN):
            while not await done():  # noqa: ASYNC110 - the outcome is on the server; nothing announces it
                await asyncio.sleep(0.02)
    finally:
        worker.stop()
        await asyncio.wait_for(running, WITHIN)


def state_is(client: AsyncPersistenceClient, instance_id: str, state: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await client.load_snapshot(instance_id)).WhichOneof("state") == state

    return check


async def greet(task: pb.AvailableTask) -> bytes:
    return b"hello, " + task.input


async def test_a_handlers_output_completes_the_workflow(client: AsyncPersistenceClient) -> None:
    await start(client, "greeting-1")
    worker = Worker(client, "worker-1", greet, options())

    await running_until(worker, state_is(client, "greeting-1", "completed"))

    assert (await client.load_snapshot("greeting-1")).completed.final_output == b"hello, world"
    assert (worker.stats.claimed, worker.stats.completed, worker.stats.leases_lost) == (1, 1, 0)


async def test_a_worker_claims_only_tasks_of_its_definitions(client: AsyncPersistenceClient) -> None:
    await start(client, "theirs", OTHER)
    await start(client, "ours")
    worker = Worker(client, "worker-1", greet, options())

    await running_until(worker, state_is(client, "ours", "completed"))

    assert (await client.load_snapshot("theirs")).WhichOneof("state") == "in_progress"
    assert await client.claim_task("theirs", GREET, "auditor", timedelta(seconds=5)) is not None


async def test_a_failing_handler_records_a_retry_for_another_worker(client: AsyncPersistenceClient) -> None:
    await start(client, "greeting-1")

    async def failing(task: pb.AvailableTask) -> bytes:
        raise RuntimeError("the greeting service is down")

    worker = Worker(client, "worker-1", failing, options(retry_initial_delay=timedelta(minutes=5)))

    async def retried() -> bool:
        return bool((await client.load_snapshot("greeting-1")).task_retries)

    await running_until(worker, retried)

    retry = (await client.load_snapshot("greeting-1")).task_retries[0]
    assert retry.attempts == 1
    assert retry.last_error == "RuntimeError: the greeting service is down"
    assert retry.last_failed_worker == "worker-1"
    assert worker.stats.failed == 1


async def test_heartbeats_keep_the_lease_of_a_handler_running_past_its_ttl(client: AsyncPersistenceClient) -> None:
    await start(client, "greeting-1")

    async def slow(task: pb.AvailableTask) -> bytes:
        await asyncio.sleep(0.9)  # three times the lease
        return b"late but held"

    worker = Worker(client, "worker-1", slow, options(claim_ttl=timedelta(milliseconds=300)))

    await running_until(worker, state_is(client, "greeting-1", "completed"))

    assert (await client.load_snapshot("greeting-1")).completed.final_output == b"late but held"
    assert worker.stats.leases_lost == 0


async def test_a_lost_lease_drops_the_result_and_writes_nothing(client: AsyncPersistenceClient) -> None:
    await start(client, "greeting-1")
    handler_started, taken_over = asyncio.Event(), asyncio.Event()

    async def overtaken(task: pb.AvailableTask) -> bytes:
        handler_started.set()
        await taken_over.wait()
        return b"too late"

    no_heartbeat = options(claim_ttl=timedelta(milliseconds=200), heartbeat_interval=timedelta(minutes=5))
    worker = Worker(client, "worker-1", overtaken, no_heartbeat)
    running = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(handler_started.wait(), WITHIN)
    await asyncio.sleep(0.3)  # the 200 ms lease lapses
    rival = await client.claim_available_tasks("worker-2", 1, timedelta(minutes=5))
    taken_over.set()
    worker.stop()
    await asyncio.wait_for(running, WITHIN)

    assert [item.task.instance_id for item in rival] == ["greeting-1"]
    assert (await client.load_snapshot("greeting-1")).WhichOneof("state") == "in_progress"
    assert worker.stats.leases_lost == 1


async def test_stop_lets_a_running_handler_finish_and_complete(client: AsyncPersistenceClient) -> None:
    await start(client, "greeting-1")
    handler_started = asyncio.Event()
    worker: Worker

    async def stopping_midway(task: pb.AvailableTask) -> bytes:
        handler_started.set()
        worker.stop()
        await asyncio.sleep(0.05)
        return b"finished after stop"

    handler: TaskHandler = stopping_midway
    worker = Worker(client, "worker-1", handler, options())
    await asyncio.wait_for(worker.run(), WITHIN)

    assert handler_started.is_set()
    assert (await client.load_snapshot("greeting-1")).completed.final_output == b"finished after stop"


async def finishing_together(worker: Worker, gate: asyncio.Event, *, claimed: int, completed: int) -> None:
    """Run `worker` until it holds `claimed` tasks, open `gate` so their handlers finish at once, and stop it
    once `completed` of them are."""
    running = asyncio.ensure_future(worker.run())
    try:
        async with asyncio.timeout(WITHIN):
            while worker.stats.claimed < claimed:  # noqa: ASYNC110 - the claims arrive from the server
                await asyncio.sleep(0.01)
            gate.set()
            while worker.stats.completed < completed:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        worker.stop()
        await asyncio.wait_for(running, WITHIN)


class CountingClient(AsyncPersistenceClient):
    """Records the size of every CompleteTasks the worker sends; `unimplemented` plays a server without it."""

    def __init__(self, address: str, *, unimplemented: bool = False) -> None:
        super().__init__(address)
        self.batches: list[int] = []
        self.single_completions = 0
        self._unimplemented = unimplemented

    async def complete_tasks(self, completions: Sequence[TaskCompletion]) -> list[bool | FinalStateError]:
        if self._unimplemented:
            raise TransportError(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        self.batches.append(len(completions))
        return await super().complete_tasks(completions)

    async def complete_task(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        self.single_completions += 1
        return await super().complete_task(snapshot, task_id, worker_id)


async def test_tasks_that_finish_together_are_completed_in_one_call() -> None:
    gate = asyncio.Event()

    async def greet_at_once(task: pb.AvailableTask) -> bytes:
        await gate.wait()
        return b"hello, " + task.input

    async with served_backend(InMemoryBackend()) as address, CountingClient(address) as client:
        for number in range(6):
            await start(client, f"greeting-{number}")
        await finishing_together(Worker(client, "worker-1", greet_at_once, options()), gate, claimed=6, completed=6)

    assert sum(client.batches) == 6
    assert len(client.batches) < 6  # the ones that finished while a call was in flight went together


async def test_a_worker_completes_one_task_per_call_on_a_server_without_complete_tasks() -> None:
    async with served_backend(InMemoryBackend()) as address, CountingClient(address, unimplemented=True) as client:
        await start(client, "greeting-1")
        await start(client, "greeting-2")
        worker = Worker(client, "worker-1", greet, options())

        await running_until(worker, state_is(client, "greeting-2", "completed"))

        assert (await client.load_snapshot("greeting-1")).WhichOneof("state") == "completed"
        assert (client.single_completions, worker.stats.completed) == (2, 2)


async def test_an_invalid_snapshot_fails_its_own_task_only_when_completions_go_together() -> None:
    gate = asyncio.Event()

    async def one_stateless(task: pb.AvailableTask) -> bytes | pb.WorkflowSnapshot:
        await gate.wait()
        if task.instance_id == "greeting-bad":
            return pb.WorkflowSnapshot(instance_id=task.instance_id, definition_hash=GREETING)  # no state: invalid
        return b"hello, " + task.input

    async with served_backend(InMemoryBackend()) as address, CountingClient(address) as client:
        good = [f"greeting-{number}" for number in range(5)]
        for name in [*good, "greeting-bad"]:  # claimed, and so finished, in this order: the bad one in a batch
            await start(client, name)
        await finishing_together(Worker(client, "worker-1", one_stateless, options()), gate, claimed=6, completed=5)

        assert max(client.batches) > 1
        for name in good:
            assert (await client.load_snapshot(name)).WhichOneof("state") == "completed"
        assert (await client.load_snapshot("greeting-bad")).WhichOneof("state") == "in_progress"
