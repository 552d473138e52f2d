"""A backend with only the required primitives gets every composite from the Protocol defaults.

This mirrors the Rust crate's promise that a minimal backend needs only a
handful of methods: here the SnapshotStore, SignalStore and TaskClaimStore
primitives plus TaskResultStore, kept deliberately naive (plain dicts, no
atomicity, no advancement of delays or signals).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta

import pytest

from sayiir_client.errors import (
    AlreadyExistsError,
    CannotPauseError,
    ClaimLostError,
    DefinitionMismatchError,
    InvalidInstanceIdError,
    NotFoundError,
)
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_server import dispatch
from sayiir_server.lifecycle import prepare_run
from sayiir_server.model import (
    CANCEL,
    PAUSE,
    SignalKind,
    clamp_aging_interval,
    current_task_id,
    state_of,
    timestamp,
    to_datetime,
    utc_now,
)
from sayiir_server.signals import SignalAdmission, admit_signal
from sayiir_server.snapshots import lookup_task_result, record_task_result
from sayiir_server.store import TaskClaimStore, TaskResultStore

DEFINITION = hashlib.sha256(b"definition").digest()
OTHER_DEFINITION = hashlib.sha256(b"another definition").digest()
FIRST_TASK = hashlib.sha256(b"first").digest()
SECOND_TASK = hashlib.sha256(b"second").digest()


class MinimalBackend(TaskClaimStore, TaskResultStore):
    """Only the primitives; every composite comes from the Protocol defaults."""

    def __init__(self) -> None:
        self.snapshots: dict[str, pb.WorkflowSnapshot] = {}
        self.signals: dict[tuple[str, SignalKind], pb.SignalRequest] = {}
        self.events: dict[tuple[str, str], list[bytes]] = {}
        self.claims: dict[tuple[str, bytes], pb.TaskClaim] = {}

    def _stored(self, instance_id: str) -> pb.WorkflowSnapshot:
        if instance_id not in self.snapshots:
            raise NotFoundError(instance_id)
        return self.snapshots[instance_id]

    async def save_snapshot(self, snapshot: pb.WorkflowSnapshot) -> None:
        self.snapshots[snapshot.instance_id] = pb.WorkflowSnapshot.FromString(snapshot.SerializeToString())

    async def save_task_result(self, instance_id: str, task_id: bytes, output: bytes) -> None:
        record_task_result(self._stored(instance_id), task_id, output, utc_now())

    async def load_snapshot(self, instance_id: str) -> pb.WorkflowSnapshot:
        return pb.WorkflowSnapshot.FromString(self._stored(instance_id).SerializeToString())

    async def delete_snapshot(self, instance_id: str) -> None:
        self._stored(instance_id)
        del self.snapshots[instance_id]

    async def list_snapshots(self) -> list[str]:
        return list(self.snapshots)

    async def store_signal(self, instance_id: str, kind: SignalKind, request: pb.SignalRequest) -> None:
        if admit_signal(self._stored(instance_id), kind) is SignalAdmission.STORE:
            self.signals[(instance_id, kind)] = request

    async def get_signal(self, instance_id: str, kind: SignalKind) -> pb.SignalRequest | None:
        return self.signals.get((instance_id, kind))

    async def clear_signal(self, instance_id: str, kind: SignalKind) -> None:
        self.signals.pop((instance_id, kind), None)

    async def send_event(self, instance_id: str, signal_name: str, payload: bytes) -> None:
        self.events.setdefault((instance_id, signal_name), []).append(payload)

    async def consume_event(self, instance_id: str, signal_name: str) -> bytes | None:
        queue = self.events.get((instance_id, signal_name))
        return queue.pop(0) if queue else None

    async def claim_task(
        self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta | None
    ) -> pb.TaskClaim | None:
        now = utc_now()
        if self._live_claim(instance_id, task_id) is not None:
            return None
        claim = pb.TaskClaim(instance_id=instance_id, task_id=task_id, worker_id=worker_id, claimed_at=timestamp(now))
        if ttl is not None:
            claim.expires_at.CopyFrom(timestamp(now + ttl))
        self.claims[(instance_id, task_id)] = claim
        return claim

    def _live_claim(self, instance_id: str, task_id: bytes) -> pb.TaskClaim | None:
        claim = self.claims.get((instance_id, task_id))
        if claim is None or (claim.HasField("expires_at") and utc_now() >= to_datetime(claim.expires_at)):
            return None
        return claim

    def _held_claim(self, instance_id: str, task_id: bytes, worker_id: str) -> pb.TaskClaim:
        claim = self.claims.get((instance_id, task_id))
        if claim is None:
            raise NotFoundError(instance_id)
        if claim.worker_id != worker_id:
            raise ClaimLostError(claim.worker_id)
        return claim

    async def release_task_claim(self, instance_id: str, task_id: bytes, worker_id: str) -> None:
        self._held_claim(instance_id, task_id, worker_id)
        del self.claims[(instance_id, task_id)]

    async def extend_task_claim(self, instance_id: str, task_id: bytes, worker_id: str, ttl: timedelta) -> None:
        claim = self._held_claim(instance_id, task_id, worker_id)
        if claim.HasField("expires_at"):
            claim.expires_at.CopyFrom(timestamp(utc_now() + ttl))

    async def find_available_tasks(
        self, worker_id: str, limit: int, aging_interval: timedelta, worker_tags: Sequence[str]
    ) -> list[pb.AvailableTask]:
        now = utc_now()
        tasks = []
        for snapshot in self.snapshots.values():
            if (snapshot.instance_id, CANCEL) in self.signals or (snapshot.instance_id, PAUSE) in self.signals:
                continue
            if self._live_claim(snapshot.instance_id, current_task_id(snapshot) or b"") is not None:
                continue
            task = dispatch.available_task(snapshot, worker_tags, now)
            if task is not None:
                tasks.append(task)
        return dispatch.order_and_limit(tasks, worker_id, clamp_aging_interval(aging_interval), now, limit)

    async def load_task_result(self, instance_id: str, task_id: bytes) -> bytes | None:
        return lookup_task_result(self._stored(instance_id), (), task_id)


def running(instance_id: str, task_id: bytes = FIRST_TASK, tags: Sequence[str] = ()) -> pb.WorkflowSnapshot:
    now = timestamp(utc_now())
    return pb.WorkflowSnapshot(
        instance_id=instance_id,
        definition_hash=DEFINITION,
        in_progress=pb.InProgressState(position=pb.ExecutionPosition(at_task=pb.AtTask(task_id=task_id))),
        created_at=now,
        updated_at=now,
        initial_input=b"input",
        task_tags=tags,
    )


def completed(instance_id: str, output: bytes = b"done") -> pb.WorkflowSnapshot:
    snapshot = running(instance_id)
    snapshot.completed.CopyFrom(pb.CompletedState(final_output=output))
    return snapshot


@pytest.fixture
def backend() -> MinimalBackend:
    return MinimalBackend()


async def test_minimal_backend_needs_no_composite_of_its_own(backend: MinimalBackend) -> None:
    assert isinstance(backend, TaskClaimStore)
    assert isinstance(backend, TaskResultStore)
    for composite in ("check_and_cancel", "check_and_pause", "check_control_signals", "unpause"):
        assert composite not in MinimalBackend.__dict__


async def test_check_and_cancel_applies_a_pending_cancel(backend: MinimalBackend) -> None:
    await backend.save_snapshot(running("a"))
    await backend.store_signal("a", CANCEL, pb.SignalRequest(reason="stop", requested_by="ops"))

    assert await backend.check_and_cancel("a", FIRST_TASK)

    snapshot = await backend.load_snapshot("a")
    assert state_of(snapshot) == "cancelled"
    assert snapshot.cancelled.reason == "stop"
    assert snapshot.cancelled.cancelled_by == "ops"
    assert snapshot.cancelled.interrupted_at_task == FIRST_TASK
    assert await backend.get_signal("a", CANCEL) is None


async def test_check_and_cancel_is_false_without_a_pending_cancel(backend: MinimalBackend) -> None:
    await backend.save_snapshot(running("a"))

    assert not await backend.check_and_cancel("a")
    assert state_of(await backend.load_snapshot("a")) == "in_progress"


async def test_check_and_cancel_leaves_the_request_pending_when_not_in_progress(backend: MinimalBackend) -> None:
    await backend.save_snapshot(running("a"))
    await backend.store_signal("a", CANCEL, pb.SignalRequest(reason="stop"))
    await backend.save_snapshot(completed("a"))

    assert not await backend.check_and_cancel("a")
    assert await backend.get_signal("a", CANCEL) is not None


async def test_check_and_pause_keeps_the_position(backend: MinimalBackend) -> None:
    await backend.save_snapshot(running("a"))
    await backend.store_signal("a", PAUSE, pb.SignalRequest(reason="hold"))

    assert await backend.check_and_pause("a")

    snapshot = await backend.load_snapshot("a")
    assert state_of(snapshot) == "paused"
    assert snapshot.paused.reason == "hold"
    assert snapshot.paused.position.at_task.task_id == FIRST_TASK
    assert await backend.get_signal("a", PAUSE) is None


async def test_check_and_pause_is_false_without_a_pending_pause(backend: MinimalBackend) -> None:
    await backend.save_snapshot(running("a"))

    assert not await backend.check_and_pause("a")


async def test_check_control_signals_applies_cancel_before_pause(backend: MinimalBackend) -> None:
    await backend.save_snapshot(running("a"))
    await backend.store_signal("a", PAUSE, pb.SignalRequest())
    await backend.store_signal("a", CANCEL, pb.SignalRequest())

    assert await backend.check_control_signals("a") == enums.CONTROL_SIGNAL_CANCELLED
    assert state_of(await backend.load_snapshot("a")) == "cancelled"


async def test_check_control_signals_reports_a_pause(backend: MinimalBackend) -> None:
    await backend.save_snapshot(running("a"))
    await backend.store_signal("a", PAUSE, pb.SignalRequest())

    assert await backend.check_control_signals("a") == enums.CONTROL_SIGNAL_PAUSED


async def test_check_control_signals_is_none_without_requests(backend: MinimalBackend) -> None:
    await backend.save_snapshot(running("a"))

    assert await backend.check_control_signals("a") is None


async def test_unpause_resumes_at_the_saved_position(backend: MinimalBackend) -> None:
    await backend.save_snapshot(running("a", SECOND_TASK))
    await backend.store_signal("a", PAUSE, pb.SignalRequest())
    await backend.check_and_pause("a")

    resumed = await backend.unpause("a")

    assert state_of(resumed) == "in_progress"
    assert resumed.in_progress.position.at_task.task_id == SECOND_TASK
    assert await backend.load_snapshot("a") == resumed


async def test_unpause_refuses_an_instance_that_is_not_paused(backend: MinimalBackend) -> None:
    await backend.save_snapshot(running("a"))

    with pytest.raises(CannotPauseError):
        await backend.unpause("a")


async def test_unpause_of_a_missing_instance_is_not_found(backend: MinimalBackend) -> None:
    with pytest.raises(NotFoundError):
        await backend.unpause("missing")


async def test_insert_snapshot_if_absent_keeps_the_first_snapshot(backend: MinimalBackend) -> None:
    assert await backend.insert_snapshot_if_absent(running("a", FIRST_TASK))
    assert not await backend.insert_snapshot_if_absent(running("a", SECOND_TASK))

    assert current_task_id(await backend.load_snapshot("a")) == FIRST_TASK


async def test_find_hinted_task_resolves_a_ready_task(backend: MinimalBackend) -> None:
    snapshot = running("a", tags=["gpu"])
    await backend.save_snapshot(snapshot)

    task = await backend.find_hinted_task(dispatch.wakeup_hint(snapshot))

    assert task is not None
    assert (task.instance_id, task.task_id, task.input) == ("a", FIRST_TASK, b"input")


async def test_find_hinted_task_is_none_once_the_task_is_claimed(backend: MinimalBackend) -> None:
    snapshot = running("a")
    await backend.save_snapshot(snapshot)
    await backend.claim_task("a", FIRST_TASK, "worker-1", None)

    assert await backend.find_hinted_task(dispatch.wakeup_hint(snapshot)) is None


async def test_find_hinted_task_is_none_once_the_instance_moved_on(backend: MinimalBackend) -> None:
    hint = dispatch.wakeup_hint(running("a", FIRST_TASK))
    await backend.save_snapshot(running("a", SECOND_TASK))

    assert await backend.find_hinted_task(hint) is None


async def test_list_snapshots_page_walks_ids_in_byte_order(backend: MinimalBackend) -> None:
    for instance_id in ("c", "é", "a", "b", "Z"):
        await backend.save_snapshot(running(instance_id))

    assert await backend.list_snapshots_page(None, 2) == ["Z", "a"]
    assert await backend.list_snapshots_page("a", 2) == ["b", "c"]
    assert await backend.list_snapshots_page("c", 2) == ["é"]
    assert await backend.list_snapshots_page("é", 2) == []


async def test_prepare_run_starts_a_fresh_run(backend: MinimalBackend) -> None:
    first = pb.FirstTask(task_id=FIRST_TASK, priority=1, tags=["gpu"])

    outcome = await prepare_run(backend, "a", DEFINITION, b"input", first)

    assert outcome.WhichOneof("outcome") == "fresh"
    stored = await backend.load_snapshot("a")
    assert stored == outcome.fresh.snapshot
    assert current_task_id(stored) == FIRST_TASK
    assert stored.initial_input == b"input"
    assert stored.task_priority == 1
    assert list(stored.task_tags) == ["gpu"]


async def test_prepare_run_refuses_an_existing_run_by_default(backend: MinimalBackend) -> None:
    await backend.save_snapshot(running("a"))

    with pytest.raises(AlreadyExistsError) as raised:
        await prepare_run(backend, "a", DEFINITION, b"input", pb.FirstTask(task_id=FIRST_TASK))
    assert raised.value.instance_id == "a"


async def test_prepare_run_use_existing_reports_its_status(backend: MinimalBackend) -> None:
    await backend.save_snapshot(completed("a", b"result"))

    outcome = await prepare_run(
        backend, "a", DEFINITION, b"input", pb.FirstTask(task_id=FIRST_TASK), enums.CONFLICT_POLICY_USE_EXISTING
    )

    assert outcome.existing_status.status.WhichOneof("status") == "completed"
    assert outcome.existing_status.final_output == b"result"


async def test_prepare_run_terminate_existing_starts_over_without_signals(backend: MinimalBackend) -> None:
    await backend.save_snapshot(running("a", SECOND_TASK))
    await backend.store_signal("a", CANCEL, pb.SignalRequest())
    await backend.store_signal("a", PAUSE, pb.SignalRequest())

    outcome = await prepare_run(
        backend, "a", DEFINITION, b"again", pb.FirstTask(task_id=FIRST_TASK), enums.CONFLICT_POLICY_TERMINATE_EXISTING
    )

    assert outcome.WhichOneof("outcome") == "fresh"
    assert current_task_id(await backend.load_snapshot("a")) == FIRST_TASK
    assert await backend.get_signal("a", CANCEL) is None
    assert await backend.get_signal("a", PAUSE) is None


@pytest.mark.parametrize(
    "policy",
    [enums.CONFLICT_POLICY_FAIL, enums.CONFLICT_POLICY_USE_EXISTING, enums.CONFLICT_POLICY_TERMINATE_EXISTING],
)
async def test_prepare_run_refuses_another_definition_whatever_the_policy(
    backend: MinimalBackend, policy: enums.ConflictPolicy.ValueType
) -> None:
    await backend.save_snapshot(running("a"))

    with pytest.raises(DefinitionMismatchError) as raised:
        await prepare_run(backend, "a", OTHER_DEFINITION, b"input", pb.FirstTask(task_id=FIRST_TASK), policy)
    assert (raised.value.expected, raised.value.found) == (OTHER_DEFINITION, DEFINITION)
    assert (await backend.load_snapshot("a")).definition_hash == DEFINITION


@pytest.mark.parametrize(("instance_id", "length"), [("", 0), ("x" * 257, 257), ("é" * 129, 258)])
async def test_prepare_run_refuses_an_invalid_instance_id(
    backend: MinimalBackend, instance_id: str, length: int
) -> None:
    with pytest.raises(InvalidInstanceIdError) as raised:
        await prepare_run(backend, instance_id, DEFINITION, b"input", pb.FirstTask(task_id=FIRST_TASK))
    assert (raised.value.length, raised.value.max_length) == (length, 256)
    assert await backend.list_snapshots() == []
