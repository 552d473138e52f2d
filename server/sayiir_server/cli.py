"""`sayiir-server serve`: run the persistence server until SIGTERM or SIGINT (SIGHUP re-reads the token file).

Every flag can also come from an environment variable SAYIIR_<FLAG> (for
example SAYIIR_BACKEND); a flag given on the command line wins over the
environment. Exit codes: 0 after a graceful shutdown, 2 for a bad option or a
backend that cannot be opened (one error line, no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sayiir_server import __version__
from sayiir_server.api.server import PersistenceServer, ServerOptions
from sayiir_server.backends import DEFAULT_BACKEND_URL, open_backend
from sayiir_server.backends.credentials import redacted_url
from sayiir_server.mesh.access_log import LOG_FORMATS, configure_logging
from sayiir_server.mesh.mesh import Mesh, MeshOptions
from sayiir_server.mesh.metrics import parse_listen
from sayiir_server.mesh.tracing import TRACING_MODES

EXIT_OK = 0
EXIT_USAGE = 2

LOG_LEVELS = ("debug", "info", "warning", "error")
_DEFAULTS = ServerOptions()

logger = logging.getLogger("sayiir_server")


class _UsageError(Exception):
    """A bad option value or a backend that cannot be opened: reported on one line, exit code 2."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def _seconds(text: str) -> timedelta:
    value = float(text)
    if not 0 <= value < 1e9:
        raise ValueError(f"must be a number of seconds >= 0, got {text}")
    return timedelta(seconds=value)


def _positive_seconds(text: str) -> timedelta:
    value = _seconds(text)
    if not value:
        raise ValueError(f"must be a number of seconds > 0, got {text}")
    return value


def _log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return text.lower()


