"""The conformance kit, run as a process, passes against `sayiir-server serve` on every backend, also shared."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.postgres import temporary_database_url
from tests.support.server_process import server_process

KIT = (sys.executable, "-m", "sayiir_client.conformance")
MAX_WAIT_TIMEOUT = "1"
"""The servers' WaitForWakeup cap, so the kit can check WAKE-2.2 in one second."""
KIT_TIMEOUT_SECONDS = 120
UNOBSERVED = {"ERR-2.2", "ERR-5.1", "ERR-5.2"}
"""Checks skipped without --max-message-bytes, --token and --reader-token."""
SHARED_SKIPS = UNOBSERVED | {"WAKE-2.1", "PAGE-1.2", "DISP-6.3", "LIST-3.7"}
"""Checks that another run on the same server may leave nothing to observe."""


def run_kit(target: str, report: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [*KIT, "--target", target, "--max-wait-timeout", MAX_WAIT_TIMEOUT, "--json", str(report), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=KIT_TIMEOUT_SECONDS, check=False)


def assert_every_check_passed(result: subprocess.CompletedProcess[str], report: Path, skipped: set[str]) -> None:
    document = json.loads(report.read_text())
    not_passed = {c["rule"] for c in document["checks"] if c["outcome"] != "passed"}
    shown = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, shown
    assert not_passed <= skipped, shown


def test_the_kit_passes_against_the_memory_backend_with_bearer_tokens(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("conformance-token worker\nconformance-reader reader\n")
    report = tmp_path / "report.json"
    flags = ("--auth-tokens", str(tokens), "--max-wait-timeout", MAX_WAIT_TIMEOUT, "--max-message-bytes", "1048576")
    with server_process("memory://", *flags) as server:
        result = run_kit(
            server.address,
            report,
            "--token",
            "conformance-token",
            "--reader-token",
            "conformance-reader",
            "--max-message-bytes",
            "1048576",
        )
        refused = run_kit(server.address, tmp_path / "refused.json", "--token", "unknown-token")
    assert_every_check_passed(result, report, skipped=set())
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "refused the credentials" in refused.stderr


def test_two_kits_at_once_pass_against_one_sqlite_server(tmp_path: Path) -> None:
    """Shared-server safety: each run keeps to its own ids, tags and definition hashes."""
    url = f"sqlite:///{tmp_path / 'kit.db'}"
    reports = [tmp_path / "first.json", tmp_path / "second.json"]
    with server_process(url, "--max-wait-timeout", MAX_WAIT_TIMEOUT) as server, ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda report: run_kit(server.address, report), reports))
    for result, report in zip(results, reports, strict=True):
        # Another run's hints may leave a WaitForWakeup check nothing to observe: skipped, never failed.
        assert_every_check_passed(result, report, skipped=SHARED_SKIPS)


@pytest.mark.postgres
async def test_the_kit_passes_against_the_postgresql_backend(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    async with temporary_database_url() as url:
        with server_process(url, "--max-wait-timeout", MAX_WAIT_TIMEOUT) as server:
            result = await asyncio.to_thread(run_kit, server.address, report)
    assert_every_check_passed(result, report, skipped=UNOBSERVED)
