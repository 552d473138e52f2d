"""Running the console's application with uvicorn on a socket the command line bound."""

from __future__ import annotations

import socket
import sys

import uvicorn

from sayiir_client.console.access import Access
from sayiir_client.console.app import ConsoleOptions, create_app

__all__ = ["ConsoleOptions", "serve"]


def serve(sock: socket.socket, options: ConsoleOptions) -> None:
    """Serve until SIGINT or SIGTERM; says where it listens (on stderr) once the client is open."""
    host, port = sock.getsockname()[:2]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def ready(access: Access) -> None:
        print(
            f"sayiir-console: serving http://{address} (server: {options.connection.server}, {access.role})",
            file=sys.stderr,
            flush=True,
        )

    config = uvicorn.Config(create_app(options, on_ready=ready), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
