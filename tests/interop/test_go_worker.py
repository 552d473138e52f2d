"""A Go worker on the generated contract, built and run exactly as the README tells a reader to.

The commands come from the README's fenced ```sh block under "#### Debian's packages, GOPATH mode": the
Go code is generated from `proto/` with the pinned buf, built against Debian's Go packages and run against
a fresh `sayiir-server`, and the outcome is checked through the Python stubs, not through the worker's own
word. The module-proxy path of the README cannot run here (no proxy); both build the same sources.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from sayiir_client.v1 import request_response_pb2, service_pb2_grpc
from tests.support.server_process import server_process

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
README_HEADING = "#### Debian's packages, GOPATH mode"
INSTANCE_ID = "interop-go-worker"
GREET_TASK_ID = hashlib.sha256(b"greet").digest()
"""The worker's one task is named "greet"; task ids are SHA-256 of the task's name."""

GO_TOOLS = ("go", "protoc-gen-go", "protoc-gen-go-grpc")
DEBIAN_GOPATH = Path("/usr/share/gocode/src")
DEBIAN_GO_PACKAGES = (
    "google.golang.org/grpc",
    "google.golang.org/protobuf",
    "google.golang.org/genproto/googleapis/rpc/errdetails",
    "github.com/golang/protobuf",
)
"""Where Debian's golang-*-dev packages put the sources the GOPATH build compiles."""

WORKER_TIMEOUT_S = 120.0
"""A cold build (fresh GOCACHE: gRPC, protobuf and x/net from source) takes 10 to 20 s on 2 cores."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(WORKER_TIMEOUT_S + 60)]


@dataclass(frozen=True)
class WorkerRun:
    """What running the README's Go block against a live server left behind."""

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


def require_go() -> None:
    missing = [f"{tool} on PATH" for tool in GO_TOOLS if shutil.which(tool) is None]
    sources = [DEBIAN_GOPATH / package for package in DEBIAN_GO_PACKAGES]
    missing += [str(source) for source in sources if not source.is_dir()]
    if not missing:
        return
    reason = f"the Debian Go toolchain is incomplete, missing: {', '.join(missing)}"
    if os.environ.get("SAYIIR_REQUIRE_GO") == "1":
        pytest.fail(f"{reason}; SAYIIR_REQUIRE_GO=1 requires the Go interop test to run")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def worker_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerRun]:
    """Runs the README's Go block once against a fresh in-memory server; every test of this module reads its
    outcome. The build cache is the test's own, so the build is the cold one a fresh machine does."""
    require_go()
    go_cache = tmp_path_factory.mktemp("go-build-cache")
    with server_process() as server:
        done = run_readme_block(server.address, go_cache)
        assert done.returncode == 0, (
            f"the README's Go block exited with {done.returncode} (a panic 'protobuf tag not enough fields' means "
            f"Debian's golang-github-golang-protobuf-1-3-dev: see the README's Go section)\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        with grpc.insecure_channel(server.address) as channel:
            yield WorkerRun(channel=channel, summary=summary)


def run_readme_block(address: str, go_cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_shell_block(README_HEADING)],
        cwd=REPO,
        env={**os.environ, "SAYIIR_SERVER": address, "SAYIIR_INSTANCE_ID": INSTANCE_ID, "GOCACHE": str(go_cache)},
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
        check=False,
    )


def test_go_worker_completes_the_workflow_with_its_output(worker_run: WorkerRun) -> None:
    snapshots = service_pb2_grpc.SnapshotStoreStub(worker_run.channel)
    snapshot = snapshots.LoadSnapshot(request_response_pb2.LoadSnapshotRequest(instance_id=INSTANCE_ID)).snapshot

    assert snapshot.WhichOneof("state") == "completed"
    assert snapshot.completed.final_output == b"go:" + snapshot.initial_input
    assert worker_run.summary["completed"] is True
    assert worker_run.summary["output"].encode() == snapshot.completed.final_output


def test_go_worker_records_its_task_output_in_completed_tasks(worker_run: WorkerRun) -> None:
    results = service_pb2_grpc.TaskResultStoreStub(worker_run.channel)
    response = results.LoadTaskResult(
        request_response_pb2.LoadTaskResultRequest(instance_id=INSTANCE_ID, task_id=GREET_TASK_ID)
    )

    assert response.HasField("output")
    assert response.output == worker_run.summary["output"].encode()


def test_go_worker_releases_its_claim(worker_run: WorkerRun) -> None:
    claims = service_pb2_grpc.TaskClaimStoreStub(worker_run.channel)
    response = claims.ClaimTask(
        request_response_pb2.ClaimTaskRequest(instance_id=INSTANCE_ID, task_id=GREET_TASK_ID, worker_id="python-probe")
    )

    assert response.HasField("claim"), "a claim the Go worker still held (ttl 30 s) would refuse this one"


def test_go_worker_reads_already_exists_from_the_status_details(worker_run: WorkerRun) -> None:
    assert worker_run.summary["instance_id"] == INSTANCE_ID
    assert worker_run.summary["branches"]["already_exists"] is True


def test_go_worker_reads_not_found_from_the_status_details(worker_run: WorkerRun) -> None:
    assert worker_run.summary["branches"]["not_found"] is True
