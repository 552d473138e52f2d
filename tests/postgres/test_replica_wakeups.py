"""Wakeups through LISTEN/NOTIFY: a task made ready through one replica wakes the subscribers of every replica."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import pytest

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.postgres.backend import PostgresStore, PostgresTransaction
from sayiir_server.backends.postgres.options import parse_postgres_url
from sayiir_server.backends.postgres.rows import MAX_NOTIFY_PAYLOAD, notify_channel
from sayiir_server.domain.engine import Engine, write_of
from tests.contract.builders import DEFINITION_HASH, at_delay, at_task, first_task, hint_for, seconds_ago, task_id
from tests.postgres.conftest import OpenReplica

pytestmark = pytest.mark.postgres

HEARD_WITHIN = timedelta(seconds=5)
"""Generous bound for a hint to arrive (it typically takes milliseconds)."""

SILENCE = timedelta(milliseconds=300)
"""How long a test listens to conclude that no hint came."""


@asynccontextmanager
async def _watching(replica: Engine) -> AsyncIterator[asyncio.Queue[pb.TaskWakeupHint]]:
    """Collect the hints replica's watch_wakeups yields, from now on."""
    heard: asyncio.Queue[pb.TaskWakeupHint] = asyncio.Queue()
    subscribed = asyncio.Event()

    async def watch() -> None:
        stream = replica.watch_wakeups()
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)  # the generator body has run up to its first await: it is subscribed
        subscribed.set()
        heard.put_nowait(await first)
        async for hint in stream:
            heard.put_nowait(hint)

    watcher = asyncio.create_task(watch())
    await subscribed.wait()
    try:
        yield heard
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


async def _next(heard: asyncio.Queue[pb.TaskWakeupHint], within: timedelta) -> pb.TaskWakeupHint | None:
    try:
        return await asyncio.wait_for(heard.get(), within.total_seconds())
    except TimeoutError:
        return None


async def test_a_save_through_one_replica_wakes_a_watcher_on_another(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    replica_a, replica_b = await open_replica(postgres_url), await open_replica(postgres_url)
    snapshot = at_task("order-1", "charge", completed={"fetch": b"order"})

    async with _watching(replica_b) as heard:
        await replica_a.save_snapshot(snapshot)

        assert await _next(heard, HEARD_WITHIN) == hint_for(snapshot, "charge")


async def test_prepare_run_through_one_replica_wakes_a_waiter_on_another(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    replica_a, replica_b = await open_replica(postgres_url), await open_replica(postgres_url)
    waiting = asyncio.ensure_future(replica_b.wait_for_wakeup(HEARD_WITHIN))
    await asyncio.sleep(0)

    await replica_a.prepare_run("order-1", DEFINITION_HASH, b"input", first_task("fetch", tags=["eu"]))

    hint = await waiting
    assert hint == pb.TaskWakeupHint(
        instance_id="order-1", task_id=task_id("fetch"), definition_hash=DEFINITION_HASH, task_tags=["eu"]
    )


async def test_every_replica_hears_the_hint_once(postgres_url: str, open_replica: OpenReplica) -> None:
    replicas = [await open_replica(postgres_url) for _ in range(3)]
    snapshot = at_task("order-1")

    async with _watching(replicas[0]) as heard_0, _watching(replicas[1]) as heard_1, _watching(replicas[2]) as heard_2:
        await replicas[1].save_snapshot(snapshot)

        for heard in (heard_0, heard_1, heard_2):
            assert await _next(heard, HEARD_WITHIN) == hint_for(snapshot, "fetch")
        for heard in (heard_0, heard_1, heard_2):
            assert await _next(heard, SILENCE) is None


async def test_a_replica_hands_its_own_writes_hints_to_its_hub_without_the_notify_round_trip(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    """WAKE-1: the writer hears its hint from the commit itself, even with its LISTEN connection gone."""
    replica = await open_replica(postgres_url)
    store = replica.storage
    assert isinstance(store, PostgresStore)
    await store.listener.close()
    snapshot = at_task("order-1")

    async with _watching(replica) as heard:
        await replica.save_snapshot(snapshot)

        assert await _next(heard, HEARD_WITHIN) == hint_for(snapshot, "fetch")


async def test_a_hint_is_sent_only_after_the_write_commits(postgres_url: str, open_replica: OpenReplica) -> None:
    replica = await open_replica(postgres_url)
    parsed = parse_postgres_url(postgres_url)
    writer = await asyncpg.connect(parsed.dsn, server_settings={"search_path": parsed.options.schema or "public"})
    snapshot = at_task("order-1")
    channel = notify_channel(parsed.options.schema)
    try:
        async with _watching(replica) as heard:
            transaction = writer.transaction()
            await transaction.start()
            await PostgresTransaction(writer, channel).put(write_of(snapshot))

            assert await _next(heard, SILENCE) is None
            await transaction.commit()
            assert await _next(heard, HEARD_WITHIN) == hint_for(snapshot, "fetch")
    finally:
        await writer.close()


async def test_a_rolled_back_write_sends_no_hint(postgres_url: str, open_replica: OpenReplica) -> None:
    replica = await open_replica(postgres_url)
    parsed = parse_postgres_url(postgres_url)
    writer = await asyncpg.connect(parsed.dsn, server_settings={"search_path": parsed.options.schema or "public"})
    snapshot = at_task("order-1")
    channel = notify_channel(parsed.options.schema)
    try:
        async with _watching(replica) as heard:
            transaction = writer.transaction()
            await transaction.start()
            await PostgresTransaction(writer, channel).put(write_of(snapshot))
            await transaction.rollback()

            assert await _next(heard, SILENCE) is None
    finally:
        await writer.close()


async def test_a_hint_too_large_for_notify_still_reaches_other_replicas(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    replica_a, replica_b = await open_replica(postgres_url), await open_replica(postgres_url)
    tags = [f"region-{index:04d}-" + "x" * 40 for index in range(200)]
    snapshot = at_task("order-1", tags=tags)
    assert len(hint_for(snapshot, "fetch").SerializeToString()) > MAX_NOTIFY_PAYLOAD

    async with _watching(replica_b) as heard:
        await replica_a.save_snapshot(snapshot)

        assert await _next(heard, HEARD_WITHIN) == hint_for(snapshot, "fetch")


async def test_a_delay_advanced_by_one_replica_wakes_a_watcher_on_another(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    replica_a, replica_b = await open_replica(postgres_url), await open_replica(postgres_url)
    await replica_a.save_snapshot(at_delay("order-1", wake_at=seconds_ago(1), next_task="ship"))

    async with _watching(replica_b) as heard:
        await replica_a.find_available_tasks("worker-a", 10, timedelta(seconds=60), [])

        hint = await _next(heard, HEARD_WITHIN)
    assert hint is not None
    assert (hint.instance_id, hint.task_id) == ("order-1", task_id("ship"))


async def test_schemas_sharing_a_database_do_not_wake_each_other(open_replica: OpenReplica) -> None:
    from tests.support.postgres import temporary_database_url

    async with temporary_database_url() as url_1, temporary_database_url() as url_2:
        replica_1, replica_2 = await open_replica(url_1), await open_replica(url_2)
        async with _watching(replica_2) as heard:
            await replica_1.save_snapshot(at_task("order-1"))

            assert await _next(heard, SILENCE) is None
        await replica_1.close()
        await replica_2.close()
