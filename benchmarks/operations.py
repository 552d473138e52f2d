"""The benchmarked operations, each one unit of client work over the generated async stubs.

Every operation knows the exchanges (request and response sizes of each RPC) it puts on the wire,
so the echo service can replay exactly the same bytes as its transport ceiling.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message

from benchmarks.echo import Exchange
from benchmarks.workload import (
    DEFINITION_HASH,
    SMALL_INPUT,
    TASK_A,
    UNROUTED_TAG,
    advanced_snapshot,
    ready_snapshot,
    sized_snapshot,
)
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_client.v1 import service_pb2_grpc as rpc
from sayiir_server.domain.model import timestamp, utc_now

CLAIM_TTL = Duration(seconds=30)
TASK_OUTPUT = b"o" * 100


class UnexpectedAnswerError(RuntimeError):
    """The server answered in a way the benchmark's own setup rules out (a lost claim, no task)."""


class Stubs:
    """The generated async stubs of the services the benchmarks call, over one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.snapshots = rpc.SnapshotStoreStub(channel)
        self.claims = rpc.TaskClaimStoreStub(channel)
        self.lifecycle = rpc.LifecycleStub(channel)


class Operation(Protocol):
    """One row of the throughput table."""

    name: str

    def exchanges(self) -> list[Exchange]:
        """The RPCs of one operation as (request, response) sizes, for the echo replay."""
        ...

    async def setup(self, stubs: Stubs, clients: int) -> None:
        """Create what the operation needs (through the server) before it is measured."""
        ...

    async def run_once(self, client: int, iteration: int) -> None:
        """One operation by client number `client`."""
        ...


def _exchange(request: Message, response: Message) -> Exchange:
    return Exchange(request.ByteSize(), response.ByteSize())


def _claim_sample(instance_id: str, worker_id: str) -> pb.TaskClaim:
    now = utc_now()
    return pb.TaskClaim(
        instance_id=instance_id,
        task_id=TASK_A,
        worker_id=worker_id,
        claimed_at=timestamp(now),
        expires_at=timestamp(now + timedelta(seconds=30)),
    )


class SaveSnapshot:
    """SaveSnapshot of a snapshot of `size` serialized bytes; each client overwrites its own instance."""

    def __init__(self, size: int, label: str) -> None:
        self.name = f"SaveSnapshot {label}"
        self._size = size
        self._requests: list[rr.SaveSnapshotRequest] = []
        self._stubs: Stubs | None = None

    def _request(self, client: int) -> rr.SaveSnapshotRequest:
        return rr.SaveSnapshotRequest(snapshot=sized_snapshot(f"save-{self._size}-{client:03d}", self._size))

    def exchanges(self) -> list[Exchange]:
        return [_exchange(self._request(0), rr.SaveSnapshotResponse())]

    async def setup(self, stubs: Stubs, clients: int) -> None:
        self._stubs = stubs
        self._requests = [self._request(client) for client in range(clients)]

    async def run_once(self, client: int, iteration: int) -> None:
        assert self._stubs is not None
        await self._stubs.snapshots.SaveSnapshot(self._requests[client])


class LoadSnapshot:
    """LoadSnapshot of a stored snapshot of `size` serialized bytes; each client reads its own instance."""

    def __init__(self, size: int, label: str) -> None:
        self.name = f"LoadSnapshot {label}"
        self._size = size
        self._requests: list[rr.LoadSnapshotRequest] = []
        self._stubs: Stubs | None = None

    def _instance_id(self, client: int) -> str:
        return f"load-{self._size}-{client:03d}"

    def exchanges(self) -> list[Exchange]:
        instance_id = self._instance_id(0)
        response = rr.LoadSnapshotResponse(snapshot=sized_snapshot(instance_id, self._size))
        return [_exchange(rr.LoadSnapshotRequest(instance_id=instance_id), response)]

    async def setup(self, stubs: Stubs, clients: int) -> None:
        self._stubs = stubs
        for client in range(clients):
            snapshot = sized_snapshot(self._instance_id(client), self._size)
            await stubs.snapshots.SaveSnapshot(rr.SaveSnapshotRequest(snapshot=snapshot))
        self._requests = [rr.LoadSnapshotRequest(instance_id=self._instance_id(c)) for c in range(clients)]

    async def run_once(self, client: int, iteration: int) -> None:
        assert self._stubs is not None
        response = await self._stubs.snapshots.LoadSnapshot(self._requests[client])
        if response.snapshot.ByteSize() != self._size:
            raise UnexpectedAnswerError(f"loaded {response.snapshot.ByteSize()} bytes, saved {self._size}")


class ClaimRelease:
    """ClaimTask then ReleaseTaskClaim (two RPCs, one operation); each client leases its own instance."""

    name = "ClaimTask + ReleaseTaskClaim"

    def __init__(self) -> None:
        self._claims: list[rr.ClaimTaskRequest] = []
        self._releases: list[rr.ReleaseTaskClaimRequest] = []
        self._stubs: Stubs | None = None

    @staticmethod
    def _requests(client: int) -> tuple[rr.ClaimTaskRequest, rr.ReleaseTaskClaimRequest]:
        instance_id, worker_id = f"claim-{client:03d}", f"worker-{client:03d}"
        return (
            rr.ClaimTaskRequest(instance_id=instance_id, task_id=TASK_A, worker_id=worker_id, ttl=CLAIM_TTL),
            rr.ReleaseTaskClaimRequest(instance_id=instance_id, task_id=TASK_A, worker_id=worker_id),
        )

    def exchanges(self) -> list[Exchange]:
        claim, release = self._requests(0)
        granted = rr.ClaimTaskResponse(claim=_claim_sample(claim.instance_id, claim.worker_id))
        return [_exchange(claim, granted), _exchange(release, rr.ReleaseTaskClaimResponse())]

    async def setup(self, stubs: Stubs, clients: int) -> None:
        self._stubs = stubs
        for client in range(clients):
            snapshot = ready_snapshot(f"claim-{client:03d}", tags=(UNROUTED_TAG,))
            await stubs.snapshots.SaveSnapshot(rr.SaveSnapshotRequest(snapshot=snapshot))
        pairs = [self._requests(client) for client in range(clients)]
        self._claims = [claim for claim, _ in pairs]
        self._releases = [release for _, release in pairs]

    async def run_once(self, client: int, iteration: int) -> None:
        assert self._stubs is not None
        granted = await self._stubs.claims.ClaimTask(self._claims[client])
        if not granted.HasField("claim"):
            raise UnexpectedAnswerError(f"client {client} could not claim its own task")
        await self._stubs.claims.ReleaseTaskClaim(self._releases[client])


class WorkerCycle:
    """FindAvailableTasks(limit=1) → ClaimTask → SaveSnapshotFenced → ReleaseTaskClaim, as a worker loops.

    Each client is one worker with its own routing tag ("lane-N") and `per_client` ready instances
    carrying that tag, so workers never race for a task: the row measures the cycle, not contention.
    The fenced save records the task's result and moves the instance to its other task, so the
    population stays ready forever at a constant snapshot size.
    """

    name = "worker cycle (4 RPCs)"

    def __init__(self, per_client: int) -> None:
        self._per_client = per_client
        self._stubs: Stubs | None = None

    @staticmethod
    def _lane(client: int) -> str:
        return f"lane-{client:03d}"

    @staticmethod
    def _worker(client: int) -> str:
        return f"worker-{client:03d}"

    def _find_request(self, client: int) -> rr.FindAvailableTasksRequest:
        return rr.FindAvailableTasksRequest(worker_id=self._worker(client), limit=1, worker_tags=[self._lane(client)])

    def exchanges(self) -> list[Exchange]:
        worker = self._worker(0)
        steady = advanced_snapshot(ready_snapshot("cycle-000-000000", tags=(self._lane(0),)), TASK_OUTPUT)
        task_id = steady.in_progress.position.at_task.task_id
        task = pb.AvailableTask(
            instance_id=steady.instance_id,
            task_id=task_id,
            input=TASK_OUTPUT,
            definition_hash=DEFINITION_HASH,
            snapshot=steady,
        )
        claim = rr.ClaimTaskRequest(instance_id=steady.instance_id, task_id=task_id, worker_id=worker, ttl=CLAIM_TTL)
        fenced = rr.SaveSnapshotFencedRequest(
            snapshot=advanced_snapshot(steady, TASK_OUTPUT), task_id=task_id, worker_id=worker
        )
        release = rr.ReleaseTaskClaimRequest(instance_id=steady.instance_id, task_id=task_id, worker_id=worker)
        return [
            _exchange(self._find_request(0), rr.FindAvailableTasksResponse(tasks=[task])),
            _exchange(claim, rr.ClaimTaskResponse(claim=_claim_sample(steady.instance_id, worker))),
            _exchange(fenced, rr.SaveSnapshotFencedResponse(saved=True)),
            _exchange(release, rr.ReleaseTaskClaimResponse()),
        ]

    async def setup(self, stubs: Stubs, clients: int) -> None:
        self._stubs = stubs
        for client in range(clients):
            for number in range(self._per_client):
                snapshot = ready_snapshot(f"cycle-{client:03d}-{number:06d}", tags=(self._lane(client),))
                await stubs.snapshots.SaveSnapshot(rr.SaveSnapshotRequest(snapshot=snapshot))

    async def run_once(self, client: int, iteration: int) -> None:
        assert self._stubs is not None
        claims, worker = self._stubs.claims, self._worker(client)
        found = await claims.FindAvailableTasks(self._find_request(client))
        if not found.tasks:
            raise UnexpectedAnswerError(f"worker {worker} found no task in its own lane")
        task = found.tasks[0]
        granted = await claims.ClaimTask(
            rr.ClaimTaskRequest(instance_id=task.instance_id, task_id=task.task_id, worker_id=worker, ttl=CLAIM_TTL)
        )
        if not granted.HasField("claim"):
            raise UnexpectedAnswerError(f"worker {worker} lost a task of its own lane")
        fenced = await claims.SaveSnapshotFenced(
            rr.SaveSnapshotFencedRequest(
                snapshot=advanced_snapshot(task.snapshot, TASK_OUTPUT), task_id=task.task_id, worker_id=worker
            )
        )
        if not fenced.saved:
            raise UnexpectedAnswerError(f"worker {worker}'s fenced save was refused under a live claim")
        await claims.ReleaseTaskClaim(
            rr.ReleaseTaskClaimRequest(instance_id=task.instance_id, task_id=task.task_id, worker_id=worker)
        )


class PrepareRun:
    """PrepareRun of a fresh instance (policy FAIL) each time: the cost of starting a workflow."""

    name = "PrepareRun"

    def __init__(self) -> None:
        self._run = secrets.token_hex(4)
        self._numbers = itertools.count()
        self._stubs: Stubs | None = None

    def _request(self, number: int) -> rr.PrepareRunRequest:
        return rr.PrepareRunRequest(
            instance_id=f"run-{self._run}-{number:09d}",
            definition_hash=DEFINITION_HASH,
            input=SMALL_INPUT,
            first_task=pb.FirstTask(task_id=TASK_A),
        )

    def exchanges(self) -> list[Exchange]:
        request = self._request(0)
        fresh = ready_snapshot(request.instance_id)
        return [
            _exchange(request, rr.PrepareRunResponse(outcome=pb.PrepareRunOutcome(fresh=pb.FreshRun(snapshot=fresh))))
        ]

    async def setup(self, stubs: Stubs, clients: int) -> None:
        self._stubs = stubs

    async def run_once(self, client: int, iteration: int) -> None:
        assert self._stubs is not None
        # Numbered across clients and rounds: every call starts a run that does not exist yet.
        response = await self._stubs.lifecycle.PrepareRun(self._request(next(self._numbers)))
        if not response.outcome.HasField("fresh"):
            raise UnexpectedAnswerError("PrepareRun of a new id did not start a fresh run")


def throughput_operations(cycle_population_per_client: int) -> Sequence[Operation]:
    """The rows of the throughput table, in the order they run (PrepareRun last: it grows the population)."""
    return (
        SaveSnapshot(2 * 1024, "2 KB"),
        LoadSnapshot(2 * 1024, "2 KB"),
        SaveSnapshot(64 * 1024, "64 KB"),
        LoadSnapshot(64 * 1024, "64 KB"),
        ClaimRelease(),
        WorkerCycle(cycle_population_per_client),
        PrepareRun(),
    )
