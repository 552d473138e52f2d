"""Durability: every acknowledged write survives a SIGKILL of the server process (README, SQLite section)."""

from __future__ import annotations

import asyncio
import os
import random
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server.domain.model import timestamp, utc_now
from tests.sqlite.serving import RunningServer, load, save, serving, snapshot_stub, start_server

SNAPSHOTS = 1000


def numbered_snapshot(number: int, rng: random.Random) -> pb.WorkflowSnapshot:
    """A distinct snapshot with a random-sized random payload, so a torn or stale write cannot pass as equal."""
    now = utc_now()
    return pb.WorkflowSnapshot(
        instance_id=f"crash-{number:04d}",
        definition_hash=rng.randbytes(32),
        in_progress=pb.InProgressState(
            position=pb.ExecutionPosition(at_task=pb.AtTask(task_id=rng.randbytes(32))),
            completed_tasks=[pb.TaskResult(task_id=rng.randbytes(32), output=rng.randbytes(rng.randrange(1, 4096)))],
        ),
        created_at=timestamp(now - timedelta(seconds=number)),
        updated_at=timestamp(now),
        initial_input=rng.randbytes(rng.randrange(0, 512)),
        task_priority=rng.randrange(1, 6),
        task_tags=[f"tag-{rng.randrange(10)}"],
    )


async def save_until_killed(server: RunningServer, rng: random.Random) -> dict[str, pb.WorkflowSnapshot]:
    """Save snapshots one after another while a killer SIGKILLs the server after a random number of them."""
    acknowledged: dict[str, pb.WorkflowSnapshot] = {}
    interrupted: grpc.StatusCode | None = None
    kill_after = rng.randrange(1, SNAPSHOTS)
    kill_delay_s = rng.uniform(0, 0.005)
    armed = asyncio.Event()

    async def killer() -> None:
        await armed.wait()
        await asyncio.sleep(kill_delay_s)  # land anywhere: between calls, or inside the next one
        server.kill()

    kill = asyncio.create_task(killer())
    async with snapshot_stub(server.address) as stub:
        for number in range(SNAPSHOTS):
            snapshot = numbered_snapshot(number, rng)
            try:
                await save(stub, snapshot)
            except grpc.aio.AioRpcError as error:
                interrupted = error.code()
                break
            acknowledged[snapshot.instance_id] = snapshot
            if len(acknowledged) == kill_after:
                armed.set()
    await kill
    await server.process.wait()
    assert interrupted in (None, grpc.StatusCode.UNAVAILABLE), interrupted
    return acknowledged


@pytest.mark.slow
async def test_every_acknowledged_snapshot_survives_a_sigkill_of_the_server(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    url = f"sqlite:///{tmp_path}/crash.db"

    server = await start_server("--backend", url, cwd=tmp_path)
    acknowledged = await save_until_killed(server, rng)

    assert server.process.returncode == -9, f"seed {seed}: the server was not killed"
    assert 0 < len(acknowledged) < SNAPSHOTS, f"seed {seed}: the kill did not land mid-run"
    print(f"seed {seed}: {len(acknowledged)} snapshots acknowledged before the kill")
    async with serving("--backend", url, cwd=tmp_path) as restarted, snapshot_stub(restarted.address) as stub:
        for instance_id, saved in acknowledged.items():
            loaded = await load(stub, instance_id)
            assert loaded.SerializeToString(deterministic=True) == saved.SerializeToString(deterministic=True), (
                f"seed {seed}: {instance_id} differs after the restart"
            )
