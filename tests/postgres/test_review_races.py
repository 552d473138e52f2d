"""The scenarios of tests/sqlite/test_review_races.py, run on PostgreSQL replicas sharing one schema, and the
advance batch's fairness (only PostgreSQL advances due instances a bounded batch at a time)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import pytest

from sayiir_server.backends.postgres import PostgresBackend
from sayiir_server.backends.postgres import backend as postgres_backend
from sayiir_server.model import PAUSE, utc_now
from sayiir_server.store import Backend
from tests.contract.builders import at_delay, seconds_ago, signal_request
from tests.postgres.conftest import OpenReplica
from tests.sqlite.test_review_races import (
    OpenShared,
    test_a_cancel_accepted_while_a_due_delay_would_complete_the_run_cancels_it,
    test_a_cancel_accepted_while_a_fed_signal_would_complete_the_run_cancels_it,
    test_a_task_result_racing_the_completed_save_never_drops_the_retained_results,
    test_an_expired_holders_fenced_save_never_lands_after_its_successors_claim,
    test_unpause_racing_dispatch_consumes_the_awaited_event_exactly_once,
)

pytestmark = pytest.mark.postgres

__all__ = [
    "test_a_cancel_accepted_while_a_due_delay_would_complete_the_run_cancels_it",
    "test_a_cancel_accepted_while_a_fed_signal_would_complete_the_run_cancels_it",
    "test_a_task_result_racing_the_completed_save_never_drops_the_retained_results",
    "test_an_expired_holders_fenced_save_never_lands_after_its_successors_claim",
    "test_unpause_racing_dispatch_consumes_the_awaited_event_exactly_once",
]


@pytest.fixture
async def open_shared(postgres_url: str) -> AsyncIterator[OpenShared]:
    opened: list[Backend] = []

    async def open_shared(clock: Callable[[], datetime] = utc_now) -> Backend:
        backend = await PostgresBackend.open(postgres_url, clock)
        opened.append(backend)
        return backend

    yield open_shared
    for backend in opened:
        await backend.close()


async def test_due_instances_held_by_pending_requests_never_starve_the_others_of_their_advance(
    postgres_url: str, open_replica: OpenReplica, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's worth of due delays nobody may advance (a pause is pending on each) must not fill the batch."""
    monkeypatch.setattr(postgres_backend, "ADVANCE_BATCH", 4)
    replica = await open_replica(postgres_url)
    for n in range(40):
        await replica.save_snapshot(at_delay(f"held-{n}", wake_at=seconds_ago(1), next_task="ship"))
        await replica.store_signal(f"held-{n}", PAUSE, signal_request())
    await replica.save_snapshot(at_delay("free", wake_at=seconds_ago(1), next_task="ship"))

    tasks = await replica.find_available_tasks("worker-a", 10, timedelta(seconds=60), [])

    assert [task.instance_id for task in tasks] == ["free"]
    assert (await replica.load_snapshot("held-0")).in_progress.position.HasField("at_delay")