def _one_of(choices: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {text!r}")
        return text.lower()

    return parse


def _host_port(text: str) -> str:
    parse_listen(text)
    if not text.rpartition(":")[0].strip("[]"):
        raise ValueError("expected HOST:PORT with a host (0.0.0.0 or [::] for every interface)")
    return text


def _path(text: str) -> str:
    if not text:
        raise ValueError("must be a file path")
    return text


@dataclass(frozen=True)
class _Flag:
    name: str
    metavar: str
    parse: Callable[[str], Any]
    default: Any
    help: str

    @property
    def option(self) -> str:
        return f"--{self.name}"

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env_var(self) -> str:
        return "SAYIIR_" + self.name.replace("-", "_").upper()


SERVE_FLAGS = (
    _Flag("listen", "HOST:PORT", _host_port, _DEFAULTS.listen, "HOST:PORT to listen on; port 0 picks a free port"),
    _Flag("backend", "URL", str, DEFAULT_BACKEND_URL, "storage URL: memory://, sqlite:///PATH or postgresql://..."),
    _Flag(
        "max-message-bytes",
        "BYTES",
        _positive_int,
        _DEFAULTS.max_message_bytes,
        "largest message received or sent, in bytes",
    ),
    _Flag(
        "grace-period",
        "SECONDS",
        _seconds,
        _DEFAULTS.grace_period,
        "seconds in-flight calls may take to finish on shutdown",
    ),
    _Flag(
        "max-wait-timeout",
        "SECONDS",
        _seconds,
        _DEFAULTS.max_wait_timeout,
        "cap of WaitForWakeup's timeout, in seconds",
    ),
    _Flag("log-level", "LEVEL", _log_level, "info", "one of " + ", ".join(LOG_LEVELS)),
    _Flag(
        "log-format",
        "FORMAT",
        _one_of(LOG_FORMATS),
        "text",
        "text, or json: one JSON object per line, and one line per call",
    ),
    _Flag("tls-cert", "PEM", _path, None, "server certificate chain; with --tls-key, serve TLS"),
    _Flag("tls-key", "PEM", _path, None, "private key of --tls-cert"),
    _Flag("tls-client-ca", "PEM", _path, None, "CA of client certificates: require and verify them (mTLS)"),
    _Flag("auth-tokens", "FILE", _path, None, "'TOKEN ROLE' lines (roles: worker, reader); SIGHUP re-reads it"),
    _Flag("metrics-listen", "HOST:PORT", _host_port, None, "serve Prometheus metrics at http://HOST:PORT/metrics"),
    _Flag("tracing", "MODE", _one_of(TRACING_MODES), "off", "off, or otlp: OpenTelemetry spans (tracing extra)"),
    _Flag(
        "max-concurrent-streams",
        "N",
        _positive_int,
        _DEFAULTS.max_concurrent_streams,
        "most calls open at once on one client connection",
    ),
    _Flag(
        "keepalive-min-ping-interval",
        "SECONDS",
        _seconds,
        _DEFAULTS.keepalive_min_ping_interval,
        "shortest interval between client keepalive pings the server accepts",
    ),
    _Flag(
        "keepalive-time",
        "SECONDS",
        _seconds,
        _DEFAULTS.keepalive_time,
        "the server pings a connection idle this long, to find vanished clients",
    ),
    _Flag(
        "health-check-interval",
        "SECONDS",
        _positive_seconds,
        _DEFAULTS.health_check_interval,
        "how often the backend is checked; health is NOT_SERVING while it fails",
    ),
)


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    return f"{value.total_seconds():g}" if isinstance(value, timedelta) else str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sayiir-server", description="The sayiir persistence layer over gRPC.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server until SIGTERM or SIGINT")
    serve.set_defaults(command_parser=serve)  # main() reports serve's unknown arguments with serve's usage
    for flag in SERVE_FLAGS:
        # default=None tells "not given" apart, so the environment can fill it in (see resolve_flags).
        serve.add_argument(
            flag.option,
            dest=flag.dest,
            metavar=flag.metavar,
            default=None,
            help=f"{flag.help} (env {flag.env_var}, default {_shown(flag.default)})",
        )
    return parser


def resolve_flags(arguments: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """Each flag's value: command line, else its environment variable, else its default."""
    values: dict[str, Any] = {}
    for flag in SERVE_FLAGS:
        given = getattr(arguments, flag.dest)
        source, text = (flag.option, given) if given is not None else (flag.env_var, environ.get(flag.env_var))
        if text is None:
            values[flag.dest] = flag.default
            continue
        try:
            values[flag.dest] = flag.parse(text)
        except ValueError as error:
            raise _UsageError(f"invalid {source} value {text!r}: {error}") from None
    return values


async def serve(backend_url: str, options: ServerOptions, mesh_options: MeshOptions | None = None) -> int:
    """Open the backend, serve until SIGTERM or SIGINT, drain, and return the exit code."""
    try:
        backend = await open_backend(backend_url)
    except Exception as error:
        raise _UsageError(f"cannot open backend {redacted_url(backend_url)}: {error}") from None
    try:
        mesh = Mesh(mesh_options or MeshOptions(), backend)
    except ValueError as error:  # TLS or token file unusable, or tracing without its extra
        await backend.close()
        raise _UsageError(str(error)) from None
    try:
        server = PersistenceServer(backend, mesh.server_options(options))
    except Exception as error:
        await backend.close()
        raise _UsageError(f"cannot listen on {options.listen}: {error}") from None
    stop_requested = asyncio.Event()
    _on_signals(lambda name: _request_stop(name, stop_requested))
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, mesh.reload)
    try:
        mesh.start()
    except OSError as error:
        await backend.close()
        raise _UsageError(f"cannot serve metrics on {mesh.options.metrics_listen}: {error}") from None
    await server.start()
    try:
        await stop_requested.wait()
    finally:
        await server.stop()
        await mesh.stop()
    return EXIT_OK


def _request_stop(signal_name: str, stop_requested: asyncio.Event) -> None:
    if stop_requested.is_set():
        logger.info("%s received while draining; still draining", signal_name)
        return
    logger.info("%s received: shutting down", signal_name)
    stop_requested.set()


def _on_signals(handler: Callable[[str], None]) -> None:
    loop = asyncio.get_running_loop()
    for received in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(received, handler, received.name)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = build_parser()
    # parse_args would report `serve --bogus` with the top-level usage, which lists no serve flag.
    arguments, unknown = parser.parse_known_args(argv)
    if unknown:
        arguments.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        values = resolve_flags(arguments, os.environ if environ is None else environ)
        configure_logging(values["log_level"], values["log_format"])
        options = ServerOptions(
            listen=values["listen"],
            max_message_bytes=values["max_message_bytes"],
            grace_period=values["grace_period"],
            max_wait_timeout=values["max_wait_timeout"],
            max_concurrent_streams=values["max_concurrent_streams"],
            keepalive_min_ping_interval=values["keepalive_min_ping_interval"],
            keepalive_time=values["keepalive_time"],
            health_check_interval=values["health_check_interval"],
        )
        mesh_options = MeshOptions(
            tls_cert=values["tls_cert"],
            tls_key=values["tls_key"],
            tls_client_ca=values["tls_client_ca"],
            auth_tokens=values["auth_tokens"],
            metrics_listen=values["metrics_listen"],
            log_format=values["log_format"],
            tracing=values["tracing"],
        )
        return asyncio.run(serve(values["backend"], options, mesh_options))
    except _UsageError as error:
        print(f"sayiir-server: error: {error}", file=sys.stderr)
        return EXIT_USAGE
