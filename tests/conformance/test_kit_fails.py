"""The kit can fail: a server with deliberate faults makes the rules they break fail, named in every report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from sayiir_client.errors import CannotCancelError
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.api.server import PersistenceServer, ServerOptions
from sayiir_server.backends.memory import InMemoryBackend
from sayiir_server.domain.model import SignalKind
from tests.conformance.test_kit_passes import KIT


class UnfencedBackend(InMemoryBackend):
    """Two faults: a fenced save ignores the claim (CLAIM-5.2), a refused cancel answers OK (SIG-1.2)."""

    async def save_snapshot_fenced(self, snapshot: pb.WorkflowSnapshot, task_id: bytes, worker_id: str) -> bool:
        await self.save_snapshot(snapshot)
        return True

    async def store_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        with contextlib.suppress(CannotCancelError):
            await super().store_signal(instance_id, kind, request)


@pytest.fixture
async def broken_server() -> AsyncIterator[PersistenceServer]:
    server = PersistenceServer(UnfencedBackend(), ServerOptions(listen="127.0.0.1:0"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(timedelta(0))


async def run_kit(*options: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *KIT, *options, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_the_rules_a_broken_server_breaks_fail_by_id_in_every_report(
    broken_server: PersistenceServer, tmp_path: Path
) -> None:
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    code, output = await run_kit(
        "--target",
        broken_server.address,
        "--rules",
        "CLAIM-5.*",
        "--rules",
        "SIG-1.*,SNAP-1.1",
        "--junit-xml",
        str(junit),
        "--json",
        str(report),
    )
    assert code == 1, output
    assert "FAIL  CLAIM-5.2" in output, output
    assert "FAIL  SIG-1.2" in output, output
    assert "expected: saved = false with no claim" in output, output
    assert "sent:     SaveSnapshotFenced(" in output, output
    cases = ElementTree.parse(junit).getroot().iter("testcase")
    failed = {case.get("classname") for case in cases if case.find("failure") is not None}
    assert failed == {"CLAIM-5.2", "SIG-1.2"}
    outcomes = {(c["rule"], c["outcome"]) for c in json.loads(report.read_text())["checks"]}
    assert ("SNAP-1.1", "passed") in outcomes
    assert ("CLAIM-5.2", "failed") in outcomes


async def test_a_selection_matching_no_rule_is_a_usage_error() -> None:
    code, output = await run_kit("--rules", "NOPE-*", "--list")
    assert code == 2
    assert "no check matches" in output


async def test_an_unreachable_target_is_exit_code_3(unused_tcp_port: int) -> None:
    code, output = await run_kit("--target", f"127.0.0.1:{unused_tcp_port}", "--connect-timeout", "1")
    assert code == 3
    assert "cannot connect" in output


async def test_list_names_every_check_by_rule_id() -> None:
    code, output = await run_kit("--list", "--rules", "DISP-4.*")
    rules = {line.split()[0] for line in output.splitlines()}
    assert code == 0
    assert rules == {"DISP-4.1", "DISP-4.2", "DISP-4.3", "DISP-4.4"}, output
