"""The blocking client: the same surface as the asyncio one, over the synchronous stubs.

The servers run on the test's event loop, so every blocking call goes through
asyncio.to_thread (a blocking call on the loop's own thread would deadlock).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from google.protobuf.message import Message

from sayiir_client import (
    AsyncPersistenceClient,
    ClaimLostError,
    DefinitionHash,
    NotFoundError,
    PersistenceClient,
    RetryOptions,
    TaskId,
)
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.backends.memory import InMemoryBackend
from tests.client.fakes import Context, FakeServer, StreamBehaviour, fake_server
from tests.client.serving import served_backend

DEFINITION = DefinitionHash.from_name("definition")
FIRST = TaskId.from_name("first")
SECOND = TaskId.from_name("second")


def public_methods(cls: type) -> dict[str, object]:
    return {name: member for name, member in vars(cls).items() if not name.startswith("_")}


def test_the_blocking_client_has_every_method_of_the_async_client_with_the_same_parameters() -> None:
    async_methods = public_methods(AsyncPersistenceClient)
    sync_methods = public_methods(PersistenceClient)

    assert set(sync_methods) == set(async_methods)
    for name, async_member in async_methods.items():
        sync_member = sync_methods[name]
        if isinstance(async_member, property):
            assert isinstance(sync_member, property), name
            continue
        assert callable(async_member)
        assert callable(sync_member)
        async_parameters = inspect.signature(async_member).parameters
        sync_parameters = inspect.signature(sync_member).parameters
        assert list(sync_parameters) == list(async_parameters), name
        assert not inspect.iscoroutinefunction(sync_member), name


@pytest.fixture
async def address() -> AsyncIterator[str]:
    async with served_backend(InMemoryBackend()) as address:
        yield address


async def test_a_worker_step_with_the_blocking_client(address: str) -> None:
    def worker_step() -> tuple[bytes | None, bool]:
        with PersistenceClient(address) as client:
            client.prepare_run("order-1", DEFINITION, b"in", pb.FirstTask(task_id=FIRST))
            [task] = client.find_available_tasks("worker", 10)
            claim = client.claim_task(task.instance_id, task.task_id, "worker", timedelta(seconds=30))
            assert claim is not None
            snapshot = task.snapshot
            snapshot.in_progress.completed_tasks.add(task_id=FIRST, output=b"one")
            snapshot.in_progress.last_completed_task_id = FIRST
            snapshot.in_progress.position.at_task.task_id = SECOND
            saved = client.save_snapshot_fenced(snapshot, FIRST, "worker")
            client.release_task_claim(task.instance_id, FIRST, "worker")
            return client.load_task_result("order-1", FIRST), saved

    output, saved = await asyncio.to_thread(worker_step)

    assert saved is True
    assert output == b"one"


async def test_blocking_calls_raise_the_typed_errors(address: str) -> None:
    def failing_calls() -> None:
        with PersistenceClient(address) as client:
            with pytest.raises(NotFoundError):
                client.load_snapshot("missing")
            client.prepare_run("order-1", DEFINITION, b"in", pb.FirstTask(task_id=FIRST))
            client.claim_task("order-1", FIRST, "worker-a", None)
            with pytest.raises(ClaimLostError):
                client.release_task_claim("order-1", FIRST, "worker-b")

    await asyncio.to_thread(failing_calls)


async def test_list_snapshots_walks_every_page(address: str) -> None:
    ids = [f"order-{n:02}" for n in range(7)]

    def listing() -> tuple[list[str], list[str], list[str]]:
        with PersistenceClient(address) as client:
            for instance_id in reversed(ids):
                client.prepare_run(instance_id, DEFINITION, b"", pb.FirstTask(task_id=FIRST))
            return (
                list(client.iter_snapshots(page_size=3)),
                client.list_snapshots(),
                client.list_snapshots_page(ids[2], 3),
            )

    paged, listed, page = await asyncio.to_thread(listing)

    assert paged == ids
    assert listed == ids
    assert page == ids[3:6]


async def test_the_blocking_stream_reconnects_after_unavailable() -> None:
    async with fake_server() as fake:
        fake.streams["WatchWakeups"] = _breaking_once(fake)
        retry = RetryOptions(initial_backoff=timedelta(milliseconds=10), max_backoff=timedelta(seconds=0.05))

        def watch() -> list[str]:
            with PersistenceClient(fake.address, retry=retry) as client:
                stream = client.watch_wakeups()
                received = [next(stream).instance_id, next(stream).instance_id]
                stream.close()
                return received

        received = await asyncio.wait_for(asyncio.to_thread(watch), 20)

    assert received == ["first", "second"]
    assert len(fake.calls_to("WatchWakeups")) == 2


def _breaking_once(fake: FakeServer) -> StreamBehaviour:
    async def stream(request: Message, context: Context) -> AsyncIterator[Message]:
        first_call = len(fake.calls_to("WatchWakeups")) == 1
        name = "first" if first_call else "second"
        yield rr.WatchWakeupsResponse(hint=pb.TaskWakeupHint(instance_id=name, task_id=FIRST))
        if first_call:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
        await asyncio.Event().wait()

    return stream
