"""Servers for client tests: in-process over a backend, or the real `sayiir-server` as a subprocess."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import IO, Any

import grpc

from sayiir_client import AsyncPersistenceClient
from sayiir_server.server import ServerOptions, add_persistence_servicers
from sayiir_server.store import Backend

_LISTENING = re.compile(r"listening on (\S+:\d+)")
_START_TIMEOUT_SECONDS = 20.0
_STOP_TIMEOUT_SECONDS = 15.0


@asynccontextmanager
async def served_backend(
    backend: Backend, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
) -> AsyncIterator[str]:
    """Serve `backend` in-process on a free port; yields "127.0.0.1:PORT". The backend stays open."""
    server = grpc.aio.server(interceptors=interceptors)
    drain = add_persistence_servicers(server, backend, ServerOptions())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        drain.start()
        await server.stop(None)


@asynccontextmanager
async def client_over_grpc(backend: Backend, **client_options: Any) -> AsyncIterator[AsyncPersistenceClient]:
    """An AsyncPersistenceClient reaching `backend` through a real gRPC server: the "client → server → backend" path.

    The client is built on a channel the fixture owns (AsyncPersistenceClient(channel=...)).
    """
    async with served_backend(backend) as address:
        channel = grpc.aio.insecure_channel(address)
        try:
            yield AsyncPersistenceClient(channel=channel, **client_options)
        finally:
            await channel.close()


class ServerProcess:
    """A running `sayiir-server serve` subprocess and the address it reported."""

    def __init__(self, process: subprocess.Popen[str], address: str, log: list[str]) -> None:
        self.process = process
        self.address = address
        self.log = log


@contextmanager
def server_process(backend_url: str = "memory://") -> Iterator[ServerProcess]:
    """Start `python -m sayiir_server serve --listen 127.0.0.1:0`, wait for its "listening on" log line, stop it."""
    command = [sys.executable, "-m", "sayiir_server", "serve", "--listen", "127.0.0.1:0", "--backend", backend_url]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert process.stderr is not None
    log: list[str] = []
    try:
        address = _wait_for_address(process, process.stderr, log)
        # Keep draining the log so a chatty server never blocks on a full pipe.
        threading.Thread(target=_drain, args=(process.stderr, log), daemon=True).start()
        yield ServerProcess(process, address, log)
    finally:
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_address(process: subprocess.Popen[str], stderr: IO[str], log: list[str]) -> str:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    found: list[str] = []

    def read() -> None:
        for line in stderr:
            log.append(line)
            match = _LISTENING.search(line)
            if match:
                found.append(match.group(1))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(max(deadline - time.monotonic(), 0))
    if not found:
        if not reader.is_alive():  # the log ended: the process is exiting, so its exit code is worth waiting for
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        raise RuntimeError(f"sayiir-server did not report its address (exit code {process.poll()}): {''.join(log)}")
    return found[0]


def _drain(stream: IO[str], log: list[str]) -> None:
    for line in stream:
        log.append(line)
