"""The LISTEN side of wakeups: one dedicated connection per server, reconnected by itself.

Every replica LISTENs on the same channel, so a task made ready through any
replica reaches the local WakeupHub of each; a replica's own writes are handed
to its hub directly after their commit, and their NOTIFY is skipped here. While the
connection is down, hints are lost; they are advisory: workers still find the
tasks by polling FindAvailableTasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.postgres.rows import parse_hint_payload
from sayiir_server.domain.port import WakeupSink

_log = logging.getLogger(__name__)

FIRST_RETRY_DELAY = 0.05
"""Seconds before the first reconnection attempt; doubled after each failure."""

MAX_RETRY_DELAY = 2.0
"""Longest pause between reconnection attempts."""

PING_INTERVAL = 5.0
"""Seconds between liveness checks of an idle LISTEN connection (a half-open socket never reports its death)."""

Connect = Callable[[], Awaitable[Any]]
"""Opens a new asyncpg connection."""

LoadHint = Callable[[str], Awaitable[pb.TaskWakeupHint | None]]
"""Resolves an instance id (sent when a hint is too large for NOTIFY) into its hint."""


class WakeupListener:
    """Delivers the hints of NOTIFY payloads on one channel (to the server's hub), reconnecting with backoff."""

    def __init__(
        self,
        connect: Connect,
        channel: str,
        deliver: WakeupSink,
        load_hint: LoadHint,
        ping_timeout: float,
        skip_from: Callable[[int], bool] = lambda _pid: False,
    ) -> None:
        self._connect = connect
        self._skip_from = skip_from
        self._channel = channel
        self._deliver = deliver
        self._load_hint = load_hint
        self._ping_timeout = ping_timeout
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loads: set[asyncio.Task[None]] = set()
        self.reconnections = 0
        """How many times the connection was re-established after a loss."""

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up."""
        return self._listening.is_set()

    async def wait_listening(self, timeout: float) -> bool:
        """Wait until the LISTEN connection is up; False on timeout."""
        try:
            await asyncio.wait_for(self._listening.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sayiir-postgres-listener")

    async def close(self) -> None:
        tasks = [task for task in (self._task, *self._loads) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        delay = FIRST_RETRY_DELAY
        connected_before = False
        while True:
            try:
                connection = await self._connect()
            except Exception as error:
                _log.warning("wakeup listener cannot connect (retrying in %.2fs): %s", delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            if connected_before:
                self.reconnections += 1
                _log.info("wakeup listener reconnected")
            connected_before = True
            delay = FIRST_RETRY_DELAY
            try:
                await self._listen(connection)
            except Exception as error:
                _log.warning("wakeup listener lost its connection: %s", error)
            finally:
                self._listening.clear()
                connection.terminate()

    async def _listen(self, connection: Any) -> None:
        """LISTEN until the connection dies: the termination callback or a failed ping says so."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        await connection.add_listener(self._channel, self._on_notification)
        self._listening.set()
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PING_INTERVAL)
            if not lost.is_set():
                await connection.fetchval("SELECT 1", timeout=self._ping_timeout)

    def _on_notification(self, _connection: Any, pid: int, _channel: str, payload: str) -> None:
        if self._skip_from(pid):
            return  # this replica's own write: its hub has the hint already
        parsed = parse_hint_payload(payload)
        if isinstance(parsed, pb.TaskWakeupHint):
            self._deliver(parsed)
        elif isinstance(parsed, str):
            load = asyncio.get_running_loop().create_task(self._publish_loaded(parsed))
            self._loads.add(load)
            load.add_done_callback(self._loads.discard)
        else:
            _log.warning("ignoring an unreadable wakeup payload on %s", self._channel)

    async def _publish_loaded(self, instance_id: str) -> None:
        try:
            hint = await self._load_hint(instance_id)
        except Exception as error:
            _log.warning("cannot load the hint of %r announced by NOTIFY: %s", instance_id, error)
            return
        if hint is not None:
            self._deliver(hint)
