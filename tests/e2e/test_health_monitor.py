"""Health follows the backend: "" and the services are NOT_SERVING while check_health fails, SERVING once it
passes again, with no restart; the liveness name reflects the process alone; draining always wins."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sayiir_client.errors import BackendUnavailableError
from sayiir_server.api.health import BackendHealthMonitor
from sayiir_server.api.server import LIVENESS_SERVICE_NAME, PersistenceServer, ServerOptions
from sayiir_server.api.servicers import SERVICE_NAMES
from sayiir_server.backends.memory import InMemoryBackend
from sayiir_server.cli import EXIT_USAGE, build_parser, main, resolve_flags

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
BACKEND_BOUND_NAMES = ("", *SERVICE_NAMES)
INTERVAL = timedelta(milliseconds=20)
WAIT = 5.0


class SwitchableBackend(InMemoryBackend):
    """An in-memory backend whose health check fails, or hangs, on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.available = True
        self.hanging = False
        self.checks = 0

    async def check_health(self) -> None:
        self.checks += 1
        if self.hanging:
            await asyncio.Event().wait()
        if not self.available:
            raise BackendUnavailableError("storage unreachable (test switch)")


@pytest.fixture
def switchable() -> SwitchableBackend:
    return SwitchableBackend()


@pytest.fixture
async def health_stub(switchable: SwitchableBackend) -> AsyncIterator[health_pb2_grpc.HealthStub]:
    options = ServerOptions(
        listen="127.0.0.1:0", health_check_interval=INTERVAL, health_check_timeout=timedelta(milliseconds=100)
    )
    server = PersistenceServer(switchable, options)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield health_pb2_grpc.HealthStub(channel)
    finally:
        await server.stop(timedelta(0))


async def _status(stub: health_pb2_grpc.HealthStub, service: str) -> int:
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    status: int = reply.status
    return status


async def _statuses(stub: health_pb2_grpc.HealthStub) -> set[int]:
    return {await _status(stub, name) for name in BACKEND_BOUND_NAMES}


async def _until(stub: health_pb2_grpc.HealthStub, wanted: int) -> None:
    """Wait until "" and every service report `wanted`; fail after WAIT seconds."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while await _statuses(stub) != {wanted}:
        assert asyncio.get_running_loop().time() < deadline, f"health never became {wanted} for every name"
        await asyncio.sleep(INTERVAL.total_seconds())


async def _polls(backend: SwitchableBackend, count: int) -> None:
    """Wait until the monitor has checked the backend `count` more times."""
    target = backend.checks + count
    for _ in range(int(WAIT / 0.01)):
        if backend.checks >= target:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the monitor did not check the backend {count} more times")


async def test_health_is_not_serving_while_the_backend_fails_and_serving_again_when_it_returns(
    switchable: SwitchableBackend, health_stub: health_pb2_grpc.HealthStub
) -> None:
    assert await _statuses(health_stub) == {SERVING}

    switchable.available = False
    await _until(health_stub, NOT_SERVING)

    switchable.available = True
    await _until(health_stub, SERVING)


async def test_liveness_stays_serving_during_a_backend_outage(
    switchable: SwitchableBackend, health_stub: health_pb2_grpc.HealthStub
) -> None:
    switchable.available = False
    await _until(health_stub, NOT_SERVING)
    await _polls(switchable, 3)

    assert await _status(health_stub, LIVENESS_SERVICE_NAME) == SERVING


async def test_a_health_check_that_hangs_counts_as_a_failure(
    switchable: SwitchableBackend, health_stub: health_pb2_grpc.HealthStub
) -> None:
    switchable.hanging = True
    await _until(health_stub, NOT_SERVING)

    switchable.hanging = False
    await _until(health_stub, SERVING)


async def test_each_transition_is_logged_once_however_many_polls_it_lasts(
    switchable: SwitchableBackend, health_stub: health_pb2_grpc.HealthStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sayiir_server.api.health")
    switchable.available = False
    await _until(health_stub, NOT_SERVING)
    await _polls(switchable, 5)
    switchable.available = True
    await _until(health_stub, SERVING)
    await _polls(switchable, 5)

    messages = [record.getMessage() for record in caplog.records if record.name == "sayiir_server.api.health"]
    assert len(messages) == 2
    assert "NOT_SERVING" in messages[0]
    assert "storage unreachable (test switch)" in messages[0]
    assert "SERVING" in messages[1]


async def test_liveness_turns_not_serving_when_the_drain_starts(switchable: SwitchableBackend) -> None:
    server = PersistenceServer(switchable, ServerOptions(listen="127.0.0.1:0"))
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=LIVENESS_SERVICE_NAME))
        assert (await watch.read()).status == SERVING
        stopping = asyncio.ensure_future(server.stop(timedelta(milliseconds=500)))
        assert (await asyncio.wait_for(watch.read(), WAIT)).status == NOT_SERVING
        await stopping


async def test_draining_wins_over_a_backend_that_comes_back(switchable: SwitchableBackend) -> None:
    servicer = health.aio.HealthServicer()
    monitor = BackendHealthMonitor(switchable, servicer, BACKEND_BOUND_NAMES, INTERVAL, timedelta(seconds=1))
    switchable.available = False
    await monitor.check()
    await servicer.enter_graceful_shutdown()

    switchable.available = True
    await monitor.check()

    for name in BACKEND_BOUND_NAMES:
        reply = await servicer.Check(health_pb2.HealthCheckRequest(service=name), None)
        assert reply.status == NOT_SERVING


async def test_stopping_ends_the_poll_at_whatever_point_of_a_check_it_lands(switchable: SwitchableBackend) -> None:
    servicer = health.aio.HealthServicer()
    for steps_before_stop in range(12):  # each lands the cancellation at another step of check and sleep
        monitor = BackendHealthMonitor(switchable, servicer, BACKEND_BOUND_NAMES, timedelta(0), timedelta(seconds=1))
        monitor.start()
        for _ in range(steps_before_stop):
            await asyncio.sleep(0)
        await asyncio.wait_for(monitor.stop(), WAIT)


def test_the_check_interval_comes_from_its_flag_or_environment_variable() -> None:
    arguments = build_parser().parse_args(["serve"])
    values = resolve_flags(arguments, {"SAYIIR_HEALTH_CHECK_INTERVAL": "0.5"})
    assert values["health_check_interval"] == timedelta(seconds=0.5)
    assert resolve_flags(arguments, {})["health_check_interval"] == ServerOptions().health_check_interval


def test_a_zero_check_interval_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--health-check-interval", "0"], environ={}) == EXIT_USAGE
    assert "--health-check-interval" in capsys.readouterr().err
