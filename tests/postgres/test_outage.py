"""Outage: while the database refuses connections calls fail with BackendUnavailableError (UNAVAILABLE over
gRPC) and health fails (NOT_SERVING over gRPC, liveness aside); once it is back, the pool, the LISTEN
connection and the server's health recover without a restart.

The outage is simulated on the test's own database, never on the shared server: every connection to it
is terminated (pg_terminate_backend) and new ones are refused (ALLOW_CONNECTIONS false).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sayiir_client.errors import BackendUnavailableError
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc as services
from sayiir_server.api.server import LIVENESS_SERVICE_NAME, PersistenceServer, ServerOptions
from sayiir_server.backends import open_backend
from sayiir_server.domain.engine import Engine
from tests.contract.builders import at_task, hint_for
from tests.postgres.conftest import store_of
from tests.support.postgres import admin_connection

pytestmark = pytest.mark.postgres

FAST_FAILURE = {"connect_timeout": "1", "command_timeout": "2", "acquire_timeout": "2", "pool_min": "2"}
"""Bounded timeouts, so a call during the outage fails within seconds whatever the failure looks like."""

RECOVERY_WAIT = 15.0
"""Upper bound for the listener to reconnect (its backoff tops out at 2 s)."""


def _with_options(url: str, options: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), *options.items()])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@asynccontextmanager
async def outage(url: str) -> AsyncIterator[None]:
    """The database refuses new connections and loses its open ones, until the block exits."""
    name = _database_name(url)
    async with admin_connection() as admin:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.fixture
async def backend(database_url: str) -> AsyncIterator[Engine]:
    opened = await open_backend(_with_options(database_url, FAST_FAILURE))
    yield opened
    await opened.close()


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_calls_fail_with_backend_unavailable_during_an_outage(backend: Engine, database_url: str) -> None:
    await backend.save_snapshot(at_task("order-1"))

    async with outage(database_url):
        for call in (
            lambda: backend.load_snapshot("order-1"),
            lambda: backend.save_snapshot(at_task("order-2")),
            lambda: backend.claim_task("order-1", b"t" * 32, "worker-a", timedelta(seconds=30)),
            lambda: backend.find_available_tasks("worker-a", 10, timedelta(seconds=60), []),
            lambda: backend.check_and_cancel("order-1"),
        ):
            with pytest.raises(BackendUnavailableError):
                await call()


async def test_health_fails_during_an_outage_and_passes_after_it(backend: Engine, database_url: str) -> None:
    await backend.check_health()

    async with outage(database_url):
        with pytest.raises(BackendUnavailableError):
            await backend.check_health()

    await backend.check_health()


async def test_the_pool_recovers_by_itself_after_an_outage(backend: Engine, database_url: str) -> None:
    snapshot = at_task("order-1")
    await backend.save_snapshot(snapshot)
    async with outage(database_url):
        with pytest.raises(BackendUnavailableError):
            await backend.load_snapshot("order-1")

    assert await backend.load_snapshot("order-1") == snapshot
    await backend.save_snapshot(at_task("order-2"))
    assert sorted(await backend.list_snapshots()) == ["order-1", "order-2"]


async def test_the_listener_reconnects_and_delivers_wakeups_after_an_outage(backend: Engine, database_url: str) -> None:
    async with outage(database_url):
        assert await _eventually(_async(lambda: not store_of(backend).listener.listening), RECOVERY_WAIT)

    assert await store_of(backend).listener.wait_listening(RECOVERY_WAIT)
    assert store_of(backend).listener.reconnections >= 1
    waiting = asyncio.ensure_future(backend.wait_for_wakeup(timedelta(seconds=RECOVERY_WAIT)))
    await asyncio.sleep(0)
    snapshot = at_task("order-1")
    await backend.save_snapshot(snapshot)
    assert await waiting == hint_for(snapshot, "fetch")


async def test_rpcs_fail_with_unavailable_during_an_outage_and_succeed_after_it(
    backend: Engine, database_url: str
) -> None:
    snapshot = at_task("order-1")
    await backend.save_snapshot(snapshot)
    server = PersistenceServer(backend, ServerOptions(listen="127.0.0.1:0"))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            snapshots = services.SnapshotStoreStub(channel)
            request = rr.LoadSnapshotRequest(instance_id="order-1")
            async with outage(database_url):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await snapshots.LoadSnapshot(request, timeout=30)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

            response = await snapshots.LoadSnapshot(request, timeout=30)
            assert response.snapshot == snapshot
    finally:
        await server.stop(timedelta(0))


async def test_health_is_not_serving_during_an_outage_and_serving_after_it(backend: Engine, database_url: str) -> None:
    options = ServerOptions(listen="127.0.0.1:0", health_check_interval=timedelta(milliseconds=100))
    server = PersistenceServer(backend, options)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def status_is(service: str, wanted: int) -> bool:
                reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
                return bool(reply.status == wanted)

            assert await status_is("", health_pb2.HealthCheckResponse.SERVING)
            async with outage(database_url):
                assert await _eventually(lambda: status_is("", health_pb2.HealthCheckResponse.NOT_SERVING), 10)
                assert await status_is(LIVENESS_SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)

            assert await _eventually(lambda: status_is("", health_pb2.HealthCheckResponse.SERVING), RECOVERY_WAIT)
    finally:
        await server.stop(timedelta(0))


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def checked() -> bool:
        return check()

    return checked
