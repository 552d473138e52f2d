"""A TypeScript worker on the generated contract, run exactly as the README tells a reader to.

The commands come from the README's fenced ```sh block under "### TypeScript (Node.js 20)", so the
documentation cannot rot without this test failing. They run against a fresh `sayiir-server` and the
outcome is checked through the Python stubs, not through the worker's own word.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sayiir_client.v1 import request_response_pb2, service_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
README_HEADING = "### TypeScript (Node.js 20)"
INSTANCE_ID = "interop-node-worker"
GREET_TASK_ID = hashlib.sha256(b"greet").digest()
"""The worker's one task is named "greet"; task ids are SHA-256 of the task's name."""

SERVER_START_TIMEOUT_S = 30.0
WORKER_TIMEOUT_S = 400.0
"""`npm ci` dominates: seconds with a warm npm cache, a minute or more on a fresh machine."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(WORKER_TIMEOUT_S + SERVER_START_TIMEOUT_S + 30)]


@dataclass(frozen=True)
class WorkerRun:
    """What running the README's TypeScript block against a live server left behind."""

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


def require_node() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not on PATH"
    if os.environ.get("SAYIIR_REQUIRE_NODE") == "1":
        pytest.fail(f"{reason}, and SAYIIR_REQUIRE_NODE=1 requires the Node.js interop test to run")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_serving(server: subprocess.Popen[bytes], channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"sayiir-server exited with {server.returncode} before serving")
        try:
            response = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            if response.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    pytest.fail(f"sayiir-server did not report SERVING within {SERVER_START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def server_address() -> Iterator[str]:
    """A fresh in-memory `sayiir-server` on a free port, serving."""
    require_node()
    address = f"127.0.0.1:{free_port()}"
    server = subprocess.Popen(
        [sys.executable, "-m", "sayiir_server", "serve", "--listen", address, "--backend", "memory://"],
        cwd=REPO,
    )
    try:
        with grpc.insecure_channel(address) as channel:
            wait_until_serving(server, channel)
        yield address
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def worker_run(server_address: str) -> Iterator[WorkerRun]:
    """Runs the README's TypeScript block once; every test of this module reads its outcome."""
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_shell_block(README_HEADING)],
        cwd=REPO,
        env={**os.environ, "SAYIIR_SERVER": server_address, "SAYIIR_INSTANCE_ID": INSTANCE_ID},
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"the README's TypeScript block exited with {done.returncode}\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    with grpc.insecure_channel(server_address) as channel:
        yield WorkerRun(channel=channel, summary=summary)


def test_node_worker_completes_the_workflow_with_its_output(worker_run: WorkerRun) -> None:
    snapshots = service_pb2_grpc.SnapshotStoreStub(worker_run.channel)
    snapshot = snapshots.LoadSnapshot(request_response_pb2.LoadSnapshotRequest(instance_id=INSTANCE_ID)).snapshot

    assert snapshot.WhichOneof("state") == "completed"
    assert snapshot.completed.final_output == b"node:" + snapshot.initial_input
    assert worker_run.summary["completed"] is True
    assert worker_run.summary["output"].encode() == snapshot.completed.final_output


def test_node_worker_records_its_task_output_in_completed_tasks(worker_run: WorkerRun) -> None:
    results = service_pb2_grpc.TaskResultStoreStub(worker_run.channel)
    response = results.LoadTaskResult(
        request_response_pb2.LoadTaskResultRequest(instance_id=INSTANCE_ID, task_id=GREET_TASK_ID)
    )

    assert response.HasField("output")
    assert response.output == worker_run.summary["output"].encode()


def test_node_worker_releases_its_claim(worker_run: WorkerRun) -> None:
    claims = service_pb2_grpc.TaskClaimStoreStub(worker_run.channel)
    response = claims.ClaimTask(
        request_response_pb2.ClaimTaskRequest(instance_id=INSTANCE_ID, task_id=GREET_TASK_ID, worker_id="python-probe")
    )

    assert response.HasField("claim"), "a claim the Node worker still held (ttl 30 s) would refuse this one"


def test_node_worker_reads_already_exists_from_the_status_details(worker_run: WorkerRun) -> None:
    assert worker_run.summary["instance_id"] == INSTANCE_ID
    assert worker_run.summary["branches"]["already_exists"] is True


def test_node_worker_reads_not_found_from_the_status_details(worker_run: WorkerRun) -> None:
    assert worker_run.summary["branches"]["not_found"] is True
