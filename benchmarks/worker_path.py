"""The worker path, measured as a user choosing between this service and polling PostgreSQL directly.

WORKERS workers complete WORKFLOWS single-task workflows with INPUT_BYTES inputs, each path on fresh
workflows, and the row is workflows per second from the first claim to the last completion:

- service, worker path: `sayiir_client.Worker` (ClaimAvailableTasks long-polls, CompleteTasks ends the tasks
  that finished together);
- service, 4-RPC cycle: find(limit 10) → ClaimTask → SaveSnapshotFenced (Completed) → ReleaseTaskClaim,
  the way a worker had to before ClaimAvailableTasks existed;
- direct, sayiir-postgres style (PostgreSQL only): asyncpg workers on their own two tables, four statements
  per task (find, claim, guarded update, release);
- direct, SKIP LOCKED queue (PostgreSQL only): claim with one `UPDATE … FOR UPDATE SKIP LOCKED … RETURNING`,
  complete with one UPDATE.

Every worker of every path is an asyncio task of the load-generator process with its own connection.
Dispatch latency: PrepareRun until a worker waiting in ClaimAvailableTasks holds the claim, one at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from benchmarks import measure
from benchmarks.workload import DEFINITION_HASH, TASK_A
from sayiir_client import AsyncPersistenceClient, FinalStateError, Worker, WorkerOptions
from sayiir_client.tasks import completed_with
from sayiir_client.v1 import messages_pb2 as pb

WORKFLOWS = 2000
WORKERS = 8
INPUT_BYTES = 2048
TTL = timedelta(seconds=60)
CLAIM_LIMIT = 10
FIND_LIMIT = 10
WAIT = timedelta(seconds=1)
_DEADLINE_SECONDS = 300.0


@dataclass(frozen=True)
class PathResult:
    workflows: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.workflows / self.seconds if self.seconds else 0.0


def output_of(task_input: bytes) -> bytes:
    return b"done:" + task_input[:16]


# -- through the service -------------------------------------------------------------------------


async def worker_path(address: str, workflows: int, workers: int = WORKERS) -> PathResult:
    """`Worker`s over ClaimAvailableTasks + CompleteTask until `workflows` tasks completed."""
    done = asyncio.Event()
    completed_count = [0]

    async def handle(task: pb.AvailableTask) -> bytes:
        completed_count[0] += 1
        if completed_count[0] >= workflows:
            done.set()
        return output_of(task.input)

    clients = [AsyncPersistenceClient(address) for _ in range(workers)]
    options = WorkerOptions(
        definition_hashes=(DEFINITION_HASH,), max_concurrent_tasks=CLAIM_LIMIT, claim_ttl=TTL, claim_wait=WAIT
    )
    runners = [Worker(client, f"bench-worker-{n}", handle, options) for n, client in enumerate(clients)]
    started = time.perf_counter()
    tasks = [asyncio.ensure_future(runner.run()) for runner in runners]
    try:
        await asyncio.wait_for(done.wait(), _DEADLINE_SECONDS)
        elapsed = time.perf_counter() - started
    finally:
        for runner in runners:
            runner.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.close()
    return PathResult(completed_count[0], elapsed)


async def four_rpc_cycle(address: str, workflows: int, workers: int = WORKERS) -> PathResult:
    """The 4-RPC cycle through AsyncPersistenceClient, every worker racing for the same top candidates.

    Without the post-claim guard, a worker whose find predates another's completion claims the released task
    and runs it again; its save is refused (FINAL_STATE), and only distinct workflows count."""
    completed_ids: set[str] = set()

    async def run(worker_id: str, client: AsyncPersistenceClient) -> None:
        while len(completed_ids) < workflows:
            tasks = await client.find_available_tasks(worker_id, FIND_LIMIT, timedelta(seconds=1))
            if not tasks:
                await asyncio.sleep(0.005)
            for task in tasks:
                claim = await client.claim_task(task.instance_id, task.task_id, worker_id, TTL)
                if claim is None:
                    continue
                done = completed_with(task.snapshot, output_of(task.input))
                try:
                    if await client.save_snapshot_fenced(done, task.task_id, worker_id):
                        completed_ids.add(task.instance_id)
                except FinalStateError:
                    pass  # SNAP-1.4: another worker completed it between our find and our claim
                await client.release_task_claim(task.instance_id, task.task_id, worker_id)

    clients = [AsyncPersistenceClient(address) for _ in range(workers)]
    started = time.perf_counter()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(run(f"bench-cycle-{n}", client) for n, client in enumerate(clients))), _DEADLINE_SECONDS
        )
    finally:
        for client in clients:
            await client.close()
    return PathResult(len(completed_ids), time.perf_counter() - started)


async def dispatch_latency(
    address: str, samples: int, claim_address: str | None = None, prefix: str = "latency"
) -> measure.Measurement:
    """PrepareRun on `address` until a worker waiting in ClaimAvailableTasks (on `claim_address`) holds it."""
    starter = AsyncPersistenceClient(address)
    claimer = AsyncPersistenceClient(claim_address or address)
    latencies: list[float] = []
    try:
        for index in range(samples):
            waiting = asyncio.ensure_future(
                claimer.claim_available_tasks(
                    "latency-probe", 1, TTL, definition_hashes=[LATENCY_DEFINITION], wait=timedelta(seconds=5)
                )
            )
            await asyncio.sleep(0.02)  # let the claim reach the server and start waiting
            started = time.perf_counter()
            await starter.prepare_run(f"{prefix}-{index:05d}", LATENCY_DEFINITION, b"x", pb.FirstTask(task_id=TASK_A))
            claimed = await waiting
            if claimed:
                latencies.append(time.perf_counter() - started)
                await claimer.complete_task(completed_with(claimed[0].task.snapshot, b"done"), TASK_A, "latency-probe")
    finally:
        await starter.close()
        await claimer.close()
    return measure.of_latencies(latencies)


LATENCY_DEFINITION = bytes(31) + b"\x01"

EVENT_DEFINITION = bytes(31) + b"\x02"
EVENT_NAME = "go"


def awaiting_event(instance_id: str) -> pb.WorkflowSnapshot:
    """A run waiting AtSignal(EVENT_NAME), its next task TASK_A, of EVENT_DEFINITION."""
    snapshot = pb.WorkflowSnapshot(
        instance_id=instance_id,
        definition_hash=EVENT_DEFINITION,
        in_progress=pb.InProgressState(
            position=pb.ExecutionPosition(
                at_signal=pb.AtSignal(signal_id=TASK_A, signal_name=EVENT_NAME, next_task_id=TASK_A)
            )
        ),
        initial_input=b"x",
    )
    snapshot.created_at.GetCurrentTime()
    snapshot.updated_at.GetCurrentTime()
    return snapshot


async def event_dispatch_latency(address: str, samples: int) -> measure.Measurement:
    """SendEvent for a run waiting at AtSignal until a worker waiting in ClaimAvailableTasks holds the next task
    (SIG-2.5: SendEvent advances the run and announces the task)."""
    sender = AsyncPersistenceClient(address)
    claimer = AsyncPersistenceClient(address)
    latencies: list[float] = []
    try:
        for index in range(samples):
            instance_id = f"event-{index:05d}"
            await sender.save_snapshot(awaiting_event(instance_id))
            waiting = asyncio.ensure_future(
                claimer.claim_available_tasks(
                    "event-probe", 1, TTL, definition_hashes=[EVENT_DEFINITION], wait=timedelta(seconds=5)
                )
            )
            await asyncio.sleep(0.02)  # let the claim reach the server and start waiting
            started = time.perf_counter()
            await sender.send_event(instance_id, EVENT_NAME, b"payload")
            claimed = await waiting
            if claimed:
                latencies.append(time.perf_counter() - started)
                await claimer.complete_task(completed_with(claimed[0].task.snapshot, b"done"), TASK_A, "event-probe")
    finally:
        await sender.close()
        await claimer.close()
    return measure.of_latencies(latencies)


# -- directly on PostgreSQL ----------------------------------------------------------------------

_DIRECT_SCHEMA = """
CREATE TABLE {schema}.workflows (
    id          text PRIMARY KEY,
    state       text NOT NULL,
    input       bytea NOT NULL,
    output      bytea,
    ready       boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    claimed_by  text,
    claim_until timestamptz
);
CREATE INDEX workflows_ready ON {schema}.workflows (updated_at, id) WHERE ready;
CREATE TABLE {schema}.claims (
    id         text PRIMARY KEY,
    worker     text NOT NULL,
    expires_at timestamptz NOT NULL
);
"""

# sayiir-postgres style: find, claim, guarded update, release.
_FIND = "SELECT id, input FROM {schema}.workflows WHERE ready ORDER BY updated_at, id LIMIT $1"
_CLAIM = """
INSERT INTO {schema}.claims (id, worker, expires_at) VALUES ($1, $2, now() + interval '60 seconds')
ON CONFLICT (id) DO UPDATE SET worker = excluded.worker, expires_at = excluded.expires_at
    WHERE claims.expires_at <= now()
