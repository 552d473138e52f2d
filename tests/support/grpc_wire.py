"""The contract suite over the wire: pytest-grpc's fixtures driving a grpc.aio server that serves one backend per test.

pytest-grpc builds a sync `grpc.server` once per test module and calls it from
sync fixtures. Our servicers are grpc.aio, and every contract test needs a
fresh backend whose asyncio objects (asyncpg pool, SQLite futures, wakeup
queues) live on the loop that serves them. So:

- `ThreadedAioServer` is the `_grpc_server` pytest-grpc drives: a grpc.aio
  server on its own event loop in a background thread, behind the sync calls
  pytest-grpc makes (add_insecure_port, start, stop).
- `BackendSlot` is the `grpc_servicer`: the servicers serve whatever backend is
  plugged into it, so one module-wide server serves a fresh backend per test.
- `plugged` opens a backend on the server's loop, plugs it in for one test, and
  closes it on that loop afterwards.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, TypeVar, cast

import grpc

from sayiir_client import AsyncPersistenceClient
from sayiir_server.api.server import ServerOptions, add_persistence_servicers
from sayiir_server.api.servicers import Drain
from sayiir_server.domain.engine import Engine
from sayiir_server.domain.traits import Backend

_T = TypeVar("_T")

BackendOpener = Callable[[], AbstractAsyncContextManager[Backend]]
"""Opens a fresh backend (and closes it when the block exits), on whichever loop runs the block."""

_LOOPBACK = "127.0.0.1"
_SERVER_CALL_TIMEOUT_SECONDS = 30.0


class BackendSlot:
    """A Backend that forwards every attribute to the backend plugged in right now.

    The servicers look methods up on each call, so they always reach the current
    test's backend, with that backend's own (possibly atomic) overrides.
    """

    def __init__(self) -> None:
        self._backend: Backend | None = None

    def plug(self, backend: Backend) -> None:
        if self._backend is not None:
            raise RuntimeError("a backend is already plugged in: one test at a time per server")
        self._backend = backend

    def unplug(self) -> None:
        self._backend = None

    def __getattr__(self, name: str) -> Any:
        if self._backend is None:
            raise RuntimeError(f"no backend plugged in to serve {name!r}")
        return getattr(self._backend, name)

    def as_engine(self) -> Engine:
        """This slot, typed as what it stands for (its methods are those of the plugged engine)."""
        return cast(Engine, self)


class ThreadedAioServer:
    """A grpc.aio server running on its own event loop in a daemon thread, driven by blocking calls.

    It has the interface pytest-grpc's `grpc_server` fixture uses on a sync server,
    and binds port 0 itself (`address`), so no port is guessed.
    """

    def __init__(self, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-aio-server", daemon=True)
        self._thread.start()
        self.aio: grpc.aio.Server = self.run(_new_aio_server(interceptors))
        self.port = self.aio.add_insecure_port(f"{_LOOPBACK}:0")
        self.address = f"{_LOOPBACK}:{self.port}"
        self.drains: list[Drain] = []
        self._closed = False

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run `coroutine` on the server's loop and block until it is done (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_SERVER_CALL_TIMEOUT_SECONDS)

    async def run_async(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run `coroutine` on the server's loop, awaited from another loop; cancelling the await cancels it."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self._loop))

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self.aio.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_insecure_port(self, target: str) -> int:
        """The port of `target`; the address bound at construction is not bound twice."""
        if target == self.address:
            return self.port
        return self.aio.add_insecure_port(target)

    def start(self) -> None:
        self.run(self.aio.start())

    def stop(self, grace: float | None = None) -> None:
        """Drain the servicers' open waits, stop the server, end the loop and its thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.run(self._stop(grace))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _stop(self, grace: float | None) -> None:
        for drain in self.drains:
            drain.start()
        await self.aio.stop(grace)
        # Handlers a test abandoned (a cancelled long poll) must not outlive the loop.
        leftovers = asyncio.all_tasks() - {asyncio.current_task()}
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)


async def _new_aio_server(interceptors: Sequence[grpc.aio.ServerInterceptor]) -> grpc.aio.Server:
    # Created on the server's loop: a grpc.aio server belongs to the loop current at its creation.
    return grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])


def add_to_server(slot: BackendSlot, server: ThreadedAioServer) -> None:
    """pytest-grpc's `grpc_add_to_server`: mount the five persistence servicers, serving the slot."""
    server.drains.append(add_persistence_servicers(server.aio, slot.as_engine(), ServerOptions()))


@asynccontextmanager
async def plugged(server: ThreadedAioServer, slot: BackendSlot, open_backend: BackendOpener) -> AsyncIterator[None]:
    """Open a backend on the server's loop and serve it for the block (awaited from the test's loop)."""
    stack = AsyncExitStack()
    slot.plug(await server.run_async(stack.enter_async_context(open_backend())))
    try:
        yield
    finally:
        slot.unplug()
        await server.run_async(stack.aclose())


@contextmanager
def plugged_blocking(server: ThreadedAioServer, slot: BackendSlot, open_backend: BackendOpener) -> Iterator[None]:
    """`plugged` for sync tests (those calling through pytest-grpc's sync `grpc_stub`)."""
    stack = AsyncExitStack()
    slot.plug(server.run(stack.enter_async_context(open_backend())))
    try:
        yield
    finally:
        slot.unplug()
        server.run(stack.aclose())


@asynccontextmanager
async def client_at(address: str) -> AsyncIterator[AsyncPersistenceClient]:
    """An AsyncPersistenceClient on an aio channel of the caller's loop, closed after the block."""
    channel = grpc.aio.insecure_channel(address)
    try:
        yield AsyncPersistenceClient(channel=channel)
    finally:
        await channel.close()
