"""asyncpg or psycopg 3 for the PostgreSQL backend? The worker cycle's SQL, timed on both drivers.

    .venv/bin/python -m benchmarks.pg_driver_choice [--dsn postgresql://postgres@127.0.0.1:5432/test]
                                                    [--cycles 2000] [--concurrency 1,8]

Kept as the evidence behind the choice recorded in README.md (section PostgreSQL).
It creates a throwaway schema holding the backend's real tables (the shipped
migrations), seeds one ready instance per cycle, and runs the backend's own
statements, so only the driver differs:

- "statements": claim (one INSERT … ON CONFLICT), fenced save (one statement,
  claim row locked and snapshot upserted), release (one DELETE): what
  PostgresBackend sends for ClaimTask, SaveSnapshotFenced, ReleaseTaskClaim;
- "transaction": the same cycle with the save as an explicit transaction
  (BEGIN; lock the claim row; upsert the snapshot; COMMIT), what a
  read-modify-write composite costs.

Both drivers use a pool of `concurrency` connections, autocommit, prepared
statements (asyncpg always; psycopg after its prepare_threshold) and binary
protocol where the driver offers it; psycopg runs through AsyncRawCursor so the
$n placeholders are identical.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import psycopg
import psycopg_pool

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.postgres import queries
from sayiir_server.backends.postgres.migrations import migrate
from sayiir_server.backends.postgres.rows import hint_payload, notify_channel, snapshot_row
from sayiir_server.domain.engine import write_of
from sayiir_server.domain.model import timestamp

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
TASK = hashlib.sha256(b"charge").digest()
NEXT_TASK = hashlib.sha256(b"ship").digest()
TTL = timedelta(minutes=5)

LOCK_CLAIM = """
SELECT 1 FROM claims
WHERE instance_id = $1 AND task_id = $2 AND worker_id = $3 AND (expires_at IS NULL OR expires_at > $4)
FOR UPDATE
"""

Cycle = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class Result:
    driver: str
    variant: str
    commit: str
    concurrency: int
    cycles: int
    seconds: float
    cpu_seconds: float
    latencies: list[float]

    @property
    def cpu_microseconds_per_cycle(self) -> float:
        return self.cpu_seconds / self.cycles * 1e6

    @property
    def cycles_per_second(self) -> float:
        return self.cycles / self.seconds


def _snapshot(instance_id: str, task: bytes, done: dict[bytes, bytes]) -> pb.WorkflowSnapshot:
    snapshot = pb.WorkflowSnapshot(
        instance_id=instance_id,
        definition_hash=hashlib.sha256(b"definition").digest(),
        created_at=timestamp(datetime.now(UTC)),
        updated_at=timestamp(datetime.now(UTC)),
        initial_input=b"x" * 200,
    )
    snapshot.in_progress.position.at_task.task_id = task
    for task_id, output in done.items():
        snapshot.in_progress.completed_tasks.add(task_id=task_id, output=output)
        snapshot.in_progress.last_completed_task_id = task_id
    return snapshot


def _write_args(snapshot: pb.WorkflowSnapshot, channel: str) -> tuple[object, ...]:
    write = write_of(snapshot)
    return (*snapshot_row(snapshot).values(), hint_payload(write.hint, snapshot.instance_id), channel, write.retain)


class Workload:
    """The instances of one run: instance i is seeded at "charge" and saved at "ship" by cycle i."""

    def __init__(self, prefix: str, channel: str) -> None:
        self.prefix = prefix
        self.channel = channel

    def instance(self, index: int) -> str:
        return f"{self.prefix}-{index}"

    def seed_args(self, index: int) -> tuple[object, ...]:
        return _write_args(_snapshot(self.instance(index), TASK, {}), self.channel)

    def save_args(self, index: int) -> tuple[object, ...]:
        return _write_args(_snapshot(self.instance(index), NEXT_TASK, {TASK: b"receipt" * 20}), self.channel)


def _asyncpg_cycles(pool: Any, workload: Workload) -> dict[str, Cycle]:
    async def statements(index: int) -> None:
        instance, now = workload.instance(index), datetime.now(UTC)
        async with pool.acquire() as connection:
            await connection.fetchval(queries.CLAIM_TASK, instance, TASK, "worker", now, now + TTL)
            await connection.fetch(queries.SAVE_SNAPSHOT_FENCED, *workload.save_args(index), TASK, "worker", now)
            await connection.fetchrow(queries.RELEASE_TASK_CLAIM, instance, TASK, "worker")

    async def transaction(index: int) -> None:
        instance, now = workload.instance(index), datetime.now(UTC)
        async with pool.acquire() as connection:
            await connection.fetchval(queries.CLAIM_TASK, instance, TASK, "worker", now, now + TTL)
            async with connection.transaction():
                await connection.fetchval(LOCK_CLAIM, instance, TASK, "worker", now)
                await connection.fetch(queries.SAVE_SNAPSHOT, *workload.save_args(index))
            await connection.fetchrow(queries.RELEASE_TASK_CLAIM, instance, TASK, "worker")

    return {"statements": statements, "transaction": transaction}


def _psycopg_cycles(pool: psycopg_pool.AsyncConnectionPool[Any], workload: Workload) -> dict[str, Cycle]:
    async def statements(index: int) -> None:
        instance, now = workload.instance(index), datetime.now(UTC)
        async with pool.connection() as connection:
            cursor = psycopg.AsyncRawCursor(connection)
            await cursor.execute(queries.CLAIM_TASK, (instance, TASK, "worker", now, now + TTL))
            await cursor.execute(queries.SAVE_SNAPSHOT_FENCED, (*workload.save_args(index), TASK, "worker", now))
            await cursor.execute(queries.RELEASE_TASK_CLAIM, (instance, TASK, "worker"))

    async def transaction(index: int) -> None:
        instance, now = workload.instance(index), datetime.now(UTC)
        async with pool.connection() as connection:
            cursor = psycopg.AsyncRawCursor(connection)
            await cursor.execute(queries.CLAIM_TASK, (instance, TASK, "worker", now, now + TTL))
            async with connection.transaction():
                await cursor.execute(LOCK_CLAIM, (instance, TASK, "worker", now))
                await cursor.execute(queries.SAVE_SNAPSHOT, workload.save_args(index))
            await cursor.execute(queries.RELEASE_TASK_CLAIM, (instance, TASK, "worker"))

    return {"statements": statements, "transaction": transaction}


async def _drive(cycle: Cycle, first: int, cycles: int, concurrency: int) -> tuple[float, float, list[float]]:
    """Run `cycles` cycles over instances first… with `concurrency` callers: wall seconds, CPU seconds, latencies."""
    latencies: list[float] = []
    next_index = iter(range(first, first + cycles))

    async def caller() -> None:
        for index in next_index:
            started = time.perf_counter()
            await cycle(index)
            latencies.append(time.perf_counter() - started)

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return time.perf_counter() - started, time.process_time() - cpu_started, latencies


async def _seed(pool: Any, workload: Workload, first: int, count: int) -> None:
    async with pool.acquire() as connection:
        await connection.executemany(
            queries.SAVE_SNAPSHOT, [workload.seed_args(i) for i in range(first, first + count)]
        )


COMMIT_MODES = {"durable": "on", "async-commit": "off"}
"""synchronous_commit per session: "durable" is what the backend runs with; "async-commit" takes the WAL
flush out of each commit, leaving what the driver itself costs in view."""


async def run(dsn: str, cycles: int, concurrencies: Sequence[int], rounds: int) -> list[Result]:
    schema = f"sayiir_bench_{uuid.uuid4().hex[:12]}"
    channel = notify_channel(schema)
    settings = {"search_path": schema}
    admin = await asyncpg.connect(dsn, server_settings=settings)
    results: list[Result] = []
    try:
        await migrate(admin, schema)
        workload = Workload("bench", channel)
        first = 0
        for (commit, synchronous_commit), concurrency in itertools.product(COMMIT_MODES.items(), concurrencies):
            session = {**settings, "synchronous_commit": synchronous_commit}
            seeder = await asyncpg.create_pool(dsn, min_size=1, max_size=1, server_settings=session)
            apg = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency, server_settings=session)
            options = f"-c search_path={schema} -c synchronous_commit={synchronous_commit}"
            conninfo = psycopg.conninfo.make_conninfo(dsn, options=options)
            ppg = psycopg_pool.AsyncConnectionPool(
                conninfo, min_size=concurrency, max_size=concurrency, kwargs={"autocommit": True}, open=False
            )
            await ppg.open(wait=True)
            drivers = {"asyncpg": _asyncpg_cycles(apg, workload), "psycopg": _psycopg_cycles(ppg, workload)}
            try:
                # Alternate drivers round by round so background load on the machine hits both alike.
                for _ in range(rounds):
                    for variant in ("statements", "transaction"):
                        for driver, cycles_of in drivers.items():
                            await _seed(seeder, workload, first, cycles)
                            seconds, cpu, latencies = await _drive(cycles_of[variant], first, cycles, concurrency)
                            results.append(
                                Result(driver, variant, commit, concurrency, cycles, seconds, cpu, latencies)
                            )
                            first += cycles
            finally:
                await ppg.close()
                await apg.close()
                await seeder.close()
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()
    return results


def report(results: Sequence[Result]) -> str:
    """One line per (commit mode, variant, concurrency, driver): medians over the rounds."""
    header = f"{'commit':12} {'variant':12} {'conc':>4} {'driver':8} {'cycles/s':>9} {'p50 ms':>7} {'p99 ms':>7}"
    lines = [header + f" {'client CPU µs/cycle':>19}"]
    keys = sorted({(r.commit, r.variant, r.concurrency, r.driver) for r in results})
    for key in keys:
        commit, variant, concurrency, driver = key
        runs = [r for r in results if (r.commit, r.variant, r.concurrency, r.driver) == key]
        rate = statistics.median(r.cycles_per_second for r in runs)
        cpu = statistics.median(r.cpu_microseconds_per_cycle for r in runs)
        latencies = sorted(latency for r in runs for latency in r.latencies)
        p50, p99 = (latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 for q in (0.5, 0.99))
        lines.append(
            f"{commit:12} {variant:12} {concurrency:>4} {driver:8} {rate:>9.0f} {p50:>7.2f} {p99:>7.2f} {cpu:>19.0f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pg_driver_choice", description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--cycles", type=int, default=2000, help="cycles per measurement")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated concurrent callers (= pool size)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per driver and setting (median reported)")
    arguments = parser.parse_args(argv)
    concurrencies = [int(value) for value in arguments.concurrency.split(",")]
    results = asyncio.run(run(arguments.dsn, arguments.cycles, concurrencies, arguments.rounds))
    print(report(results))


if __name__ == "__main__":
    main()
