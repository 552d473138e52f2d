"""A real `sayiir-server serve` in a child process, for tests that kill it or read its exit."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc as services

SERVER_COMMAND = (str(Path(sys.executable).with_name("sayiir-server")), "serve")
START_TIMEOUT_S = 30.0
_LISTENING = re.compile(rb"listening on (\S+):(\d+)")


@dataclass
class RunningServer:
    process: asyncio.subprocess.Process
    address: str

    def kill(self) -> None:
        """SIGKILL: no drain, no close, no checkpoint."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


async def start_server(*arguments: str, cwd: Path) -> RunningServer:
    """Start the server on a free loopback port and wait for its "listening on" log line (logged at info)."""
    process = await asyncio.create_subprocess_exec(
        *SERVER_COMMAND,
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "info",  # the "listening on" line tells the port
        *arguments,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        address = await asyncio.wait_for(_listening_address(process), START_TIMEOUT_S)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return RunningServer(process, address)


async def _listening_address(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    seen = b""
    while True:
        line = await process.stderr.readline()
        if not line:
            raise RuntimeError(f"server exited before listening:\n{seen.decode(errors='replace')}")
        seen += line
        match = _LISTENING.search(line)
        if match is not None:
            # Keep draining stderr so the child never blocks on a full pipe.
            asyncio.get_running_loop().create_task(_drain(process.stderr))
            return f"{match.group(1).decode()}:{match.group(2).decode()}"


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


@contextlib.asynccontextmanager
async def serving(*arguments: str, cwd: Path) -> AsyncIterator[RunningServer]:
    """A server for the duration of the block, stopped with SIGTERM (a graceful drain) afterwards."""
    server = await start_server(*arguments, cwd=cwd)
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            server.process.terminate()
        await server.process.wait()


@contextlib.asynccontextmanager
async def snapshot_stub(address: str) -> AsyncIterator[services.SnapshotStoreAsyncStub]:
    async with grpc.aio.insecure_channel(address) as channel:
        yield services.SnapshotStoreStub(channel)


async def save(stub: services.SnapshotStoreAsyncStub, snapshot: pb.WorkflowSnapshot) -> None:
    await stub.SaveSnapshot(rr.SaveSnapshotRequest(snapshot=snapshot), timeout=10)


async def load(stub: services.SnapshotStoreAsyncStub, instance_id: str) -> pb.WorkflowSnapshot:
    response = await stub.LoadSnapshot(rr.LoadSnapshotRequest(instance_id=instance_id), timeout=10)
    return response.snapshot
