"""PostgreSQL-specific behaviour of Engine: driver errors mapped in one place, what it cannot store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sayiir_client.errors import BackendUnavailableError, SerializationError
from sayiir_server.backends import open_backend
from sayiir_server.domain.engine import Engine, write_of
from sayiir_server.domain.model import utc_now
from sayiir_server.domain.port import Completion
from sayiir_server.domain.traits import Backend
from tests.contract.builders import at_task, completed, task_id
from tests.postgres.conftest import OpenReplica, store_of

pytestmark = pytest.mark.postgres


async def test_open_backend_routes_postgresql_urls_to_the_postgres_backend(postgres_url: str) -> None:
    backend = await open_backend(postgres_url)
    try:
        assert isinstance(backend, Engine)
        assert isinstance(backend, Backend)
    finally:
        await backend.close()


async def test_opening_an_unreachable_server_raises_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailableError):
        await open_backend("postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=1")


async def test_a_corrupt_stored_snapshot_is_a_serialization_error_of_a_stored_value(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    backend = await open_replica(postgres_url)
    await backend.save_snapshot(at_task("order-1"))

    async def corrupt(connection: Any) -> None:
        await connection.execute("UPDATE snapshots SET snapshot = '\\xff'::bytea WHERE instance_id = 'order-1'")

    await store_of(backend).run(corrupt)

    with pytest.raises(SerializationError) as raised:
        await backend.load_snapshot("order-1")
    assert raised.value.stored is True


async def test_an_instance_id_with_a_nul_character_is_a_serialization_error_of_a_sent_value(
    postgres_url: str, open_replica: OpenReplica
) -> None:
    backend = await open_replica(postgres_url)

    with pytest.raises(SerializationError) as raised:
        await backend.save_snapshot(at_task("order\x001"))
    assert raised.value.stored is False


async def test_a_batch_of_completions_writes_all_of_them_or_none(postgres_url: str, open_replica: OpenReplica) -> None:
    """COMPLETE-1 batched: one round trip, one transaction; a failing completion takes its batch back whole."""
    backend = await open_replica(postgres_url)
    fetch = task_id("fetch")
    await backend.save_snapshot(at_task("order-1"))
    assert await backend.claim_task("order-1", fetch, "worker-a", timedelta(minutes=5)) is not None
    good = Completion(write_of(completed("order-1"), by_client=True), fetch, "worker-a")
    refused = Completion(write_of(completed("order-9\x00"), by_client=True), fetch, "worker-a")  # after order-1

    with pytest.raises(SerializationError):
        await backend.storage.write(
            lambda tx: tx.put_and_release_each([good, refused], utc_now()), single_statement=True
        )

    assert (await backend.load_snapshot("order-1")).WhichOneof("state") == "in_progress"
    assert await backend.complete_task(completed("order-1"), fetch, "worker-a")  # the claim was kept
