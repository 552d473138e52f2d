"""A TypeScript worker on the generated contract, run exactly as the README tells a reader to.

The commands come from the README's fenced ```sh block under "### TypeScript (Node.js 20)", so the
documentation cannot rot without this test failing. They run against a fresh `sayiir-server` and the
outcome is checked through the Python stubs, not through the worker's own word.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

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

README_HEADING = "### TypeScript (Node.js 20)"
INSTANCE_ID = "interop-node-worker"

SERVER_START_TIMEOUT_S = 30.0
WORKER_TIMEOUT_S = 400.0
"""`npm ci` dominates: seconds with a warm npm cache, a minute or more on a fresh machine."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(WORKER_TIMEOUT_S + SERVER_START_TIMEOUT_S + 30)]


def require_node() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not on PATH"
    if os.environ.get("SAYIIR_REQUIRE_NODE") == "1":
        pytest.fail(f"{reason}, and SAYIIR_REQUIRE_NODE=1 requires the Node.js interop test to run")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server_address() -> Iterator[str]:
    """A fresh in-memory `sayiir-server` process on a free port, serving."""
    require_node()
    with server_process() as server:
        yield server.address


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
    summary = last_json_line(done.stdout)
    with grpc.insecure_channel(server_address) as channel:
        yield WorkerRun(channel=channel, summary=summary)


def test_node_worker_completes_the_workflow_with_its_output(worker_run: WorkerRun) -> None:
    assert_completed_with_its_output(worker_run, INSTANCE_ID, b"node:")


def test_node_worker_records_its_task_output_in_completed_tasks(worker_run: WorkerRun) -> None:
    assert_task_output_recorded(worker_run, INSTANCE_ID)


def test_node_worker_releases_its_claim(worker_run: WorkerRun) -> None:
    assert_claim_released(worker_run, INSTANCE_ID, "Node")


def test_node_worker_reads_already_exists_from_the_status_details(worker_run: WorkerRun) -> None:
    assert_already_exists_read(worker_run, INSTANCE_ID)


def test_node_worker_reads_not_found_from_the_status_details(worker_run: WorkerRun) -> None:
    assert_not_found_read(worker_run)
