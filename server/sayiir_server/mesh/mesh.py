"""What running inside a service mesh adds to a server: TLS, token auth, metrics, access logs and tracing.

`Mesh` turns the mesh flags into ServerOptions hooks (interceptors and TLS
credentials) plus what lives beside the gRPC port: the metrics endpoint and
the token file's reload on SIGHUP.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import grpc

from sayiir_server.api.server import ServerOptions
from sayiir_server.domain.engine import Engine
from sayiir_server.mesh.access_log import AccessLog, LogFormat
from sayiir_server.mesh.auth import TokenAuthInterceptor
from sayiir_server.mesh.calls import CallObserver, CallSink
from sayiir_server.mesh.metrics import MetricsEndpoint, ServerMetrics
from sayiir_server.mesh.tls import ServerTls, TransportMode, transport_mode
from sayiir_server.mesh.tracing import OtelTracing, TracingMode, start_tracing

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeshOptions:
    """The mesh flags of `sayiir-server serve`; every default leaves the feature off."""

    tls_cert: str | None = None
    """PEM file of the server certificate chain (with tls_key: TLS)."""
    tls_key: str | None = None
    """PEM file of the server certificate's private key."""
    tls_client_ca: str | None = None
    """PEM file of the CA that signs client certificates: clients must present one (mTLS)."""
    auth_tokens: str | None = None
    """Token file (`TOKEN ROLE` per line); None lets every caller in (e.g. behind a mesh's own authorization)."""
    metrics_listen: str | None = None
    """HOST:PORT of the Prometheus endpoint; None serves no metrics."""
    log_format: LogFormat = "text"
    tracing: TracingMode = "off"


class Mesh:
    """The interceptors, credentials and side endpoints the mesh options ask for, for one backend.

    Raises TlsConfigError or TokenFileError (both ValueError) for unusable files, and
    TracingUnavailableError (a ValueError) for tracing without the `tracing` extra.
    Interceptor order, outermost first: tracing, call observer (metrics and
    access log, so refused calls are counted too), token auth.
    """

    def __init__(self, options: MeshOptions, backend: Engine, *, process_metrics: bool = True) -> None:
        self.options = options
        self.tls = ServerTls.from_files(options.tls_cert, options.tls_key, options.tls_client_ca)
        self.auth = TokenAuthInterceptor(options.auth_tokens) if options.auth_tokens else None
        self.metrics = ServerMetrics(backend, process_metrics=process_metrics) if options.metrics_listen else None
        self.metrics_endpoint = (
            MetricsEndpoint(options.metrics_listen, self.metrics.registry)
            if options.metrics_listen and self.metrics is not None
            else None
        )
        self.tracing: OtelTracing | None = start_tracing(options.tracing)

    @property
    def transport_mode(self) -> TransportMode:
        return transport_mode(self.tls)

    def interceptors(self) -> tuple[grpc.aio.ServerInterceptor, ...]:
        # An interceptor costs every call a wrapper; observe calls only when someone reads the observations.
        access_log = AccessLog(self.options.log_format)
        sinks: list[CallSink] = [access_log] if access_log.enabled else []
        if self.metrics is not None:
            sinks.append(self.metrics)
        chain: list[grpc.aio.ServerInterceptor] = []
        if self.tracing is not None:
            chain.append(self.tracing.interceptor)
        if sinks:
            chain.append(CallObserver(sinks))
        if self.auth is not None:
            chain.append(self.auth)
        return tuple(chain)

    def server_options(self, base: ServerOptions) -> ServerOptions:
        """`base` with the mesh's interceptors (outside base's own) and TLS credentials."""
        return dataclasses.replace(
            base,
            interceptors=(*self.interceptors(), *base.interceptors),
            server_credentials=self.tls.credentials() if self.tls is not None else base.server_credentials,
            mutual_tls=self.tls is not None and self.tls.mode == "mTLS",
        )

    def start(self) -> None:
        """Serve metrics (the gRPC server is started separately)."""
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.start()

    def reload(self) -> None:
        """SIGHUP: re-read the token file (a bad file keeps the current tokens)."""
        if self.auth is None:
            logger.info("SIGHUP received: no token file to reload")
            return
        self.auth.reload()

    async def stop(self) -> None:
        if self.metrics_endpoint is not None:
            await self.metrics_endpoint.stop()
        if self.tracing is not None:
            self.tracing.shutdown()
