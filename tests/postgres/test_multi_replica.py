"""Two `sayiir-server serve` replicas on one PostgreSQL database, eight worker processes split between them.

2,000 single-task workflows are started through both replicas in turn. Every task must be executed
exactly once (the workers count their executions), no workflow may be lost, and each worker, whichever
replica it talks to, must hear wakeups for tasks made ready through either replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc as services
from sayiir_server.backends.postgres.options import parse_postgres_url
from tests.postgres.replica_worker import task_output

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKFLOWS = 2000
WORKERS = 8
REPLICAS = 2
CONCURRENT_STARTS = 32
START_TIMEOUT = 30.0
FINISH_TIMEOUT = 90.0
SERVER_COMMAND = (str(Path(sys.executable).with_name("sayiir-server")), "serve")
DEFINITION_HASH = hashlib.sha256(b"definition: one-task workflow").digest()
FIRST_TASK = pb.FirstTask(task_id=hashlib.sha256(b"only task").digest())
_LISTENING = re.compile(r"listening on (\S+:\d+) \(backend")


@dataclass
class Child:
    """A child process whose output is drained continuously (a full pipe would stall it)."""

    name: str
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    _drains: list[asyncio.Task[None]] = field(default_factory=list)

    def drain(
        self, stream: asyncio.StreamReader | None, first_match: re.Pattern[str] | None = None
    ) -> asyncio.Future[str]:
        """Keep reading `stream` to its end; the future resolves with the first match of `first_match`, if given."""
        found: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def read() -> None:
            assert stream is not None
            async for raw in stream:
                line = raw.decode(errors="replace").rstrip()
                self.lines.append(line)
                match = first_match.search(line) if first_match is not None else None
                if match is not None and not found.done():
                    found.set_result(match.group(1) if match.groups() else line)
            if found.done():
                return
            if first_match is None:
                found.set_result("")
            else:
                found.set_exception(AssertionError(f"{self.name} exited early: {self.lines[-20:]}"))

        self._drains.append(asyncio.create_task(read()))
        return found

    async def stop(self, timeout: float = 20.0) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        for drain in self._drains:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(drain, 5)
        return code


async def _spawn(name: str, *command: str) -> Child:
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    return Child(name, process)


@asynccontextmanager
async def _children() -> AsyncIterator[list[Child]]:
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            if child.process.returncode is None:
                child.process.kill()
                await child.process.wait()


async def _start_replica(url: str, children: list[Child], index: int) -> str:
    child = await _spawn(f"replica-{index}", *SERVER_COMMAND, "--listen", "127.0.0.1:0", "--backend", url)
    children.append(child)
    child.drain(child.process.stdout)
    return await asyncio.wait_for(child.drain(child.process.stderr, _LISTENING), START_TIMEOUT)


async def _start_worker(target: str, index: int, out: Path, children: list[Child]) -> Child:
    worker_id = f"worker-{index}"
    module = "tests.postgres.replica_worker"
    shard = ("--shard", str(index), "--shards", str(WORKERS))
    command = (sys.executable, "-m", module, "--target", target, "--worker-id", worker_id, *shard, "--out", str(out))
    child = await _spawn(worker_id, *command)
    children.append(child)
    ready = child.drain(child.process.stdout, re.compile(r"^ready$"))
    child.drain(child.process.stderr)
    await asyncio.wait_for(ready, START_TIMEOUT)
    return child


def _input(instance_id: str) -> bytes:
    return f"input of {instance_id}".encode()


async def _start_workflows(targets: Sequence[str]) -> dict[str, str]:
    """PrepareRun for every workflow, through the replicas in turn; returns instance id → replica address."""
    through = {f"order-{index:04d}": targets[index % len(targets)] for index in range(WORKFLOWS)}
    channels = {target: grpc.aio.insecure_channel(target) for target in targets}
    lifecycles = {target: services.LifecycleStub(channel) for target, channel in channels.items()}
    limit = asyncio.Semaphore(CONCURRENT_STARTS)

    async def start(instance_id: str, target: str) -> None:
        async with limit:
            request = rr.PrepareRunRequest(
                instance_id=instance_id,
                definition_hash=DEFINITION_HASH,
                input=_input(instance_id),
                first_task=FIRST_TASK,
            )
            response = await lifecycles[target].PrepareRun(request, timeout=30)
            assert response.outcome.HasField("fresh")

    try:
        await asyncio.gather(*(start(instance_id, target) for instance_id, target in through.items()))
    finally:
        for channel in channels.values():
            await channel.close()
    return through


async def _completed_outputs(url: str) -> dict[str, bytes]:
    parsed = parse_postgres_url(url)
    connection = await asyncpg.connect(parsed.dsn, server_settings={"search_path": parsed.options.schema or "public"})
    try:
        rows = await connection.fetch("SELECT snapshot FROM snapshots WHERE state = 'completed'")
    finally:
        await connection.close()
    outputs = {}
    for row in rows:
        snapshot = pb.WorkflowSnapshot.FromString(row["snapshot"])
        outputs[snapshot.instance_id] = snapshot.completed.final_output
    return outputs


async def _wait_until_all_completed(url: str) -> dict[str, bytes]:
    deadline = asyncio.get_running_loop().time() + FINISH_TIMEOUT
    while True:
        outputs = await _completed_outputs(url)
        if len(outputs) >= WORKFLOWS or asyncio.get_running_loop().time() > deadline:
            return outputs
        await asyncio.sleep(0.25)


async def test_two_replicas_and_eight_workers_execute_every_task_exactly_once(
    postgres_url: str, tmp_path: Path
) -> None:
    async with _children() as children:
        targets = [await _start_replica(postgres_url, children, index) for index in range(REPLICAS)]
        # Neighbouring workers, which share the hints of one shard, talk to different replicas.
        workers = {
            f"worker-{index}": await _start_worker(
                targets[index % REPLICAS], index, tmp_path / f"worker-{index}.json", children
            )
            for index in range(WORKERS)
        }

        started_through = await _start_workflows(targets)
        outputs = await _wait_until_all_completed(postgres_url)

        exit_codes = {name: await worker.stop() for name, worker in workers.items()}
        assert exit_codes == dict.fromkeys(workers, 0), {name: workers[name].lines[-10:] for name in workers}
        records: list[dict[str, Any]] = [json.loads((tmp_path / f"{name}.json").read_text()) for name in workers]

    executions = Counter(instance_id for record in records for instance_id in record["executed"])
    assert set(executions) == set(started_through), "some workflows were never executed"
    assert [instance for instance, count in executions.items() if count != 1] == [], "executed more than once"
    assert outputs == {instance_id: task_output(_input(instance_id)) for instance_id in started_through}
    for record in records:
        replicas_heard_from = {started_through[instance_id] for instance_id in record["hinted"]}
        assert replicas_heard_from == set(targets), f"{record['worker']} on {record['target']} missed a replica"