RETURNING 1
"""
_GUARDED_UPDATE = """
UPDATE {schema}.workflows SET state = 'completed', ready = false, output = $3, updated_at = now()
WHERE id = $1 AND ready AND EXISTS (SELECT 1 FROM {schema}.claims c WHERE c.id = $1 AND c.worker = $2)
"""
_RELEASE = "DELETE FROM {schema}.claims WHERE id = $1 AND worker = $2"

# The SKIP LOCKED queue: claim in one statement, complete in one.
_QUEUE_CLAIM = """
UPDATE {schema}.workflows w SET claimed_by = $1, claim_until = now() + interval '60 seconds'
WHERE w.id IN (
    SELECT id FROM {schema}.workflows
    WHERE ready AND (claim_until IS NULL OR claim_until <= now())
    ORDER BY updated_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING w.id, w.input
"""
_QUEUE_COMPLETE = """
UPDATE {schema}.workflows SET state = 'completed', ready = false, output = $3, claimed_by = NULL,
    claim_until = NULL, updated_at = now()
WHERE id = $1 AND claimed_by = $2
"""


async def _direct(
    dsn: str, schema: str, workflows: int, workers: int, work: Callable[[asyncpg.Connection, str], Awaitable[int]]
) -> PathResult:
    setup = await asyncpg.connect(dsn)
    try:
        await setup.execute(f"CREATE SCHEMA {schema}")
        await setup.execute(_DIRECT_SCHEMA.format(schema=schema))
        rows = [(f"direct-{n:05d}", b"x" * INPUT_BYTES) for n in range(workflows)]
        await setup.executemany(
            f"INSERT INTO {schema}.workflows (id, state, input, ready) VALUES ($1, 'in_progress', $2, true)", rows
        )
        await setup.execute(f"ANALYZE {schema}.workflows")
        connections = [await asyncpg.connect(dsn) for _ in range(workers)]
        completed_count = [0]

        async def run(connection: asyncpg.Connection, worker_id: str) -> None:
            while completed_count[0] < workflows:
                finished = await work(connection, worker_id)
                completed_count[0] += finished
                if not finished:
                    await asyncio.sleep(0.005)

        started = time.perf_counter()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(run(c, f"direct-{n}") for n, c in enumerate(connections))), _DEADLINE_SECONDS
            )
        finally:
            for connection in connections:
                await connection.close()
        return PathResult(completed_count[0], time.perf_counter() - started)
    finally:
        await setup.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await setup.close()


async def direct_polling(dsn: str, workflows: int, workers: int = WORKERS) -> PathResult:
    """sayiir-postgres style: find(10), then claim, guarded update and release per task."""
    schema = "bench_direct_polling"
    find, claim, update, release = (s.format(schema=schema) for s in (_FIND, _CLAIM, _GUARDED_UPDATE, _RELEASE))

    async def work(connection: asyncpg.Connection, worker_id: str) -> int:
        done = 0
        for row in await connection.fetch(find, FIND_LIMIT):
            if await connection.fetchval(claim, row["id"], worker_id) is None:
                continue
            status = await connection.execute(update, row["id"], worker_id, output_of(row["input"]))
            done += status == "UPDATE 1"
            await connection.execute(release, row["id"], worker_id)
        return done

    return await _direct(dsn, schema, workflows, workers, work)


async def direct_queue(dsn: str, workflows: int, workers: int = WORKERS) -> PathResult:
    """The SKIP LOCKED queue: one statement claims up to 10, one completes each."""
    schema = "bench_direct_queue"
    claim, complete = (s.format(schema=schema) for s in (_QUEUE_CLAIM, _QUEUE_COMPLETE))

    async def work(connection: asyncpg.Connection, worker_id: str) -> int:
        done = 0
        for row in await connection.fetch(claim, worker_id, CLAIM_LIMIT):
            status = await connection.execute(complete, row["id"], worker_id, output_of(row["input"]))
            done += status == "UPDATE 1"
        return done

    return await _direct(dsn, schema, workflows, workers, work)
