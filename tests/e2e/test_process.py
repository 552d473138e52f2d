"""The `sayiir-server serve` process: health, reflection, configuration, graceful shutdown, exit codes."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc
from sayiir_server.api.server import LIVENESS_SERVICE_NAME
from sayiir_server.api.servicers import SERVICE_NAMES

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("sayiir-server"))
PYTHON_MODULE = (sys.executable, "-m", "sayiir_server")
GRACE_SECONDS = 10.0
START_TIMEOUT = 30.0
LISTENING = re.compile(r"listening on (\S+:\d+) \(backend: (\S+),")


class ServerProcess:
    """A `sayiir-server serve` child process; its stderr is collected line by line."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: list[str] = []
        self._new_lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._collect_stderr, daemon=True).start()

    def _collect_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            self._new_lines.put(line)
        self._new_lines.put(None)

    def wait_for_listening(self) -> tuple[str, str]:
        """(address, backend) from the start log line."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self._new_lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if line is None:
                break
            if match := LISTENING.search(line):
                return match.group(1), match.group(2)
        raise AssertionError(f"the server did not report its address; stderr: {self.lines}")

    def signal_and_wait(self, signum: int, timeout: float) -> tuple[int, float]:
        """Send a signal; return (exit code, seconds until exit)."""
        started = time.monotonic()
        self.process.send_signal(signum)
        code = self.process.wait(timeout)
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _env(**variables: str) -> dict[str, str]:
    """The test's environment without SAYIIR_* settings, plus `variables`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SAYIIR_")}
    env.update(variables)
    return env


def _serve(*flags: str, command: Sequence[str] = (CONSOLE_SCRIPT,)) -> list[str]:
    return [*command, "serve", *flags]


@pytest.fixture
def start() -> Iterator[type[ServerProcess]]:
    """Starts server processes and makes sure none outlives the test."""
    started: list[ServerProcess] = []

    class Tracked(ServerProcess):
        def __init__(self, command: Sequence[str], env: Mapping[str, str]) -> None:
            super().__init__(command, env)
            started.append(self)

    yield Tracked
    for process in started:
        process.close()


@pytest.fixture(scope="module")
def running_server() -> Iterator[str]:
    """One memory-backed server process for the read-only checks; yields its address."""
    process = ServerProcess(_serve("--listen", "127.0.0.1:0", "--backend", "memory://", "--grace-period", "1"), _env())
    try:
        address, _ = process.wait_for_listening()
        yield address
    finally:
        process.close()


# --- a running server ----------------------------------------------------------------------------------------------


async def test_health_answers_serving_for_the_server_each_service_and_liveness(running_server: str) -> None:
    async with grpc.aio.insecure_channel(running_server) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", *SERVICE_NAMES, LIVENESS_SERVICE_NAME):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_reflection_lists_the_five_services_health_and_reflection(running_server: str) -> None:
    async with grpc.aio.insecure_channel(running_server) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = [reply async for reply in reflection.ServerReflectionInfo(iter([request]), timeout=10)]
    listed = {service.name for service in replies[0].list_services_response.service}
    assert listed == {*SERVICE_NAMES, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}


async def test_the_persistence_services_answer_over_the_wire(running_server: str) -> None:
    async with grpc.aio.insecure_channel(running_server) as channel:
        snapshots = service_pb2_grpc.SnapshotStoreStub(channel)
        page = await snapshots.ListSnapshots(rr.ListSnapshotsRequest(), timeout=10)
    assert page.next_page_token == ""


# --- shutdown ------------------------------------------------------------------------------------------------------


async def test_sigterm_ends_open_watch_streams_and_exits_0_within_the_grace_period(
    start: type[ServerProcess],
) -> None:
    flags = ("--listen", "127.0.0.1:0", "--backend", "memory://", "--grace-period", str(GRACE_SECONDS))
    server = start(_serve(*flags), _env())
    address, _ = server.wait_for_listening()
    async with grpc.aio.insecure_channel(address) as channel:
        stream = service_pb2_grpc.TaskClaimStoreStub(channel).WatchWakeups(rr.WatchWakeupsRequest())
        await asyncio.wait_for(stream.initial_metadata(), 10)

        exit_code, seconds = await asyncio.to_thread(server.signal_and_wait, signal.SIGTERM, GRACE_SECONDS + 10)

        assert [message async for message in stream] == []
        assert await stream.code() == grpc.StatusCode.OK
    assert exit_code == 0, server.lines
    assert seconds < GRACE_SECONDS, f"an open WatchWakeups stream held the shutdown {seconds:.1f} s: {server.lines}"
    assert any("SIGTERM received" in line for line in server.lines), server.lines
    assert not any("Traceback" in line for line in server.lines), server.lines


def test_sigint_exits_0(start: type[ServerProcess]) -> None:
    server = start(_serve("--listen", "127.0.0.1:0", "--backend", "memory://", command=PYTHON_MODULE), _env())
    server.wait_for_listening()
    exit_code, _ = server.signal_and_wait(signal.SIGINT, GRACE_SECONDS + 10)
    assert exit_code == 0, server.lines
    assert not any("Traceback" in line for line in server.lines), server.lines


# --- configuration and exit codes ----------------------------------------------------------------------------------


def test_flags_beat_environment_variables_which_beat_defaults(start: type[ServerProcess]) -> None:
    env = _env(SAYIIR_LISTEN="127.0.0.1:0", SAYIIR_BACKEND="bogus://", SAYIIR_LOG_LEVEL="INFO")
    server = start(_serve("--backend", "memory://"), env)
    address, backend = server.wait_for_listening()
    assert address.startswith("127.0.0.1:")
    assert not address.endswith(":50051")  # the environment's port 0, not the default port
    assert backend == "memory://"  # the flag, not the environment's bogus URL


def _fails_with_one_line(command: Sequence[str], env: Mapping[str, str]) -> str:
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert finished.returncode == 2
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith("sayiir-server: error: ")
    return lines[0]


def test_a_bad_backend_url_exits_2_with_one_error_line() -> None:
    line = _fails_with_one_line(_serve("--listen", "127.0.0.1:0", "--backend", "bogus://nowhere"), _env())
    assert "bogus://nowhere" in line


def test_a_bad_environment_value_exits_2_naming_the_variable() -> None:
    line = _fails_with_one_line(_serve("--backend", "memory://"), _env(SAYIIR_GRACE_PERIOD="soon"))
    assert "SAYIIR_GRACE_PERIOD" in line
