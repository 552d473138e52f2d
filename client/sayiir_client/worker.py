"""A worker that runs the whole worker protocol (docs/behaviour.md WORKER-*), so a Python worker is a handful of lines.

    async def greet(task: pb.AvailableTask) -> bytes:
        return b"hello, " + task.input

    async with AsyncPersistenceClient("localhost:50051") as client:
        await Worker(client, "worker-1", greet, WorkerOptions(definition_hashes=[GREETING])).run()

The worker long-polls ClaimAvailableTasks (the server finds, claims and guards the tasks), runs up to
`max_concurrent_tasks` handlers at once, extends each claim as a heartbeat while its handler runs, and
ends each task with CompleteTask (the fenced save and the release in one call); the tasks that finish while
one CompleteTasks is in flight go together in the next (COMPLETE-2). A handler returns the
task's output (the worker completes the workflow with it: the last task) or the next snapshot (full
control: record the output and move on, see `sayiir_client.tasks`). A handler that raises has its failure
recorded as a retry (attempts, last error, this worker, next_retry_at with backoff), so the task comes back
later, preferably to another worker; past the policy's max_retries the workflow fails. `stop()`, SIGTERM
or SIGINT stop claiming, let running handlers finish within the graceful timeout, then cancel them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from grpc import StatusCode

from sayiir_client._async_client import AsyncPersistenceClient
from sayiir_client.coalescing import Coalescer
from sayiir_client.errors import (
    BackendUnavailableError,
    ClaimLostError,
    FinalStateError,
    InvalidArgumentError,
    NotFoundError,
    SerializationError,
    TransportError,
)
from sayiir_client.tasks import TaskCompletion, completed_with, failed_attempt
from sayiir_client.v1 import messages_pb2 as pb

logger = logging.getLogger(__name__)

TaskHandler = Callable[[pb.AvailableTask], Awaitable["bytes | pb.WorkflowSnapshot"]]
"""Runs one task: returns its output (the workflow completes with it) or the next snapshot to save."""


def _completion_answer(answer: bool | BaseException) -> bool | Exception:
    """A CompleteTask's answer as a batch carries it: the errors of one task travel as values."""
    if isinstance(answer, bool | Exception):
        return answer
    raise answer  # cancelled: nobody to answer


COMPLETION_BATCH_BYTES = 64 * 1024
"""Most snapshot bytes one CompleteTasks carries: within the smallest message limit a server is run with (a
larger snapshot goes alone, as CompleteTask would carry it)."""

CompletionObserver = Callable[[pb.AvailableTask, pb.WorkflowSnapshot, bool], None]
"""Told of each task's end: the task, the snapshot CompleteTask was sent, and whether it was saved."""


@dataclass(frozen=True)
class WorkerOptions:
    """What a Worker claims and how it runs what it claimed."""

    definition_hashes: Sequence[bytes] = ()
    """Only tasks of these workflow definitions (the ones this worker has code for); empty: any."""
    worker_tags: Sequence[str] = ()
    """The worker's routing tags; a task with tags goes only to workers that carry all of them."""
    max_concurrent_tasks: int = 10
    """Handlers running at once; the worker claims only as many tasks as it has free slots."""
    claim_ttl: timedelta = timedelta(seconds=30)
    """Lease of each claim; the heartbeat renews it while the handler runs."""
    heartbeat_interval: timedelta | None = None
    """How often a running task's claim is extended; None: a third of claim_ttl."""
    claim_wait: timedelta = timedelta(seconds=20)
    """How long one ClaimAvailableTasks waits for work when the worker is idle (the server caps it)."""
    aging_interval: timedelta = timedelta(seconds=60)
    """Waiting this long lowers a task's effective priority by one."""
    graceful_shutdown_timeout: timedelta = timedelta(seconds=30)
    """After stop(), how long running handlers may take before they are cancelled."""
    retry_initial_delay: timedelta = timedelta(seconds=1)
    """First backoff after a handler failure, for tasks whose retry state carries no policy."""
    retry_max_delay: timedelta = timedelta(minutes=5)
    """Longest backoff after repeated failures, for tasks without a policy of their own."""
    stop_on_signals: bool = True
    """run() stops gracefully on SIGTERM and SIGINT (only when called in the main thread)."""
    on_completed: CompletionObserver | None = None
    """Called after each CompleteTask (logging, metrics, progress reports)."""


