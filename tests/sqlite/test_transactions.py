"""Composites are single IMMEDIATE transactions, so they stay atomic across connections, not only threads.

Two backends opened on one file each own a connection and a database thread; racing
callers split between them must see the same outcomes as the contract's in-process races.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from sayiir_client.errors import AlreadyExistsError, RunConflictError
from sayiir_server.backends import open_backend
from sayiir_server.domain.engine import Engine
from sayiir_server.domain.model import CANCEL, PAUSE, state_of
from tests.contract.builders import DEFINITION_HASH, at_task, first_task, signal_request, task_id

RACERS = 32
FORK_BRANCHES = 16


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Engine, Engine]]:
    url = f"sqlite:///{tmp_path}/shared.db"
    first = await open_backend(url, timer=False)
    second = await open_backend(url, timer=False)
    yield first, second
    await first.close()
    await second.close()


async def test_claims_raced_over_two_connections_grant_exactly_one(
    pair: tuple[Engine, Engine],
) -> None:
    await pair[0].save_snapshot(at_task("order-1", "charge"))

    claims = await asyncio.gather(
        *(
            pair[n % 2].claim_task("order-1", task_id("charge"), f"worker-{n}", timedelta(minutes=5))
            for n in range(RACERS)
        )
    )

    assert len([claim for claim in claims if claim is not None]) == 1


async def test_check_and_cancel_raced_over_two_connections_applies_once(
    pair: tuple[Engine, Engine],
) -> None:
    await pair[0].save_snapshot(at_task("order-1"))
    await pair[0].claim_task("order-1", task_id("fetch"), "holder", None)  # held: the requests stay pending
    await pair[1].store_signal("order-1", CANCEL, signal_request())
    await pair[1].store_signal("order-1", PAUSE, signal_request())

    applied = await asyncio.gather(*(pair[n % 2].check_and_cancel("order-1") for n in range(RACERS)))

    assert applied.count(True) == 1
    assert state_of(await pair[0].load_snapshot("order-1")) == "cancelled"


async def test_fork_results_saved_over_two_connections_are_all_kept(
    pair: tuple[Engine, Engine],
) -> None:
    await pair[0].save_snapshot(at_task("order-1", "fork"))

    await asyncio.gather(
        *(
            pair[n % 2].save_task_result("order-1", task_id(f"branch-{n}"), f"output {n}".encode())
            for n in range(FORK_BRANCHES)
        )
    )

    for n in range(FORK_BRANCHES):
        assert await pair[n % 2].load_task_result("order-1", task_id(f"branch-{n}")) == f"output {n}".encode()


async def test_prepare_run_raced_over_two_connections_starts_one_run(
    pair: tuple[Engine, Engine],
) -> None:
    outcomes = await asyncio.gather(
        *(pair[n % 2].prepare_run("order-1", DEFINITION_HASH, b"input", first_task()) for n in range(RACERS)),
        return_exceptions=True,
    )

    fresh = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, RunConflictError)]
    assert len(fresh) == 1
    assert all(isinstance(error, AlreadyExistsError) for error in refused)
    assert len(refused) == RACERS - 1
