"""A server over PostgreSQL exports its connection pool's use as the sayiir_backend_pool_* gauges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from sayiir_server.api.server import PersistenceServer, ServerOptions
from sayiir_server.domain.engine import Engine
from sayiir_server.mesh.mesh import Mesh, MeshOptions
from tests.mesh.scrape import Scrape, scrape
from tests.postgres.conftest import OpenReplica, store_of

pytestmark = pytest.mark.postgres

POOL = {"pool_min": "2", "pool_max": "4"}


def _with_pool(url: str) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), *POOL.items()])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


@asynccontextmanager
async def _serving_metrics(backend: Engine) -> AsyncIterator[str]:
    """A started server with a metrics endpoint over `backend`; yields the endpoint's URL."""
    mesh = Mesh(MeshOptions(metrics_listen="127.0.0.1:0"), backend, process_metrics=False)
    # No health check during the test: its query would take a pooled connection at an unknown moment.
    options = ServerOptions(listen="127.0.0.1:0", health_check_interval=timedelta(hours=1))
    server = PersistenceServer(backend, mesh.server_options(options))
    mesh.start()
    await server.start()
    try:
        assert mesh.metrics_endpoint is not None
        yield mesh.metrics_endpoint.url
    finally:
        await server.stop(timedelta(0))
        await mesh.stop()


def _pool(metrics: Scrape) -> dict[str, float]:
    """The pool gauges of one scrape (read by the endpoint's own thread, not the event loop's)."""
    gauges = {}
    for name in ("size", "idle", "in_use", "min_size", "max_size"):
        value = metrics.value(f"sayiir_backend_pool_{name}")
        assert value is not None, f"sayiir_backend_pool_{name} missing from the scrape"
        gauges[name] = value
    return gauges


@pytest.fixture
async def backend(postgres_url: str, open_replica: OpenReplica) -> Engine:
    return await open_replica(_with_pool(postgres_url))


async def test_the_pool_bounds_are_exported_as_configured(backend: Engine) -> None:
    async with _serving_metrics(backend) as url:
        pool = _pool(await scrape(url))

    assert pool["min_size"] == int(POOL["pool_min"])
    assert pool["max_size"] == int(POOL["pool_max"])
    assert int(POOL["pool_min"]) <= pool["size"] <= int(POOL["pool_max"])


async def test_a_connection_serving_a_call_counts_as_in_use_until_it_is_released(backend: Engine) -> None:
    acquired, release = asyncio.Event(), asyncio.Event()

    async def hold(connection: Any) -> None:
        acquired.set()
        await release.wait()

    async with _serving_metrics(backend) as url:
        holding = asyncio.ensure_future(store_of(backend).run(hold))
        await asyncio.wait_for(acquired.wait(), 10)
        during = _pool(await scrape(url))
        release.set()
        await holding
        after = _pool(await scrape(url))

    assert during["in_use"] == 1
    assert during["idle"] == during["size"] - 1
    assert after["in_use"] == 0
    assert after["idle"] == after["size"]
