"""Typed usage of the client, checked by `mypy --strict` (make typecheck); never run.

Each `# type: ignore[...]` line is a misuse mypy must reject: strict mode warns
about unused ignores, so if the client's types ever accepted it, the check fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sayiir_client import (
    AlreadyExistsError,
    AsyncPersistenceClient,
    ControlSignal,
    DefinitionHash,
    DefinitionMismatchError,
    KeepaliveOptions,
    PersistenceClient,
    RetryOptions,
    TaskId,
)
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.traits import Backend, PersistentBackend, TaskClaimStore, TaskResultStore

TASK = TaskId.from_name("charge-card")
DEFINITION = DefinitionHash.from_name("checkout/v1")


def the_async_client_is_a_backend() -> None:
    backend: Backend = AsyncPersistenceClient("localhost:50051")
    claims: TaskClaimStore = AsyncPersistenceClient("localhost:50051")
    results: TaskResultStore = AsyncPersistenceClient("localhost:50051")
    checkpoints: PersistentBackend = AsyncPersistenceClient("localhost:50051")
    del backend, claims, results, checkpoints


def the_blocking_client_is_not_a_backend() -> None:
    backend: Backend = PersistenceClient("localhost:50051")  # type: ignore[assignment]
    del backend


async def a_worker_step(client: AsyncPersistenceClient) -> None:
    outcome: pb.PrepareRunOutcome = await client.prepare_run(
        "order-1", DEFINITION, b"{}", pb.FirstTask(task_id=TASK, priority=2), enums.CONFLICT_POLICY_USE_EXISTING
    )
    if outcome.WhichOneof("outcome") == "fresh":
        fresh: pb.WorkflowSnapshot = outcome.fresh.snapshot
        del fresh
    tasks: list[pb.AvailableTask] = await client.find_available_tasks("worker-1", 10, timedelta(seconds=30), ["gpu"])
    for task in tasks:
        claim: pb.TaskClaim | None = await client.claim_task(task.instance_id, task.task_id, "worker-1", None)
        if claim is None:
            continue
        await client.extend_task_claim(task.instance_id, task.task_id, "worker-1", timedelta(seconds=30))
        signal: ControlSignal | None = await client.check_control_signals(task.instance_id, TaskId(task.task_id))
        del signal
        saved: bool = await client.save_snapshot_fenced(task.snapshot, task.task_id, "worker-1")
        del saved
        await client.release_task_claim(task.instance_id, task.task_id, "worker-1")
    output: bytes | None = await client.load_task_result("order-1", TASK)
    event: bytes | None = await client.consume_event("order-1", "approved")
    hint: pb.TaskWakeupHint | None = await client.wait_for_wakeup(timedelta(seconds=5))
    async for watched in client.watch_wakeups(["gpu"]):
        found: pb.AvailableTask | None = await client.find_hinted_task(watched)
        del found
        break
    ids: list[str] = await client.list_snapshots()
    del output, event, hint, ids


async def misuses(client: AsyncPersistenceClient) -> None:
    await client.claim_task("order-1", TASK, "worker-1", 30)  # type: ignore[arg-type]
    await client.load_snapshot(TASK)  # type: ignore[arg-type]
    await client.save_task_result("order-1", "not bytes", b"")  # type: ignore[arg-type]
    await client.store_signal("order-1", "cancel", pb.SignalRequest())  # type: ignore[arg-type]
    snapshot: str = await client.load_snapshot("order-1")  # type: ignore[assignment]
    del snapshot


def blocking_use(tags: Sequence[str]) -> None:
    retry = RetryOptions(max_attempts=4, initial_backoff=timedelta(milliseconds=200))
    keepalive = KeepaliveOptions(interval=timedelta(seconds=20))
    with PersistenceClient("localhost:50051", token="t", retry=retry, keepalive=keepalive) as client:
        claim: pb.TaskClaim | None = client.claim_task("order-1", TASK, "worker-1", timedelta(seconds=30))
        for hint in client.watch_wakeups(tags):
            task: pb.AvailableTask | None = client.find_hinted_task(hint)
            del task
            break
        del claim
    try:
        with PersistenceClient("localhost:50051") as client:
            client.prepare_run("order-1", DEFINITION, b"", pb.FirstTask(task_id=TASK))
    except AlreadyExistsError as exists:
        instance_id: str = exists.instance_id
        del instance_id
    except DefinitionMismatchError as mismatch:
        found: bytes = mismatch.found
        del found
