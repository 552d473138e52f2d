"""`python -m benchmarks --quick` runs end to end, so the harness of `make bench` cannot rot.

Figures are not checked (they depend on the machine): only that every row is there, nothing failed,
and the files are written.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

THROUGHPUT_ROWS = (
    "SaveSnapshot 2 KB",
    "LoadSnapshot 2 KB",
    "SaveSnapshot 64 KB",
    "LoadSnapshot 64 KB",
    "ClaimTask + ReleaseTaskClaim",
    "worker cycle (4 RPCs)",
    "PrepareRun",
)
WAKEUP_ROW = "wakeup: save → WatchWakeups hint"
EVENT_DISPATCH_ROW = "event dispatch: SendEvent → waiting claim holds the next task"
WAKEUP_ACROSS_REPLICAS_ROW = "wakeup across replicas: save on A → WatchWakeups hint on B"
"""Only on PostgreSQL: the one backend whose server replicas share storage and hear each other's wakeups."""
FIND_AT_1K = "FindAvailableTasks(limit=10) @ 1,000 InProgress"
FIND_AT_1K_WITH_COMPLETED = "FindAvailableTasks(limit=10) @ 1,000 InProgress + 1,000 Completed"
LIST_AT_1K = "ListWorkflows(InProgress, 100 per page) @ 1,000 InProgress"
LIST_AT_1K_WITH_COMPLETED = "ListWorkflows(InProgress, 100 per page) @ 1,000 InProgress + 1,000 Completed"
MEMORY_ROW = "server memory per 10,000 instances"
WORKER_PATH_ROWS = (
    "worker path: ClaimAvailableTasks + CompleteTasks (Worker)",
    "4-RPC cycle: find → ClaimTask → SaveSnapshotFenced → Release",
    "dispatch latency: PrepareRun → claim held by a waiting ClaimAvailableTasks",
)
POSTGRES_ONLY_ROWS = (
    WAKEUP_ACROSS_REPLICAS_ROW,
    "dispatch latency across replicas: PrepareRun on A → claim held on B",
    "direct PostgreSQL, sayiir-postgres style polling (4 statements)",
    "direct PostgreSQL, SKIP LOCKED queue (2 statements)",
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def _expected_rows(backend: str) -> set[str]:
    rows = {*THROUGHPUT_ROWS, *WORKER_PATH_ROWS, WAKEUP_ROW, EVENT_DISPATCH_ROW, FIND_AT_1K, LIST_AT_1K}
    rows |= set(POSTGRES_ONLY_ROWS) if backend == "postgres" else set()
    return rows | ({MEMORY_ROW} if backend == "memory" else {FIND_AT_1K_WITH_COMPLETED, LIST_AT_1K_WITH_COMPLETED})


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return out


@pytest.fixture(scope="module")
def results(quick_run: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((quick_run / "results.json").read_text())
    return document


def _rows_of(results: dict[str, Any], backend: str) -> list[dict[str, Any]]:
    return [row for row in results["rows"] if row["backend"] == backend]


def test_memory_backend_is_always_measured(results: dict[str, Any]) -> None:
    assert results["backends"]["memory"] == "measured"


def test_an_installed_sqlite_backend_is_measured_not_skipped(results: dict[str, Any]) -> None:
    if importlib.util.find_spec("sayiir_server.backends.sqlite") is None:
        pytest.fail("the SQLite backend is part of the project: sayiir_server.backends.sqlite must exist")
    assert results["backends"]["sqlite"] == "measured"


def test_postgres_is_measured_or_skipped_with_a_reason(results: dict[str, Any]) -> None:
    status = results["backends"]["postgres"]
    if os.environ.get("SAYIIR_REQUIRE_POSTGRES") == "1":
        assert status == "measured"
    else:
        assert status == "measured" or (status.startswith("skipped: ") and len(status) > len("skipped: "))


def test_every_measured_backend_has_every_row(results: dict[str, Any]) -> None:
    for backend, status in results["backends"].items():
        if status == "measured":
            operations = {row["operation"] for row in _rows_of(results, backend)}
            assert operations == _expected_rows(backend), backend


def test_no_row_reports_an_error(results: dict[str, Any]) -> None:
    errors = [(row["backend"], row["operation"], row["note"]) for row in results["rows"] if row["kind"] == "error"]
    assert errors == []


def test_a_measured_postgres_reports_wakeup_latency_across_replicas(results: dict[str, Any]) -> None:
    if results["backends"]["postgres"] != "measured":
        pytest.skip("PostgreSQL was not reachable: no replicas to measure across")
    row = next(row for row in _rows_of(results, "postgres") if row["operation"] == WAKEUP_ACROSS_REPLICAS_ROW)
    assert row["kind"] == "wakeup"
    assert row["samples"] == results["meta"]["config"]["wakeup_samples"]
    assert row["p50_ms"] is not None
    assert row["p99_ms"] is not None
    assert row["ratio_to_echo"] is None


def test_every_throughput_row_carries_its_echo_ceiling(results: dict[str, Any]) -> None:
    for row in results["rows"]:
        if row["kind"] == "throughput":
            assert row["echo_ops_per_s"] is not None, row["operation"]
            assert row["ratio_to_echo"] is not None, row["operation"]


def test_a_skipped_backend_appears_in_the_table_with_its_reason(results: dict[str, Any], quick_run: Path) -> None:
    table = (quick_run / "table.txt").read_text()
    for backend, status in results["backends"].items():
        if status != "measured":
            assert status in table, backend


def test_a_listworkflows_row_is_measured_at_each_population(results: dict[str, Any]) -> None:
    for backend, status in results["backends"].items():
        if status == "measured":
            rows = [row for row in _rows_of(results, backend) if row["kind"] == "listing"]
            assert rows, backend
            assert all(row["samples"] >= 3 and row["p50_ms"] is not None for row in rows), rows


def test_the_latency_plot_is_a_png(quick_run: Path) -> None:
    assert (quick_run / "find_latency_vs_instances.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