@dataclass
class WorkerStats:
    """What a worker did so far."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    """Handlers that raised (the failure recorded as a retry)."""
    leases_lost: int = 0
    """Tasks whose claim was lost before they completed (their result dropped)."""
    finished_elsewhere: int = 0
    """Tasks whose run became final meanwhile (cancelled, or finished by another writer): result dropped."""
    running: set[asyncio.Task[None]] = field(default_factory=set)


class Worker:
    """Claims tasks and runs `handler` on each, until stopped."""

    def __init__(
        self,
        client: AsyncPersistenceClient,
        worker_id: str,
        handler: TaskHandler,
        options: WorkerOptions | None = None,
    ) -> None:
        self.client = client
        self.worker_id = worker_id
        self.handler = handler
        self.options = options or WorkerOptions()
        self.stats = WorkerStats()
        self._stopping = asyncio.Event()
        self._completions: Coalescer[TaskCompletion, bool | Exception] = Coalescer(
            self._complete,
            key=lambda completion: completion.snapshot.instance_id,
            max_batch=self.options.max_concurrent_tasks,
            max_in_flight=2,
            size=lambda completion: completion.snapshot.ByteSize(),
            max_size=COMPLETION_BATCH_BYTES,
            # A refused call wrote nothing (COMPLETE-2.2): each completion again alone, so only the bad one fails.
            isolate=(InvalidArgumentError, SerializationError),
        )
        self._one_by_one = False
        """The server answered UNIMPLEMENTED to CompleteTasks (another implementation): CompleteTask each."""
        self._slot_freed = asyncio.Event()

    def stop(self) -> None:
        """Stop claiming; run() returns once the running tasks finished (or were cancelled after the timeout)."""
        self._stopping.set()

    async def run(self) -> None:
        """Claim and run tasks until stop() (or SIGTERM/SIGINT); then drain gracefully."""
        with self._signals_stop():
            try:
                await self._claim_until_stopped()
            finally:
                await self._drain()

    # -- claiming --------------------------------------------------------------------------------

    async def _claim_until_stopped(self) -> None:
        while not self._stopping.is_set():
            free = self.options.max_concurrent_tasks - len(self.stats.running)
            if free <= 0 or (self.stats.running and free * 2 < self.options.max_concurrent_tasks):
                await self._wait_for_a_slot()
                continue
            # Idle: long-poll. Busy but with room: take what is ready now, without waiting.
            wait = self.options.claim_wait if not self.stats.running else timedelta(0)
            claimed = await self._claim(free, wait)
            for item in claimed:
                self._start(item)
            if not claimed and self.stats.running:
                await self._wait_for_a_slot()

    async def _claim(self, limit: int, wait: timedelta) -> list[pb.ClaimedTask]:
        claiming = asyncio.ensure_future(
            self.client.claim_available_tasks(
                self.worker_id,
                limit,
                self.options.claim_ttl,
                aging_interval=self.options.aging_interval,
                worker_tags=self.options.worker_tags,
                definition_hashes=self.options.definition_hashes,
                wait=wait,
            )
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({claiming, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not claiming.done():
            # Stopping while waiting: tasks the server claimed for us in the meantime lapse with their ttl.
            claiming.cancel()
            with contextlib.suppress(asyncio.CancelledError, BackendUnavailableError):
                await claiming
            return []
        try:
            claimed = claiming.result()
        except BackendUnavailableError as error:
            logger.warning("claiming tasks failed, retrying in 1 s: %s", error)
            await self._pause(1.0)
            return []
        self.stats.claimed += len(claimed)
        return claimed

    async def _wait_for_a_slot(self) -> None:
        self._slot_freed.clear()
        freed = asyncio.ensure_future(self._slot_freed.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({freed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            freed.cancel()
            stopping.cancel()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- running one task ------------------------------------------------------------------------

    def _start(self, item: pb.ClaimedTask) -> None:
        running = asyncio.ensure_future(self._run_task(item))
        self.stats.running.add(running)
        running.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.stats.running.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("worker %s: a task's bookkeeping failed", self.worker_id, exc_info=task.exception())

    async def _run_task(self, item: pb.ClaimedTask) -> None:
        task = item.task
        handling = asyncio.ensure_future(self.handler(task))
        heartbeat = asyncio.ensure_future(self._heartbeat(task, handling))
        try:
            outcome = await handling
        except asyncio.CancelledError:
            heartbeat.cancel()
            if heartbeat.done() and not heartbeat.cancelled() and heartbeat.result() is False:
                self.stats.leases_lost += 1
                return  # the heartbeat lost the lease and cancelled the handler
            await self._release(task)  # stopped past the graceful timeout: let another worker take it now
            raise
        except Exception as error:
            self.stats.failed += 1
            logger.warning("worker %s: task of %r failed: %s", self.worker_id, task.instance_id, error)
            outcome = failed_attempt(
                task.snapshot, task.task_id, self.worker_id, error, datetime.now(UTC), self._backoff
            )
        snapshot = outcome if isinstance(outcome, pb.WorkflowSnapshot) else completed_with(task.snapshot, outcome)
        try:  # the heartbeat goes on while the completion waits for a call: the lease must outlast the wait
            saved = await self._completions.submit(TaskCompletion(snapshot, task.task_id, self.worker_id))
        finally:
            heartbeat.cancel()
        if isinstance(saved, Exception) and not isinstance(saved, FinalStateError):
            raise saved
        if isinstance(saved, FinalStateError):  # SNAP-1.4: a final state is never replaced
            self.stats.finished_elsewhere += 1
            logger.warning("worker %s: run %r is %s: result dropped", self.worker_id, task.instance_id, saved.state)
            await self._release(task)
            return
        if saved:
            self.stats.completed += 1
        else:
            self.stats.leases_lost += 1
            logger.warning("worker %s: lease of %r lost: result dropped", self.worker_id, task.instance_id)
        if self.options.on_completed is not None:
            self.options.on_completed(task, snapshot, saved)

    async def _complete(self, completions: Sequence[TaskCompletion]) -> list[bool | Exception]:
        """One CompleteTasks for the tasks that finished while the previous one was in flight (COMPLETE-2)."""
        if not self._one_by_one:
            try:
                return list(await self.client.complete_tasks(completions))
            except TransportError as error:
                if error.code != StatusCode.UNIMPLEMENTED:
                    raise
                logger.warning("worker %s: the server has no CompleteTasks: one CompleteTask per task", self.worker_id)
                self._one_by_one = True
        answers = await asyncio.gather(
            *(self.client.complete_task(*completion) for completion in completions), return_exceptions=True
        )
        return [_completion_answer(answer) for answer in answers]

    async def _release(self, task: pb.AvailableTask) -> None:
        with contextlib.suppress(ClaimLostError, NotFoundError, BackendUnavailableError):
            await asyncio.shield(self.client.release_task_claim(task.instance_id, task.task_id, self.worker_id))

    def _backoff(self, attempts: int) -> timedelta:
        delay: timedelta = self.options.retry_initial_delay * (2 ** max(attempts - 1, 0))
        return min(delay, self.options.retry_max_delay)

    async def _heartbeat(self, task: pb.AvailableTask, handling: asyncio.Future[bytes | pb.WorkflowSnapshot]) -> bool:
        """Extend the claim while the handler runs; False (and the handler cancelled) once the lease is lost."""
        interval = (self.options.heartbeat_interval or self.options.claim_ttl / 3).total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.client.extend_task_claim(
                    task.instance_id, task.task_id, self.worker_id, self.options.claim_ttl
                )
            except (ClaimLostError, NotFoundError):
                handling.cancel()
                return False
            except BackendUnavailableError as error:
                logger.warning("worker %s: heartbeat of %r failed: %s", self.worker_id, task.instance_id, error)

    # -- stopping --------------------------------------------------------------------------------

    async def _drain(self) -> None:
        running = set(self.stats.running)
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=self.options.graceful_shutdown_timeout.total_seconds())
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    @contextlib.contextmanager
    def _signals_stop(self) -> Iterator[None]:
        installed: list[signal.Signals] = []
        if self.options.stop_on_signals and threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            for received in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(received, self.stop)
                    installed.append(received)
        try:
            yield None
        finally:
            loop = asyncio.get_running_loop()
            for received in installed:
                loop.remove_signal_handler(received)
