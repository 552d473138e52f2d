"""A worker process: find → claim → guard → run (with heartbeats) → fenced save → release (SPEC.md §9).

    python -m examples.three_step_workflow.worker --target HOST:PORT --worker-id a [--tags heavy]
        [--until-completed ID ...] [--step-seconds 0.2]

Prints one JSON line per step it ran: {"worker", "instance", "step", "input", "output", "saved"}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from examples.three_step_workflow.workflow import DEFINITION, Step, next_step, step_of
from sayiir_client import AsyncPersistenceClient, ClaimLostError, NotFoundError
from sayiir_client.v1 import messages_pb2 as pb

CLAIM_TTL = timedelta(seconds=10)
"""Lease length: a worker that dies holding a claim blocks its task at most this long."""
HEARTBEAT_EVERY = CLAIM_TTL / 3
"""Extend the lease well inside its ttl, so one slow heartbeat does not lose it."""
IDLE_WAIT = timedelta(seconds=1)
"""Long-poll for a wakeup hint this long when nothing was found; short, as a hint sent just before is missed."""
BATCH = 10
TERMINAL_STATES = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class Worker:
    client: AsyncPersistenceClient
    worker_id: str
    tags: Sequence[str]
    step_seconds: float = 0.0
    """Extra time each step takes, to make the example's workers overlap."""

    async def run(self, until_completed: Sequence[str]) -> None:
        """Work until every instance in `until_completed` is terminal (forever when it is empty)."""
        while not until_completed or not await self._all_terminal(until_completed):
            tasks = await self.client.find_available_tasks(self.worker_id, BATCH, timedelta(seconds=30), self.tags)
            ran = [await self.try_task(task) for task in tasks]
            if not any(ran):
                await self.client.wait_for_wakeup(IDLE_WAIT, self.tags)

    async def try_task(self, task: pb.AvailableTask) -> bool:
        """Claim, guard, run and checkpoint one task; False when it was not ours to run."""
        step = step_of(task.task_id)
        if task.definition_hash != DEFINITION or step is None:
            return False  # another workflow's task: leave it to workers that know it
        claim = await self.client.claim_task(task.instance_id, task.task_id, self.worker_id, CLAIM_TTL)
        if claim is None:
            return False  # another worker holds it
        try:
            snapshot = await self._still_current(task)
            if snapshot is None:
                return False
            async with self._heartbeat(task):
                output = await asyncio.to_thread(self._run_step, step, task.input)
            _record(snapshot, step, output)
            saved = await self.client.save_snapshot_fenced(snapshot, task.task_id, self.worker_id)
            # saved=False: the lease lapsed and another worker may have taken over; our result is dropped.
            _report(self.worker_id, task, step, output, saved)
            return saved
        finally:
            with contextlib.suppress(NotFoundError, ClaimLostError):  # a lapsed lease may be gone or taken over
                await self.client.release_task_claim(task.instance_id, task.task_id, self.worker_id)

    async def _still_current(self, task: pb.AvailableTask) -> pb.WorkflowSnapshot | None:
        """The post-claim guard: between find and claim, another worker may have run this very task."""
        snapshot = await self.client.load_snapshot(task.instance_id)
        if snapshot.WhichOneof("state") != "in_progress":
            return None
        state = snapshot.in_progress
        if state.position.WhichOneof("position") != "at_task" or state.position.at_task.task_id != task.task_id:
            return None
        if any(result.task_id == task.task_id for result in state.completed_tasks):
            return None
        signal = await self.client.check_control_signals(task.instance_id, task.task_id)
        if signal is not None:
            return None  # cancelled or paused just now
        return snapshot

    @contextlib.asynccontextmanager
    async def _heartbeat(self, task: pb.AvailableTask) -> AsyncIterator[None]:
        async def beat() -> None:
            while True:
                await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())
                await self.client.extend_task_claim(task.instance_id, task.task_id, self.worker_id, CLAIM_TTL)

        beating = asyncio.create_task(beat())
        try:
            yield
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError, NotFoundError, ClaimLostError):
                await beating

    def _run_step(self, step: Step, step_input: bytes) -> bytes:
        time.sleep(self.step_seconds)
        return step.run(step_input)

    async def _all_terminal(self, instance_ids: Sequence[str]) -> bool:
        for instance_id in instance_ids:
            try:
                snapshot = await self.client.load_snapshot(instance_id)
            except NotFoundError:
                return False  # not started yet
            if snapshot.WhichOneof("state") not in TERMINAL_STATES:
                return False
        return True


def _record(snapshot: pb.WorkflowSnapshot, step: Step, output: bytes) -> None:
    """The checkpoint after `step`: its output recorded, positioned at the next step or Completed."""
    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))
    snapshot.updated_at.CopyFrom(now)
    snapshot.ClearField("task_deadline")
    following = next_step(step)
    if following is None:
        # Completed replaces the in-progress state: the server retains the earlier steps' results for
        # load_task_result, and the last step's output is the workflow's final output.
        snapshot.completed.CopyFrom(pb.CompletedState(final_output=output))
        del snapshot.task_tags[:]
        return
    state = snapshot.in_progress
    state.completed_tasks.add(task_id=step.task_id, output=output)
    state.last_completed_task_id = step.task_id
    state.position.at_task.task_id = following.task_id
    del snapshot.task_tags[:]
    snapshot.task_tags.extend(following.tags)


def _report(worker_id: str, task: pb.AvailableTask, step: Step, output: bytes, saved: bool) -> None:
    line = {
        "worker": worker_id,
        "instance": task.instance_id,
        "step": step.name,
        "input": task.input.decode(),
        "output": output.decode(),
        "saved": saved,
    }
    print(json.dumps(line), flush=True)


async def main(arguments: argparse.Namespace) -> None:
    async with AsyncPersistenceClient(arguments.target) as client:
        worker = Worker(client, arguments.worker_id, arguments.tags, arguments.step_seconds)
        await worker.run(arguments.until_completed)


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
