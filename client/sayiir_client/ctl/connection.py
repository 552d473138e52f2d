"""The flags every command that talks to a server takes, and the client they make.

A command's parser calls `add_connection_arguments(parser)`; its handler opens the client with
`connect(args)` (an async context manager). Each flag defaults to a SAYIIR_* environment variable, and a
flag on the command line wins over it.
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from pathlib import Path

import grpc

from sayiir_client._async_client import AsyncPersistenceClient
from sayiir_client.ctl.exit_codes import UsageError

DEFAULT_SERVER = "127.0.0.1:50051"
DEFAULT_TIMEOUT_SECONDS = 10.0


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"SAYIIR_{name}", default)


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < 1e9:
        raise ValueError(text)
    return value


_seconds.__name__ = "seconds"  # argparse names the type in its error: "invalid seconds value: 'x'"


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """--server, --token, --tls, --ca, --cert, --key, --timeout, each with its SAYIIR_* variable."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--server",
        metavar="HOST:PORT",
        default=_env("SERVER", DEFAULT_SERVER),
        help=f"the sayiir-server to talk to (env SAYIIR_SERVER; default {DEFAULT_SERVER})",
    )
    group.add_argument(
        "--token",
        default=_env("TOKEN"),
        help="bearer token, for a server started with --auth-tokens (env SAYIIR_TOKEN: keeps it out of ps)",
    )
    group.add_argument(
        "--tls",
        action="store_true",
        default=_env("TLS", "") not in ("", "0", "false"),
        help="use TLS, verifying the server against the system's CAs (implied by --ca; env SAYIIR_TLS=1)",
    )
    group.add_argument("--ca", metavar="PEM", default=_env("CA"), help="CA that signed the server's certificate")
    group.add_argument("--cert", metavar="PEM", default=_env("CERT"), help="client certificate chain, for mTLS")
    group.add_argument("--key", metavar="PEM", default=_env("KEY"), help="private key of --cert")
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=_env("TIMEOUT", str(DEFAULT_TIMEOUT_SECONDS)),
        help=f"deadline of each call (env SAYIIR_TIMEOUT; default {DEFAULT_TIMEOUT_SECONDS:g})",
    )


def connect(args: argparse.Namespace) -> AsyncPersistenceClient:
    """The client the connection flags describe; use it as `async with connect(args) as client:`."""
    return AsyncPersistenceClient(
        args.server,
        credentials=credentials(args),
        token=args.token or None,
        deadline=timedelta(seconds=args.timeout),
    )


def credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS credentials from --tls/--ca/--cert/--key; None for plaintext."""
    if bool(args.cert) != bool(args.key):
        raise UsageError("--cert and --key go together (mTLS needs both)")
    if not (args.tls or args.ca or args.cert):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(args.ca, "--ca"),
        private_key=_read(args.key, "--key"),
        certificate_chain=_read(args.cert, "--cert"),
    )


def _read(path: str | None, flag: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"{flag}: cannot read {path}: {error.strerror}") from None
