"""Request validation: each malformed field is one InvalidFieldError naming the field (docs/behaviour.md ID)."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr
from sayiir_server.api import validation
from sayiir_server.domain.errors import InvalidFieldError

ID = hashlib.sha256(b"task").digest()
SHORT_ID = ID[:31]
CAP = timedelta(seconds=60)


def _snapshot(**fields: Any) -> pb.WorkflowSnapshot:
    """A valid InProgress snapshot at a task, with `fields` set on top."""
    return pb.WorkflowSnapshot(
        instance_id="order-1",
        definition_hash=ID,
        in_progress=pb.InProgressState(position=pb.ExecutionPosition(at_task=pb.AtTask(task_id=ID))),
        **fields,
    )


def _rejects(field: str) -> pytest.RaisesExc[InvalidFieldError]:
    return pytest.raises(InvalidFieldError, match=f"^invalid {re.escape(field)}:")


# --- instance ids --------------------------------------------------------------------------------------------------


def test_instance_id_of_one_to_256_bytes_is_accepted() -> None:
    assert validation.instance_id("a") == "a"
    assert validation.instance_id("é" * 128) == "é" * 128  # 256 bytes of UTF-8


def test_empty_instance_id_is_rejected() -> None:
    with _rejects("instance_id"):
        validation.instance_id("")


def test_instance_id_longer_than_256_bytes_is_rejected_by_byte_length() -> None:
    with _rejects("snapshot.instance_id"):
        validation.instance_id("é" * 128 + "x", "snapshot.instance_id")


def test_the_error_carries_the_field_path_and_description() -> None:
    with pytest.raises(InvalidFieldError) as raised:
        validation.id_bytes(SHORT_ID, "first_task.task_id")
    assert raised.value.field == "first_task.task_id"
    assert raised.value.description == "must be 32 bytes, got 31"
    assert raised.value.reason == "INVALID_ARGUMENT"


# --- ids and scalars -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_ids_of_any_length_but_32_bytes_are_rejected(length: int) -> None:
    with _rejects("task_id"):
        validation.id_bytes(b"x" * length, "task_id")


def test_an_absent_optional_id_is_none_and_a_present_one_must_be_32_bytes() -> None:
    assert (
        validation.optional_id_bytes(rr.CheckAndCancelRequest(), "interrupted_at_task", "interrupted_at_task") is None
    )
    request = rr.CheckAndCancelRequest(interrupted_at_task=b"")
    with _rejects("interrupted_at_task"):
        validation.optional_id_bytes(request, "interrupted_at_task", "interrupted_at_task")


def test_empty_worker_id_and_signal_name_are_rejected() -> None:
    with _rejects("worker_id"):
        validation.worker_id("")
    with _rejects("signal_name"):
        validation.signal_name("")


def test_a_worker_id_of_256_bytes_is_accepted_and_one_byte_more_is_not() -> None:
    """ID-1.5: counted in bytes, as instance ids are."""
    assert validation.worker_id("é" * 128) == "é" * 128
    with _rejects("worker_id"):
        validation.worker_id("é" * 128 + "x")


def test_a_trace_parent_over_512_bytes_is_rejected() -> None:
    """ID-1.5: it travels in every dispatched task."""
    assert validation.snapshot(_snapshot(trace_parent="t" * 512)).trace_parent == "t" * 512
    with _rejects("snapshot.trace_parent"):
        validation.snapshot(_snapshot(trace_parent="t" * 513))


@pytest.mark.parametrize("kind", [enums.SIGNAL_KIND_UNSPECIFIED, 3, -1, 99])
def test_signal_kind_must_be_cancel_or_pause(kind: int) -> None:
    with _rejects("kind"):
        validation.signal_kind(kind)


def test_unspecified_conflict_policy_means_fail_and_unknown_numbers_are_rejected() -> None:
    assert validation.conflict_policy(enums.CONFLICT_POLICY_UNSPECIFIED) == enums.CONFLICT_POLICY_FAIL
    assert validation.conflict_policy(enums.CONFLICT_POLICY_USE_EXISTING) == enums.CONFLICT_POLICY_USE_EXISTING
    with _rejects("conflict_policy"):
        validation.conflict_policy(4)


@pytest.mark.parametrize("limit", [0, 1001])
def test_find_limit_outside_1_to_1000_is_rejected(limit: int) -> None:
    with _rejects("limit"):
        validation.find_limit(limit)


def test_page_size_zero_means_100_and_outside_0_to_1000_is_rejected() -> None:
    assert validation.page_size(0) == 100
    assert validation.page_size(1000) == 1000
    for bad in (-1, 1001):
        with _rejects("page_size"):
            validation.page_size(bad)


# --- well-known types ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        Timestamp(seconds=253_402_300_800),
        Timestamp(seconds=-62_135_596_801),
        Timestamp(seconds=0, nanos=-1),
        Timestamp(seconds=0, nanos=1_000_000_000),
    ],
)
def test_timestamps_outside_year_1_to_9999_or_with_bad_nanos_are_rejected(value: Timestamp) -> None:
    with _rejects("created_at"):
        validation.timestamp(value, "created_at")


@pytest.mark.parametrize(
    "value",
    [
        Duration(seconds=315_576_000_001),
        Duration(seconds=-315_576_000_001),
        Duration(seconds=1, nanos=-1),
        Duration(seconds=-1, nanos=1),
        Duration(nanos=1_000_000_000),
    ],
)
def test_durations_out_of_range_or_with_mixed_signs_are_rejected(value: Duration) -> None:
    with _rejects("aging_interval"):
        validation.duration(value, "aging_interval")


def test_negative_ttl_is_rejected_and_absent_ttl_means_no_expiry() -> None:
    assert validation.claim_ttl(rr.ClaimTaskRequest(), is_required=False) is None
    for negative in (Duration(seconds=-1), Duration(nanos=-1)):
        with _rejects("ttl"):
            validation.claim_ttl(rr.ClaimTaskRequest(ttl=negative), is_required=False)


def test_extend_requires_a_ttl_and_caps_its_length() -> None:
    with _rejects("ttl"):
        validation.claim_ttl(rr.ExtendTaskClaimRequest(), is_required=True)
    with _rejects("ttl"):
        validation.claim_ttl(rr.ExtendTaskClaimRequest(ttl=Duration(seconds=86_400 * 36_501)), is_required=True)
    assert validation.claim_ttl(rr.ExtendTaskClaimRequest(ttl=Duration(seconds=30)), is_required=True) == timedelta(
        seconds=30
    )


def test_wait_timeout_is_required_not_negative_and_clamped_to_the_cap() -> None:
    with _rejects("timeout"):
        validation.wait_timeout(rr.WaitForWakeupRequest(), CAP)
    with _rejects("timeout"):
        validation.wait_timeout(rr.WaitForWakeupRequest(timeout=Duration(seconds=-1)), CAP)
    assert validation.wait_timeout(rr.WaitForWakeupRequest(timeout=Duration(seconds=3600)), CAP) == CAP
    assert validation.wait_timeout(rr.WaitForWakeupRequest(timeout=Duration(seconds=2)), CAP) == timedelta(seconds=2)


def test_negative_or_absent_aging_interval_is_accepted_for_the_engine_to_clamp() -> None:
    request = rr.FindAvailableTasksRequest(aging_interval=Duration(seconds=-5))
    assert validation.aging_interval(request) == timedelta(seconds=-5)
    assert validation.aging_interval(rr.FindAvailableTasksRequest()) == timedelta(0)


# --- messages ------------------------------------------------------------------------------------------------------


def test_a_missing_required_message_is_rejected() -> None:
    with _rejects("first_task"):
        validation.required(rr.PrepareRunRequest(), "first_task", "first_task")


@pytest.mark.parametrize("value", [0, 6])
def test_first_task_priority_outside_1_to_5_is_rejected(value: int) -> None:
    with _rejects("first_task.priority"):
        validation.first_task(pb.FirstTask(task_id=ID, priority=value))


def test_a_hint_needs_an_instance_id_and_32_byte_ids() -> None:
    with _rejects("hint.instance_id"):
        validation.wakeup_hint(pb.TaskWakeupHint(task_id=ID, definition_hash=ID))
    with _rejects("hint.definition_hash"):
        validation.wakeup_hint(pb.TaskWakeupHint(instance_id="order-1", task_id=ID))


def test_a_well_formed_snapshot_is_accepted() -> None:
    snapshot = _snapshot(task_priority=5)
    assert validation.snapshot(snapshot) is snapshot


def test_a_snapshot_without_state_is_rejected() -> None:
    with _rejects("snapshot.state"):
        validation.snapshot(pb.WorkflowSnapshot(instance_id="order-1", definition_hash=ID))


def test_snapshot_priority_outside_1_to_5_is_rejected() -> None:
    with _rejects("snapshot.task_priority"):
        validation.snapshot(_snapshot(task_priority=0))


@pytest.mark.parametrize(
    ("state", "field"),
    [
        (
            {"in_progress": pb.InProgressState(position=pb.ExecutionPosition(at_task=pb.AtTask(task_id=SHORT_ID)))},
            "snapshot.in_progress.position.at_task.task_id",
        ),
        (
            {
                "in_progress": pb.InProgressState(
                    position=pb.ExecutionPosition(at_delay=pb.AtDelay(delay_id=ID, next_task_id=SHORT_ID))
                )
            },
            "snapshot.in_progress.position.at_delay.next_task_id",
        ),
        (
            {
                "paused": pb.PausedState(
                    position=pb.ExecutionPosition(at_signal=pb.AtSignal(signal_id=SHORT_ID, signal_name="approve"))
                )
            },
            "snapshot.paused.position.at_signal.signal_id",
        ),
        (
            {
                "in_progress": pb.InProgressState(
                    position=pb.ExecutionPosition(
                        at_fork=pb.AtFork(fork_id=ID, completed_branches={"left": pb.TaskResult(task_id=b"")})
                    )
                )
            },
            "snapshot.in_progress.position.at_fork.completed_branches['left'].task_id",
        ),
        (
            {"cancelled": pb.CancelledState(interrupted_at_task=SHORT_ID)},
            "snapshot.cancelled.interrupted_at_task",
        ),
        (
            {"cancelled": pb.CancelledState(completed_tasks=[pb.TaskResult(task_id=ID), pb.TaskResult(task_id=b"x")])},
            "snapshot.cancelled.completed_tasks[1].task_id",
        ),
        (
            {"paused": pb.PausedState(paused_at=Timestamp(seconds=0, nanos=-5))},
            "snapshot.paused.paused_at",
        ),
    ],
)
def test_every_id_and_time_nested_in_a_snapshot_state_is_checked(state: dict[str, object], field: str) -> None:
    snapshot = pb.WorkflowSnapshot(instance_id="order-1", definition_hash=ID, **state)  # type: ignore[arg-type]
    with _rejects(field):
        validation.snapshot(snapshot)


def test_snapshot_bookkeeping_ids_and_durations_are_checked() -> None:
    with _rejects("snapshot.task_deadline.timeout"):
        validation.snapshot(_snapshot(task_deadline=pb.TaskDeadline(task_id=ID, timeout=Duration(seconds=1, nanos=-1))))
    retries = _snapshot()
    retries.task_retries.add(task_id=ID).policy.max_delay.seconds = 400_000_000_000
    with _rejects("snapshot.task_retries[0].policy.max_delay"):
        validation.snapshot(retries)
    loops = _snapshot()
    loops.loop_iterations.add(task_id=SHORT_ID, count=2)
    with _rejects("snapshot.loop_iterations[0].task_id"):
        validation.snapshot(loops)
