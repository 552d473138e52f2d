"""A worker process on `sayiir_client.Worker`: ClaimAvailableTasks → run the step (heartbeats) → CompleteTask.

    python -m examples.three_step_workflow.worker --target HOST:PORT --worker-id a [--tags heavy]
        [--until-completed ID ...] [--step-seconds 0.2]

It claims only tasks of this example's definition (and, by its tags, the steps it may run): the server
hands out no other workflow's task. Prints one JSON line per step it ran:
{"worker", "instance", "step", "input", "output", "saved"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from datetime import timedelta

from examples.three_step_workflow.workflow import DEFINITION, Step, next_step, step_of
from sayiir_client import AsyncPersistenceClient, NotFoundError, Worker, WorkerOptions
from sayiir_client.tasks import advanced_to, completed_with
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.worker import CompletionObserver, TaskHandler

CLAIM_TTL = timedelta(seconds=10)
"""Lease length: a worker that dies holding a claim blocks its task at most this long."""
CLAIM_WAIT = timedelta(seconds=1)
"""One long-poll; short, so the --until-completed check runs often."""
TERMINAL_STATES = ("completed", "failed", "cancelled")


def run_step(step: Step, step_input: bytes, step_seconds: float) -> bytes:
    time.sleep(step_seconds)
    return step.run(step_input)


def checkpoint(task: pb.AvailableTask, step: Step, output: bytes) -> pb.WorkflowSnapshot:
    """The snapshot after `step`: at the next step (with its tags), or Completed with the last output."""
    following = next_step(step)
    if following is None:
        # The server retains the earlier steps' results for load_task_result beside the Completed row.
        return completed_with(task.snapshot, output)
    return advanced_to(task.snapshot, task.task_id, output, following.task_id, following.tags)


def handler_for(step_seconds: float) -> TaskHandler:
    async def handle(task: pb.AvailableTask) -> pb.WorkflowSnapshot:
        step = step_of(task.task_id)
        if step is None:
            raise ValueError(f"not a step of this definition: {task.task_id.hex()}")
        output = await asyncio.to_thread(run_step, step, task.input, step_seconds)
        return checkpoint(task, step, output)

    return handle


def report(worker_id: str) -> CompletionObserver:
    def on_completed(task: pb.AvailableTask, snapshot: pb.WorkflowSnapshot, saved: bool) -> None:
        step = step_of(task.task_id)
        assert step is not None
        state = snapshot.WhichOneof("state")
        output = (
            snapshot.completed.final_output if state == "completed" else snapshot.in_progress.completed_tasks[-1].output
        )
        line = {
            "worker": worker_id,
            "instance": task.instance_id,
            "step": step.name,
            "input": task.input.decode(),
            "output": output.decode(),
            "saved": saved,
        }
        print(json.dumps(line), flush=True)

    return on_completed


async def all_terminal(client: AsyncPersistenceClient, instance_ids: Sequence[str]) -> bool:
    for instance_id in instance_ids:
        try:
            snapshot = await client.load_snapshot(instance_id)
        except NotFoundError:
            return False  # not started yet
        if snapshot.WhichOneof("state") not in TERMINAL_STATES:
            return False
    return True


async def stop_when_terminal(client: AsyncPersistenceClient, worker: Worker, instance_ids: Sequence[str]) -> None:
    # The other worker process completes runs too, and nothing announces a run's end: poll the server.
    while not await all_terminal(client, instance_ids):  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    worker.stop()


async def main(arguments: argparse.Namespace) -> None:
    async with AsyncPersistenceClient(arguments.target) as client:
        options = WorkerOptions(
            definition_hashes=[DEFINITION],
            worker_tags=arguments.tags,
            claim_ttl=CLAIM_TTL,
            claim_wait=CLAIM_WAIT,
            on_completed=report(arguments.worker_id),
        )
        worker = Worker(client, arguments.worker_id, handler_for(arguments.step_seconds), options)
        if arguments.until_completed:
            watcher = asyncio.ensure_future(stop_when_terminal(client, worker, arguments.until_completed))
        await worker.run()
        if arguments.until_completed:
            await watcher


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="HOST:PORT of sayiir-server")
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--tags", nargs="*", default=[], help="tags this worker carries (e.g. heavy)")
    parser.add_argument("--until-completed", nargs="*", default=[], metavar="ID", help="exit once these are done")
    parser.add_argument("--step-seconds", type=float, default=0.0, help="extra time each step takes")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_arguments(sys.argv[1:])))
