"""The three-step example: two worker processes complete every run through a real server (WORKER-1)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from examples.three_step_workflow.workflow import STEPS, expected_output
from sayiir_client import PersistenceClient
from tests.support.server_process import server_process

REPO = Path(__file__).resolve().parents[2]
RUNS = {"order-1": "3,1,2", "order-2": "5", "order-3": "1,1,1,1", "order-4": "10,20", "order-5": "7,0"}
TIMEOUT_SECONDS = 60


def start_worker(address: str, worker_id: str, tags: list[str]) -> subprocess.Popen[str]:
    command = [
        *(sys.executable, "-m", "examples.three_step_workflow.worker"),
        *("--target", address, "--worker-id", worker_id, "--step-seconds", "0.05"),
        *("--tags", *tags),
        *("--until-completed", *RUNS),
    ]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)


def test_two_workers_complete_every_run_running_each_step_exactly_once() -> None:
    with server_process() as server:
        workers = {"a": start_worker(server.address, "a", ["light"]), "b": start_worker(server.address, "b", ["heavy"])}
        try:
            starter = [sys.executable, "-m", "examples.three_step_workflow.starter", "--target", server.address]
            for instance_id, text in RUNS.items():
                starter += ["--run", f"{instance_id}={text}"]
            subprocess.run(starter, cwd=REPO, check=True, timeout=TIMEOUT_SECONDS, capture_output=True)
            outputs = {name: worker.communicate(timeout=TIMEOUT_SECONDS)[0] for name, worker in workers.items()}
        finally:
            for worker in workers.values():
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
        with PersistenceClient(server.address) as client:
            snapshots = {instance_id: client.load_snapshot(instance_id) for instance_id in RUNS}
            stored_results = {
                (instance_id, step.name): client.load_task_result(instance_id, step.task_id)
                for instance_id in RUNS
                for step in STEPS[:-1]
            }

    assert {name: worker.returncode for name, worker in workers.items()} == {"a": 0, "b": 0}
    ran = [json.loads(line) | {"by": name} for name, output in outputs.items() for line in output.splitlines()]
    # Every step of every run executed exactly once, across both workers, and each checkpoint was saved.
    assert Counter((step["instance"], step["step"]) for step in ran) == {
        (instance_id, step.name): 1 for instance_id in RUNS for step in STEPS
    }
    assert all(step["saved"] for step in ran)
    # Routing: only worker b carries the "heavy" tag that the square step requires.
    assert {step["by"] for step in ran if step["step"] == "square"} == {"b"}
    # Each step got the previous step's output, and the runs completed with the workflow's result.
    by_key = {(step["instance"], step["step"]): step for step in ran}
    for instance_id, text in RUNS.items():
        inputs = [by_key[instance_id, step.name]["input"] for step in STEPS]
        outputs_in_order = [by_key[instance_id, step.name]["output"] for step in STEPS]
        assert inputs == [text, *outputs_in_order[:-1]]
        assert snapshots[instance_id].WhichOneof("state") == "completed"
        assert snapshots[instance_id].completed.final_output == expected_output(text.encode())
        assert outputs_in_order[-1].encode() == expected_output(text.encode())
    for (instance_id, step_name), stored in stored_results.items():
        assert stored == by_key[instance_id, step_name]["output"].encode()
