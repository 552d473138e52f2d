"""sayiir_client.Worker against SNAP-1.4: a run that became final while its task ran keeps its final state."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sayiir_client import Worker, WorkerOptions
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.backends.memory import InMemoryBackend
from tests.client.serving import client_over_grpc
from tests.contract.builders import DEFINITION_HASH, completed, first_task, task_id


async def test_snap_1_4_a_task_whose_run_was_finished_meanwhile_is_dropped_and_its_claim_released() -> None:
    backend = InMemoryBackend()
    await backend.prepare_run("order-1", DEFINITION_HASH, b"input", first_task("fetch"))
    finished = completed("order-1", b"finished by an operator")
    done = asyncio.Event()

    async def handle(task: pb.AvailableTask) -> bytes:
        await backend.save_snapshot(finished)  # someone else finishes the run while the task runs
        done.set()
        return b"late output"

    async with client_over_grpc(backend) as client:
        options = WorkerOptions(claim_wait=timedelta(milliseconds=100), stop_on_signals=False)
        worker = Worker(client, "worker-a", handle, options)
        running = asyncio.ensure_future(worker.run())
        await asyncio.wait_for(done.wait(), 10)
        worker.stop()  # run() returns once the running task has finished its bookkeeping
        await asyncio.wait_for(running, 10)

    assert (worker.stats.completed, worker.stats.finished_elsewhere) == (0, 1)
    assert await backend.load_snapshot("order-1") == finished
    assert await backend.claim_task("order-1", task_id("fetch"), "worker-b", None) is not None  # released
