"""Running the console's application with uvicorn on a socket the command line bound."""

from __future__ import annotations

import socket
import sys

import uvicorn

from sayiir_client.console.access import Access
from sayiir_client.console.app import ConsoleOptions, create_app
from sayiir_client.console.connection import ConnectionSettings


def serve(
    sock: socket.socket, settings: ConnectionSettings, *, read_only: bool, refresh: float, hosts: tuple[str, ...]
) -> None:
    """Serve until SIGINT or SIGTERM; says where it listens (on stderr) once the client is open."""
    host, port = sock.getsockname()[:2]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def ready(access: Access) -> None:
        print(
            f"sayiir-console: serving http://{address} (server: {settings.server}, {access.role})",
            file=sys.stderr,
            flush=True,
        )

    options = ConsoleOptions(settings, read_only=read_only, refresh_seconds=refresh, allowed_hosts=hosts)
    config = uvicorn.Config(create_app(options, on_ready=ready), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
