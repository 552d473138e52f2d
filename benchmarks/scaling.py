"""FindAvailableTasks(limit=10) latency as the instance population grows, and server memory per instance."""

from __future__ import annotations

import time

import grpc

from benchmarks.measure import Measurement
from benchmarks.server_process import ServerProcess
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc as rpc

FIND_LIMIT = 10
_WARMUP_CALLS = 1


async def find_latency(channel: grpc.aio.Channel, calls: int, budget_seconds: float) -> Measurement:
    """Sequential FindAvailableTasks(limit=10) calls from one client, up to `calls` or the time budget."""
    claims = rpc.TaskClaimStoreStub(channel)
    request = rr.FindAvailableTasksRequest(worker_id="scaling-probe", limit=FIND_LIMIT)
    for _ in range(_WARMUP_CALLS):
        await claims.FindAvailableTasks(request)
    latencies: list[float] = []
    deadline = time.perf_counter() + budget_seconds
    while len(latencies) < calls and (len(latencies) < 3 or time.perf_counter() < deadline):
        started = time.perf_counter()
        response = await claims.FindAvailableTasks(request)
        latencies.append(time.perf_counter() - started)
        if len(response.tasks) != FIND_LIMIT:
            raise RuntimeError(f"FindAvailableTasks returned {len(response.tasks)} tasks, expected {FIND_LIMIT}")
    return Measurement(tuple(latencies), sum(latencies))


class Population:
    """Grows the server's population in steps, seeding through its own backend object."""

    def __init__(self, server: ServerProcess) -> None:
        self._server = server
        self.in_progress = 0
        self.completed = 0

    async def grow(self, kind: str, total: int) -> str:
        """Seed `kind` instances until there are `total` of them; says how long it took and how."""
        current = self.in_progress if kind == "in_progress" else self.completed
        if total <= current:
            return "nothing to seed"
        reply = await self._server.command("seed", kind=kind, start=current, count=total - current)
        if kind == "in_progress":
            self.in_progress = total
        else:
            self.completed = total
        await self._server.command("gc")
        return f"seeded {total - current:,} in {reply['seconds']:.1f} s ({reply['method']})"
