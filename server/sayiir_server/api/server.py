"""The gRPC server process: the five persistence services, health, reflection and a graceful drain."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sayiir_server import __version__
from sayiir_server.api.health import BackendHealthMonitor, ListingHealthServicer
from sayiir_server.api.servicers import SERVICE_NAMES, Drain, mount, persistence_servicers
from sayiir_server.domain.engine import Engine
from sayiir_server.domain.sizes import SizeLimits

logger = logging.getLogger(__name__)

HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
REFLECTION_SERVICE_NAME = reflection.SERVICE_NAME
LIVENESS_SERVICE_NAME: Final = "liveness"
"""Health name of the process alone: SERVING from start until the drain, whatever the backend's state.

"" and the persistence service names follow the backend (NOT_SERVING while it is unreachable): probe them
for readiness, and this name for liveness, so a database outage takes replicas out of rotation without
restarting them."""
_KEEPALIVE_TIMEOUT_MS = 20_000  # how long a keepalive ping may go unanswered before the connection is dropped


@dataclass(frozen=True)
class ServerOptions:
    """How the server listens and shuts down."""

    listen: str = "127.0.0.1:50051"
    """HOST:PORT to bind; port 0 picks a free port (see PersistenceServer.port)."""

    max_message_bytes: int = 16 * 1024 * 1024
    """Largest message accepted and sent, in bytes (a snapshot carries every completed task's output)."""

    grace_period: timedelta = timedelta(seconds=10)
    """On stop, how long in-flight calls may finish before they are cancelled."""

    max_wait_timeout: timedelta = timedelta(seconds=60)
    """Cap of WaitForWakeup's timeout: a longer timeout is clamped to it (not refused)."""

    interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
    """Server interceptors (auth, metrics, logs), outermost first."""

    server_credentials: grpc.ServerCredentials | None = None
    """TLS credentials; None listens in plaintext."""

    mutual_tls: bool = False
    """Whether server_credentials require and verify client certificates (the start-up log names the mode)."""

    max_concurrent_streams: int = 1000
    """Most calls one HTTP/2 connection may have open at once (grpc.max_concurrent_streams); more wait client-side."""

    keepalive_min_ping_interval: timedelta = timedelta(seconds=10)
    """Clients may ping this often, even with no call in flight; more often and the connection is closed
    (GOAWAY too_many_pings)."""

    keepalive_time: timedelta = timedelta(seconds=60)
    """The server pings connections idle this long, so streams of vanished clients (WatchWakeups) end."""

    health_check_interval: timedelta = timedelta(seconds=2)
    """How often backend.check_health() is polled; "" and the services are NOT_SERVING while it fails."""

    health_check_timeout: timedelta = timedelta(seconds=5)
    """A health check still unanswered after this long counts as failed (a hung database cannot hang the poll)."""


def add_persistence_servicers(server: grpc.aio.Server, backend: Engine, options: ServerOptions) -> Drain:
    """Mount the five persistence services on any aio server; start the returned Drain to end open waits."""
    backend.limits = SizeLimits(options.max_message_bytes)
    drain = Drain()
    for servicer in persistence_servicers(backend, drain, options.max_wait_timeout):
        mount(server, servicer)
    return drain


class PersistenceServer:
    """A grpc.aio server serving one backend, with health checking and reflection.

    Health: "" and each persistence service follow the backend (polled every
    health_check_interval), LIVENESS_SERVICE_NAME only the process.
    `stop()` drains: health turns NOT_SERVING for good, new calls are refused, open
    WatchWakeups streams and WaitForWakeup calls end, in-flight unary calls get
    the grace period to finish, then the backend is closed.
    """

    def __init__(self, backend: Engine, options: ServerOptions | None = None) -> None:
        self.backend = backend
        self.options = options or ServerOptions()
        self._server = grpc.aio.server(
            interceptors=tuple(self.options.interceptors),
            options=[
                ("grpc.max_send_message_length", self.options.max_message_bytes),
                ("grpc.max_receive_message_length", self.options.max_message_bytes),
                # gRPC shares ports by default: a second server on a busy port would silently split the traffic.
                ("grpc.so_reuseport", 0),
                ("grpc.max_concurrent_streams", self.options.max_concurrent_streams),
                ("grpc.http2.min_ping_interval_without_data_ms", _millis(self.options.keepalive_min_ping_interval)),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.keepalive_time_ms", _millis(self.options.keepalive_time)),
                ("grpc.keepalive_timeout_ms", _KEEPALIVE_TIMEOUT_MS),
            ],
        )
        self._drain = add_persistence_servicers(self._server, backend, self.options)
        self._health = ListingHealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self._health_monitor = BackendHealthMonitor(
            backend,
            self._health,
            ("", *SERVICE_NAMES),
            self.options.health_check_interval,
            self.options.health_check_timeout,
        )
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, HEALTH_SERVICE_NAME, REFLECTION_SERVICE_NAME), self._server
        )
        self.port = self._bind(self.options.listen)
        self._stopped = False

    def _bind(self, listen: str) -> int:
        _check_bindable(listen)
        credentials = self.options.server_credentials
        if credentials is None:
            port = self._server.add_insecure_port(listen)
        else:
            port = self._server.add_secure_port(listen, credentials)
        if port == 0:  # older grpc versions report a failed bind as port 0 instead of raising
            raise RuntimeError(f"cannot listen on {listen}")
        return port

    @property
    def transport_mode(self) -> str:
        """plaintext, TLS, or mTLS (client certificates required)."""
        if self.options.server_credentials is None:
            return "plaintext"
        return "mTLS" if self.options.mutual_tls else "TLS"

    @property
    def address(self) -> str:
        """HOST:PORT actually bound (the port filled in when `listen` asked for port 0)."""
        host = self.options.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    async def start(self) -> None:
        for name in (LIVENESS_SERVICE_NAME, "", *SERVICE_NAMES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        await self._server.start()
        self._health_monitor.start()
        logger.info(
            "sayiir-server %s listening on %s (backend: %s, %s)",
            __version__,
            self.address,
            self.backend.description,
            self.transport_mode,
        )

    async def stop(self, grace: timedelta | None = None) -> None:
        """Drain and stop; the backend is closed afterwards. Calling it again does nothing."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.options.grace_period if grace is None else grace
        logger.info("draining: grace period %.1f s", grace.total_seconds())
        await self._health_monitor.stop()
        await self._health.enter_graceful_shutdown()
        self._drain.start()
        try:
            await self._server.stop(grace.total_seconds())
        finally:
            await self.backend.close()
        logger.info("stopped")

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()

    async def __aenter__(self) -> PersistenceServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop()


def _check_bindable(listen: str) -> None:
    """Raise OSError (the OS's reason) when no address `listen` resolves to can be bound.

    Tried before grpc binds, because grpc's core logs a line of its own about a failed bind (on stderr,
    before anything of ours), and its exception gives no reason. A HOST:PORT that is not one is left to grpc.
    """
    host, _, port = listen.rpartition(":")
    if not port.isascii() or not port.isdigit():
        return
    try:
        addresses = socket.getaddrinfo(
            host.strip("[]") or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise OSError(error.errno, f"cannot resolve {host!r}: {error.strerror}") from None
    failure: OSError | None = None
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc binds: TIME_WAIT is no obstacle
            try:
                probe.bind(address)
            except OSError as error:
                failure = error
                continue
        return  # grpc serves as soon as one of the addresses binds
    if failure is not None:
        raise failure


def _millis(duration: timedelta) -> int:
    return int(duration.total_seconds() * 1000)
