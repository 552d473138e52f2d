"""The console's command line: where to listen, which server to read, and whether to offer the actions.

Exit codes: 0 after SIGINT or SIGTERM, 2 for a bad flag or a missing `console` extra (one error line).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping, Sequence

from sayiir_client.console.connection import UsageError, add_connection_flags, connection_settings

EXIT_OK = 0
EXIT_USAGE = 2
DEFAULT_LISTEN = "127.0.0.1:8080"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sayiir-console", description="The web console of a sayiir persistence server, for operators."
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=None,
        help=f"where to serve HTTP; port 0 picks a free one (env SAYIIR_CONSOLE_LISTEN, default {DEFAULT_LISTEN})",
    )
    parser.add_argument("--read-only", action="store_true", help="never offer cancel, pause, unpause or send event")
    parser.add_argument(
        "--refresh", metavar="SECONDS", type=float, default=5.0, help="how often pages reload their data; 0: never"
    )
    parser.add_argument(
        "--scan-limit",
        metavar="N",
        type=int,
        default=1000,
        help="counts per state and the dispatch page read at most N workflows each (default 1000)",
    )
    parser.add_argument(
        "--allow-host",
        metavar="NAME",
        action="append",
        default=[],
        help="another Host name the console answers to (besides the --listen host and localhost)",
    )
    add_connection_flags(parser)
    return parser


def parse_listen(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    if not separator or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Serve the console until SIGINT or SIGTERM."""
    environ = os.environ if environ is None else environ
    arguments = build_parser().parse_args(argv)
    try:
        listen = parse_listen(arguments.listen or environ.get("SAYIIR_CONSOLE_LISTEN") or DEFAULT_LISTEN)
        settings = connection_settings(arguments, environ)
        if arguments.refresh < 0:
            raise UsageError("--refresh: must be 0 or more seconds")
        if arguments.scan_limit < 1:
            raise UsageError("--scan-limit: must be at least 1")
    except UsageError as error:
        print(f"sayiir-console: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        from sayiir_client.console import serving
    except ImportError as error:
        print(
            f"sayiir-console: {error.name} is missing: install the console extra "
            "(pip install 'sayiir-persistence-client[console]')",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        sock = socket.create_server(listen, family=socket.AF_INET6 if ":" in listen[0] else socket.AF_INET)
    except OSError as error:
        print(f"sayiir-console: cannot listen on {listen[0]}:{listen[1]}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    hosts = tuple(dict.fromkeys((*LOOPBACK_NAMES, listen[0], *arguments.allow_host)))
    options = serving.ConsoleOptions(
        settings,
        read_only=arguments.read_only,
        refresh_seconds=arguments.refresh,
        scan_limit=arguments.scan_limit,
        allowed_hosts=hosts,
    )
    serving.serve(sock, options)
    return EXIT_OK
