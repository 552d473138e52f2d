"""grpc.health.v1.Health/List: every health name the server knows, with its status."""

from __future__ import annotations

import logging
from datetime import timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sayiir_server.api.server import LIVENESS_SERVICE_NAME, PersistenceServer
from sayiir_server.api.servicers import SERVICE_NAMES

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
EVERY_NAME = {"", LIVENESS_SERVICE_NAME, *SERVICE_NAMES}


async def _listed(channel: grpc.aio.Channel) -> dict[str, int]:
    reply = await health_pb2_grpc.HealthStub(channel).List(health_pb2.HealthListRequest(), timeout=5)
    return {name: response.status for name, response in reply.statuses.items()}


async def test_list_answers_every_health_name_serving_without_an_error_log(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    assert await _listed(channel) == dict.fromkeys(EVERY_NAME, SERVING)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_list_follows_the_statuses_the_server_sets(server: PersistenceServer, channel: grpc.aio.Channel) -> None:
    await server._health.set(SERVICE_NAMES[0], NOT_SERVING)  # as the backend monitor does during an outage

    listed = await _listed(channel)

    assert listed[SERVICE_NAMES[0]] == NOT_SERVING
    assert listed[LIVENESS_SERVICE_NAME] == SERVING


async def test_list_answers_not_serving_for_every_name_once_the_drain_started(
    server: PersistenceServer, channel: grpc.aio.Channel
) -> None:
    await server._health.enter_graceful_shutdown()

    assert await _listed(channel) == dict.fromkeys(EVERY_NAME, NOT_SERVING)
    await server.stop(timedelta(0))
