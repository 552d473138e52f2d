"""wait_for_wakeup and watch_wakeups through the client; the stream reconnects after UNAVAILABLE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import grpc
import pytest
from google.protobuf.message import Message

from sayiir_client import AsyncPersistenceClient, DefinitionHash, InvalidArgumentError, RetryOptions, TaskId
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.backends.memory import InMemoryBackend
from tests.client.fakes import Context, FakeServer, abort_with, error_status, fake_server
from tests.client.serving import served_backend

DEFINITION = DefinitionHash.from_name("definition")
FAST_RETRY = RetryOptions(
    max_attempts=2, initial_backoff=timedelta(milliseconds=10), max_backoff=timedelta(seconds=0.05)
)


def hint(instance_id: str) -> pb.TaskWakeupHint:
    return pb.TaskWakeupHint(instance_id=instance_id, task_id=TaskId.from_name("task"), definition_hash=DEFINITION)


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    async with fake_server() as server:
        yield server


async def until(condition: Callable[[], bool]) -> None:
    """Poll a condition the server side offers no event for, for up to 10 s."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 10 s")


async def take(stream: AsyncIterator[pb.TaskWakeupHint], count: int) -> list[str]:
    return [(await asyncio.wait_for(anext(stream), 10)).instance_id for _ in range(count)]


async def test_the_stream_reconnects_after_unavailable(fake: FakeServer) -> None:
    async def breaking_once(request: Message, context: Context) -> AsyncIterator[Message]:
        first_call = len(fake.calls_to("WatchWakeups")) == 1
        yield rr.WatchWakeupsResponse(hint=hint("first" if first_call else "second"))
        if first_call:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
        await asyncio.Event().wait()

    fake.streams["WatchWakeups"] = breaking_once
    async with AsyncPersistenceClient(fake.address, retry=FAST_RETRY) as client:
        stream = client.watch_wakeups(["gpu"])
        received = await take(stream, 2)
        await stream.aclose()

    assert received == ["first", "second"]
    assert [list(call.request.worker_tags) for call in fake.calls_to("WatchWakeups")] == [["gpu"], ["gpu"]]  # type: ignore[attr-defined]


async def test_a_stream_the_server_ends_is_reopened(fake: FakeServer) -> None:
    async def one_hint_per_stream(request: Message, context: Context) -> AsyncIterator[Message]:
        yield rr.WatchWakeupsResponse(hint=hint(f"stream-{len(fake.calls_to('WatchWakeups'))}"))

    fake.streams["WatchWakeups"] = one_hint_per_stream
    async with AsyncPersistenceClient(fake.address, retry=FAST_RETRY) as client:
        stream = client.watch_wakeups()
        received = await take(stream, 3)
        await stream.aclose()

    assert received == ["stream-1", "stream-2", "stream-3"]


async def test_any_other_failure_ends_the_stream_with_a_typed_error(fake: FakeServer) -> None:
    async def refusing(request: Message, context: Context) -> AsyncIterator[Message]:
        await abort_with(context, error_status(grpc.StatusCode.INVALID_ARGUMENT, "", "INVALID_ARGUMENT", field="tags"))
        yield rr.WatchWakeupsResponse()

    fake.streams["WatchWakeups"] = refusing
    async with AsyncPersistenceClient(fake.address, retry=FAST_RETRY) as client:
        with pytest.raises(InvalidArgumentError):
            await anext(client.watch_wakeups())

    assert len(fake.calls_to("WatchWakeups")) == 1


async def test_leaving_the_iterator_cancels_the_server_stream(fake: FakeServer) -> None:
    cancelled = asyncio.Event()

    async def endless(request: Message, context: Context) -> AsyncIterator[Message]:
        yield rr.WatchWakeupsResponse(hint=hint("only"))
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    fake.streams["WatchWakeups"] = endless
    async with AsyncPersistenceClient(fake.address) as client:
        stream = client.watch_wakeups()
        await take(stream, 1)
        await stream.aclose()
        await asyncio.wait_for(cancelled.wait(), 10)


async def test_hints_of_new_runs_reach_waiters_and_watchers_through_the_server() -> None:
    backend = InMemoryBackend()
    async with served_backend(backend) as address, AsyncPersistenceClient(address) as client:
        stream = client.watch_wakeups()
        watching = asyncio.ensure_future(anext(stream))
        waiting = asyncio.ensure_future(client.wait_for_wakeup(timedelta(seconds=10)))
        await until(lambda: backend.wakeups.subscriber_count == 2)  # both listen before the run is created
        await client.prepare_run("order-1", DEFINITION, b"in", pb.FirstTask(task_id=TaskId.from_name("task")))

        watched, waited = await asyncio.wait_for(asyncio.gather(watching, waiting), 10)
        await stream.aclose()

    assert watched.instance_id == "order-1"
    assert waited is not None
    assert waited.task_id == TaskId.from_name("task")


async def test_wait_for_wakeup_returns_none_when_nothing_arrives() -> None:
    async with served_backend(InMemoryBackend()) as address, AsyncPersistenceClient(address) as client:
        assert await client.wait_for_wakeup(timedelta(milliseconds=50)) is None
