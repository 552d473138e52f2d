"""A Go worker on the generated contract, built and run exactly as the README tells a reader to.

The commands come from the README's fenced ```sh block under "#### Debian's packages, GOPATH mode": the
Go code is generated from `proto/` with the pinned buf, built against Debian's Go packages and run against
a fresh `sayiir-server`, and the outcome is checked through the Python stubs, not through the worker's own
word. The module-proxy path of the README cannot run here (no proxy); both build the same sources.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.interop.readme_worker import (
    REPO,
    WorkerRun,
    assert_already_exists_read,
    assert_claim_released,
    assert_completed_with_its_output,
    assert_not_found_read,
    assert_task_output_recorded,
    last_json_line,
    readme_shell_block,
)
from tests.support.server_process import server_process

README_HEADING = "#### Debian's packages, GOPATH mode"
INSTANCE_ID = "interop-go-worker"

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
        summary = last_json_line(done.stdout)
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
    assert_completed_with_its_output(worker_run, INSTANCE_ID, b"go:")


def test_go_worker_records_its_task_output_in_completed_tasks(worker_run: WorkerRun) -> None:
    assert_task_output_recorded(worker_run, INSTANCE_ID)


def test_go_worker_releases_its_claim(worker_run: WorkerRun) -> None:
    assert_claim_released(worker_run, INSTANCE_ID, "Go")


def test_go_worker_reads_already_exists_from_the_status_details(worker_run: WorkerRun) -> None:
    assert_already_exists_read(worker_run, INSTANCE_ID)


def test_go_worker_reads_not_found_from_the_status_details(worker_run: WorkerRun) -> None:
    assert_not_found_read(worker_run)
