"""Health that follows the backend: the storage-bound health names are NOT_SERVING while storage is unreachable.

The server's "" and each persistence service depend on the backend, so a
monitor polls `backend.check_health()` and mirrors the outcome on them, logging
each transition once. The process-only name (the server's LIVENESS_SERVICE_NAME)
is not touched: a database outage must take a replica out of rotation, not get
it restarted. Once the server drains, the health servicer ignores every update,
so draining always wins.

`ListingHealthServicer` answers grpc.health.v1.Health/List as well as Check and Watch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2

from sayiir_server.domain.traits import Backend

logger = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ListingHealthServicer(health.aio.HealthServicer):  # type: ignore[misc]  # grpc_health ships no types
    """grpcio's health servicer plus List (every name with its status), which grpcio-health-checking lacks."""

    async def List(  # noqa: N802 - the proto's RPC name
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthListResponse:
        # The base class keeps every name it was told in _server_status and offers no public view of it.
        statuses = {name: health_pb2.HealthCheckResponse(status=status) for name, status in self._server_status.items()}
        return health_pb2.HealthListResponse(statuses=statuses)


class BackendHealthMonitor:
    """Polls the backend every `interval`; a check failing or taking longer than `timeout` counts as down."""

    def __init__(
        self,
        backend: Backend,
        servicer: health.aio.HealthServicer,
        names: Sequence[str],
        interval: timedelta,
        timeout: timedelta,
    ) -> None:
        self._backend = backend
        self._servicer = servicer
        self._names = tuple(names)
        self._interval = interval.total_seconds()
        self._timeout = timeout.total_seconds()
        self._task: asyncio.Task[None] | None = None
        self.healthy = True
        """What the last check found (the server starts SERVING: the backend has just opened)."""

    def start(self) -> None:
        """Poll in a task of the running loop until `stop()`."""
        if self._task is None:
            self._task = asyncio.create_task(self._poll_forever(), name="sayiir-health-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait([task])  # unlike `await task`, a cancellation of stop() itself is not swallowed

    async def check(self) -> None:
        """One poll: check the backend, and on a change of state set every name and log it."""
        failure = await self._failure()
        healthy = failure is None
        if healthy == self.healthy:
            return
        self.healthy = healthy
        if failure is not None:
            logger.warning("backend unavailable (%s): health NOT_SERVING until it answers again", failure)
        else:
            logger.info("backend available again: health SERVING")
        for name in self._names:
            await self._servicer.set(name, SERVING if healthy else NOT_SERVING)

    async def _failure(self) -> str | None:
        """None when the backend answered in time; otherwise why it did not."""
        try:
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation (stop()) that lands just as the
            # check completes, and the poll would then go on forever.
            async with asyncio.timeout(self._timeout):
                await self._backend.check_health()
        except TimeoutError:
            return f"no answer to a health check within {self._timeout:g} s"
        except Exception as error:  # whatever breaks the check means storage cannot serve calls now
            return f"{type(error).__name__}: {error}"
        return None

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)  # the first check can wait: the backend has just opened
            await self.check()
