"""What the interop tests share: the README block each worker runs from, and the outcome every worker must leave.

Each language's worker (TypeScript, Go) runs the same one-task workflow against a fresh server and prints a JSON
summary; the checks here read its outcome back through the Python stubs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from sayiir_client.v1 import request_response_pb2, service_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
GREET_TASK_ID = hashlib.sha256(b"greet").digest()
"""Every worker's one task is named "greet"; task ids are SHA-256 of the task's name."""


@dataclass(frozen=True)
class WorkerRun:
    """What running a README worker block against a live server left behind."""

    channel: grpc.Channel
    summary: dict[str, Any]


def readme_shell_block(heading: str) -> str:
    """The body of the first ```sh block after `heading` in the README."""
    lines = README.read_text(encoding="utf-8").splitlines()
    if heading not in lines:
        pytest.fail(f"README.md has no heading {heading!r}: this test runs the ```sh block under it")
    start = lines.index(heading)
    fence = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "```sh")
    end = next(i for i in range(fence + 1, len(lines)) if lines[i].strip() == "```")
    return "\n".join(lines[fence + 1 : end]) + "\n"


def last_json_line(stdout: str) -> dict[str, Any]:
    """The worker's summary: its last line on stdout."""
    summary: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return summary


def assert_completed_with_its_output(run: WorkerRun, instance_id: str, output_prefix: bytes) -> None:
    snapshots = service_pb2_grpc.SnapshotStoreStub(run.channel)
    snapshot = snapshots.LoadSnapshot(request_response_pb2.LoadSnapshotRequest(instance_id=instance_id)).snapshot

    assert snapshot.WhichOneof("state") == "completed"
    assert snapshot.completed.final_output == output_prefix + snapshot.initial_input
    assert run.summary["completed"] is True
    assert run.summary["output"].encode() == snapshot.completed.final_output


def assert_task_output_recorded(run: WorkerRun, instance_id: str) -> None:
    results = service_pb2_grpc.TaskResultStoreStub(run.channel)
    response = results.LoadTaskResult(
        request_response_pb2.LoadTaskResultRequest(instance_id=instance_id, task_id=GREET_TASK_ID)
    )

    assert response.HasField("output")
    assert response.output == run.summary["output"].encode()


def assert_claim_released(run: WorkerRun, instance_id: str, worker: str) -> None:
    claims = service_pb2_grpc.TaskClaimStoreStub(run.channel)
    response = claims.ClaimTask(
        request_response_pb2.ClaimTaskRequest(instance_id=instance_id, task_id=GREET_TASK_ID, worker_id="python-probe")
    )

    assert response.HasField("claim"), f"a claim the {worker} worker still held (ttl 30 s) would refuse this one"


def assert_already_exists_read(run: WorkerRun, instance_id: str) -> None:
    assert run.summary["instance_id"] == instance_id
    assert run.summary["branches"]["already_exists"] is True


def assert_not_found_read(run: WorkerRun) -> None:
    assert run.summary["branches"]["not_found"] is True
