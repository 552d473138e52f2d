"""The console's connection flags: which server, with which token and TLS files.

The same flags and SAYIIR_* variables as `sayiirctl` (--server, --token, --ca, --cert, --key, --timeout), so an
operator configures both once. A flag given on the command line wins over its variable.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc

from sayiir_client import AsyncPersistenceClient

DEFAULT_SERVER = "127.0.0.1:50051"
DEFAULT_TIMEOUT = timedelta(seconds=10)


class UsageError(ValueError):
    """A flag value the console cannot use; reported on one line (exit code 2)."""


@dataclass(frozen=True)
class ConnectionFlag:
    name: str
    metavar: str
    help: str

    @property
    def option(self) -> str:
        return f"--{self.name}"

    @property
    def env_var(self) -> str:
        return f"SAYIIR_{self.name.upper()}"


CONNECTION_FLAGS = (
    ConnectionFlag("server", "HOST:PORT", f"the persistence server (default {DEFAULT_SERVER})"),
    ConnectionFlag("token", "TOKEN", "bearer token (prefer the variable: a flag shows in the process list)"),
    ConnectionFlag("ca", "PEM", "CA that signed the server's certificate: connect with TLS"),
    ConnectionFlag("cert", "PEM", "client certificate chain, for mTLS (with --key)"),
    ConnectionFlag("key", "PEM", "private key of --cert"),
    ConnectionFlag("timeout", "SECONDS", f"deadline of each call (default {DEFAULT_TIMEOUT.total_seconds():g})"),
)


@dataclass(frozen=True)
class ConnectionSettings:
    server: str = DEFAULT_SERVER
    token: str | None = None
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    timeout: timedelta = DEFAULT_TIMEOUT

    @property
    def uses_tls(self) -> bool:
        return self.ca is not None or self.cert is not None


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    for flag in CONNECTION_FLAGS:
        # default=None tells "not given" apart, so the environment can fill it in.
        group.add_argument(flag.option, metavar=flag.metavar, default=None, help=f"{flag.help} (env {flag.env_var})")


def connection_settings(arguments: argparse.Namespace, environ: Mapping[str, str]) -> ConnectionSettings:
    """The settings of the parsed flags, each falling back to its variable, then to its default."""
    given = {
        flag.name: value
        for flag in CONNECTION_FLAGS
        if (value := getattr(arguments, flag.name) or environ.get(flag.env_var))
    }
    if ("cert" in given) != ("key" in given):
        raise UsageError("--cert and --key go together (mTLS needs both)")
    return ConnectionSettings(
        server=given.get("server", DEFAULT_SERVER),
        token=given.get("token"),
        ca=_existing_file("ca", given.get("ca")),
        cert=_existing_file("cert", given.get("cert")),
        key=_existing_file("key", given.get("key")),
        timeout=_timeout(given["timeout"]) if "timeout" in given else DEFAULT_TIMEOUT,
    )


def _existing_file(name: str, text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text)
    if not path.is_file():
        raise UsageError(f"--{name}: no such file: {text}")
    return path


def _timeout(text: str) -> timedelta:
    try:
        seconds = float(text)
    except ValueError:
        raise UsageError(f"--timeout: expected a number of seconds, got {text!r}") from None
    if not 0 < seconds < 1e6:
        raise UsageError(f"--timeout: must be more than 0 seconds, got {text}")
    return timedelta(seconds=seconds)


def channel_credentials(settings: ConnectionSettings) -> grpc.ChannelCredentials | None:
    """TLS credentials from the PEM files, or None for plaintext."""
    if not settings.uses_tls:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=settings.ca.read_bytes() if settings.ca else None,
        private_key=settings.key.read_bytes() if settings.key else None,
        certificate_chain=settings.cert.read_bytes() if settings.cert else None,
    )


def open_client(settings: ConnectionSettings) -> AsyncPersistenceClient:
    """A client of the server; open it inside the event loop that will use it (grpc.aio channels are bound to one)."""
    return AsyncPersistenceClient(
        settings.server,
        credentials=channel_credentials(settings),
        token=settings.token,
        deadline=settings.timeout,
    )
