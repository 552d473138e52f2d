"""RUN (PrepareRun: instance ids, policies, RunConflict, fresh runs, races) and MODEL-2 (derived status)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc

from sayiir_client.conformance import _build as build
from sayiir_client.conformance._kit import Refusal, Trial, check, shown
from sayiir_client.conformance._steps import CANCEL, PAUSE, claim, get_signal, load, prepare_run, save, send_event
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr

FAIL = enums.CONFLICT_POLICY_FAIL
USE_EXISTING = enums.CONFLICT_POLICY_USE_EXISTING
TERMINATE_EXISTING = enums.CONFLICT_POLICY_TERMINATE_EXISTING
POLICIES = (enums.CONFLICT_POLICY_UNSPECIFIED, FAIL, USE_EXISTING, TERMINATE_EXISTING)


def _fresh(t: Trial, answer: rr.PrepareRunResponse | Refusal) -> pb.WorkflowSnapshot:
    t.expect(isinstance(answer, rr.PrepareRunResponse) and answer.outcome.HasField("fresh"), "outcome fresh{snapshot}")
    assert isinstance(answer, rr.PrepareRunResponse)
    return answer.outcome.fresh.snapshot


def _status(t: Trial, answer: rr.PrepareRunResponse | Refusal) -> pb.ExistingStatus:
    t.expect(
        isinstance(answer, rr.PrepareRunResponse) and answer.outcome.HasField("existing_status"),
        "outcome existing_status{status}",
    )
    assert isinstance(answer, rr.PrepareRunResponse)
    return answer.outcome.existing_status


async def _invalid_id(t: Trial, instance_id: str) -> None:
    length = len(instance_id.encode())
    request = rr.PrepareRunRequest(
        instance_id=instance_id, definition_hash=t.definition, first_task=pb.FirstTask(task_id=build.task_id("first"))
    )
    refusal = await t.refused(
        t.stubs.lifecycle.PrepareRun,
        request,
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_INSTANCE_ID",
        {"length": str(length), "max_length": "256"},
    )
    conflict = refusal.conflict
    t.expect(
        conflict is not None
        and conflict.invalid_instance_id.length == length
        and conflict.invalid_instance_id.max_length == 256,
        f"RunConflict.invalid_instance_id{{length = {length}, max_length = 256}} (ERR-1.4)",
    )


@check("RUN-1.1", "an empty or over-long instance id is INVALID_INSTANCE_ID with its RunConflict; 256 bytes is fine")
async def _instance_id_lengths(t: Trial) -> None:
    await _invalid_id(t, "")
    stem = t.instance()
    await _invalid_id(t, (stem + "x" * 300)[:257])
    room = 256 - len(stem.encode())
    accepted = t.adopt(stem + "é" * (room // 2) + "x" * (room % 2))  # é is two bytes: ID-1.1 counts bytes
    _fresh(t, await prepare_run(t, accepted))


@check("RUN-2.1", "another definition hash is DEFINITION_MISMATCH with both hashes, whatever the policy")
async def _definition_mismatch(t: Trial) -> None:
    instance_id = t.instance()
    stored = _fresh(t, await prepare_run(t, instance_id))
    other = build.task_id("another definition")
    for policy in POLICIES:
        answer = await prepare_run(t, instance_id, policy=policy, definition_hash=other)
        t.expect(
            isinstance(answer, Refusal)
            and answer.code == grpc.StatusCode.FAILED_PRECONDITION
            and answer.reason == "DEFINITION_MISMATCH"
            and answer.metadata.get("expected") == other.hex()
            and answer.metadata.get("found") == t.definition.hex(),
            f"policy {enums.ConflictPolicy.Name(policy)}: FAILED_PRECONDITION DEFINITION_MISMATCH, "
            "metadata expected/found = the hashes in lowercase hex",
        )
        assert isinstance(answer, Refusal)
        mismatch = answer.conflict.definition_mismatch if answer.conflict else None
        t.expect(
            mismatch is not None and mismatch.expected == other and mismatch.found == t.definition,
            "RunConflict.definition_mismatch{expected = the request's hash, found = the stored one}",
        )
    t.expect(await load(t, instance_id) == stored, "nothing changes")


@check("RUN-2.2", "an existing run with policy FAIL or UNSPECIFIED is ALREADY_EXISTS with its RunConflict")
async def _already_exists(t: Trial) -> None:
    instance_id = t.instance()
    stored = _fresh(t, await prepare_run(t, instance_id))
    for policy in (FAIL, enums.CONFLICT_POLICY_UNSPECIFIED):
        answer = await prepare_run(t, instance_id, policy=policy)
        t.expect(
            isinstance(answer, Refusal)
            and answer.code == grpc.StatusCode.ALREADY_EXISTS
            and answer.reason == "ALREADY_EXISTS"
            and answer.metadata.get("instance_id") == instance_id
            and answer.conflict is not None
            and answer.conflict.already_exists.instance_id == instance_id,
            "ALREADY_EXISTS, metadata instance_id, RunConflict.already_exists{instance_id}",
        )
    t.expect(await load(t, instance_id) == stored, "nothing changes")


@check("RUN-2.3", "USE_EXISTING reports the derived status, with final_output only when Completed")
async def _use_existing(t: Trial) -> None:
    running = t.instance()
    stored = _fresh(t, await prepare_run(t, running))
    status = _status(t, await prepare_run(t, running, policy=USE_EXISTING))
    t.expect(status.status.HasField("in_progress") and not status.HasField("final_output"), "in_progress{}")
    t.expect(await load(t, running) == stored, "nothing changes")
    done = build.completed(t.instance(), t.definition, b"result")
    await save(t, done)
    status = _status(t, await prepare_run(t, done.instance_id, policy=USE_EXISTING))
    t.expect(status.status.HasField("completed") and status.final_output == b"result", "completed{}, final_output")


@check("MODEL-2.1", "derived status of Failed, Cancelled and Paused runs")
async def _finished_statuses(t: Trial) -> None:
    failed = build.failed(t.instance(), t.definition, "it broke")
    cancelled = build.cancelled(t.instance(), t.definition)
    cancelled.cancelled.cancelled_by = "operator"
    paused = build.paused(t.instance(), t.definition, build.at_task("step"))
    expected = {
        failed.instance_id: pb.WorkflowStatus(failed=pb.StatusFailed(error="it broke")),
        cancelled.instance_id: pb.WorkflowStatus(cancelled=pb.StatusCancelled(reason="stop", cancelled_by="operator")),
        paused.instance_id: pb.WorkflowStatus(paused=pb.StatusPaused(reason="hold")),
    }
    for snapshot in (failed, cancelled, paused):
        await save(t, snapshot)
        status = _status(t, await prepare_run(t, snapshot.instance_id, policy=USE_EXISTING))
        t.expect(
            status.status == expected[snapshot.instance_id] and not status.HasField("final_output"),
            f"status {shown(expected[snapshot.instance_id])}, no final_output",
        )


@check("MODEL-2.2", "derived status of waiting runs: delay, fork and signal wait")
async def _waiting_statuses(t: Trial) -> None:
    wake_at = build.timestamp(build.now() + timedelta(hours=1))
    delay = build.at_delay("nap", build.now() + timedelta(hours=1), "after")
    delay.at_delay.wake_at.CopyFrom(wake_at)
    fork = pb.ExecutionPosition(at_fork=pb.AtFork(fork_id=build.task_id("fork"), wake_at=wake_at))
    signal = build.at_signal("go", None, "after")
    expected = [
        (delay, pb.WorkflowStatus(waiting=pb.StatusWaiting(wake_at=wake_at, delay_id=build.task_id("nap")))),
        (fork, pb.WorkflowStatus(waiting=pb.StatusWaiting(wake_at=wake_at, delay_id=build.task_id("fork")))),
        (
            signal,
            pb.WorkflowStatus(
                awaiting_signal=pb.StatusAwaitingSignal(signal_id=build.task_id("wait for go"), signal_name="go")
            ),
        ),
        (
            pb.ExecutionPosition(at_join=pb.AtJoin(join_id=build.task_id("j"))),
            pb.WorkflowStatus(in_progress=pb.StatusInProgress()),
        ),
    ]
    for position, wanted in expected:
        snapshot = build.in_progress(t.instance(), t.definition, position)
        await save(t, snapshot)
        status = _status(t, await prepare_run(t, snapshot.instance_id, policy=USE_EXISTING))
        t.expect(status.status == wanted, f"status {shown(wanted)}")


@check("RUN-2.4", "TERMINATE_EXISTING starts afresh, clears both signals, drops claims, leaves events")
async def _terminate_existing(t: Trial) -> None:
    instance_id, old_worker = t.instance(), t.worker()
    old = build.in_progress(instance_id, t.definition, build.at_task("step"), outputs={"a": b"out-a"})
    await save(t, old)
    # The claim first: it holds both requests pending (SIG-9.2), which would otherwise apply at once (SIG-9.1).
    await claim(t, instance_id, build.task_id("step"), old_worker, timedelta(hours=1))
    for kind in (CANCEL, PAUSE):
        await t.ok(
            t.stubs.signals.StoreSignal,
            rr.StoreSignalRequest(instance_id=instance_id, kind=kind, request=build.signal_request()),
        )
    for kind in (CANCEL, PAUSE):
        t.expect((await get_signal(t, instance_id, kind)).HasField("request"), "both requests pending before")
    await send_event(t, instance_id, "go", b"kept")
    fresh = _fresh(t, await prepare_run(t, instance_id, task="step", policy=TERMINATE_EXISTING))
    t.expect(
        fresh.in_progress.position == build.at_task("step") and not fresh.in_progress.completed_tasks,
        "a fresh run at its first task, without the old results",
    )
    for kind in (CANCEL, PAUSE):
        t.expect(not (await get_signal(t, instance_id, kind)).HasField("request"), "both signal requests cleared")
    late = rr.SaveSnapshotFencedRequest(snapshot=old, task_id=build.task_id("step"), worker_id=old_worker)
    t.expect(not (await t.ok(t.stubs.claims.SaveSnapshotFenced, late)).saved, "the old worker's fenced save: false")
    left = await t.ok(t.stubs.signals.ConsumeEvent, rr.ConsumeEventRequest(instance_id=instance_id, signal_name="go"))
    t.expect(left.payload == b"kept", "the buffered event untouched")


@check("RUN-3.1", "a fresh run stores exactly the snapshot it answers, at the first task")
async def _fresh_run(t: Trial) -> None:
    instance_id, tag = t.instance(), t.tag()
    request = rr.PrepareRunRequest(
        instance_id=instance_id,
        definition_hash=t.definition,
        input=b"",
        first_task=pb.FirstTask(task_id=build.task_id("first"), priority=2, tags=[tag]),
    )
    before = build.now()
    answer = await t.ok(t.stubs.lifecycle.PrepareRun, request)
    after = build.now()
    fresh = _fresh(t, answer)
    slack = t.settings.clock_slack
    t.expect(
        fresh.instance_id == instance_id
        and fresh.definition_hash == t.definition
        and fresh.in_progress.position == build.at_task("first")
        and not fresh.in_progress.completed_tasks
        and not fresh.in_progress.HasField("last_completed_task_id")
        and fresh.HasField("initial_input")
        and fresh.initial_input == b""
        and fresh.task_priority == 2
        and list(fresh.task_tags) == [tag]
        and fresh.created_at == fresh.updated_at
        and before - slack <= build.moment(fresh.created_at) <= after + slack,
        "in_progress at AtTask(first), no results, initial_input present and empty, priority 2, tags, "
        "created_at = updated_at = now",
    )
    t.expect(await load(t, instance_id) == fresh, "LoadSnapshot returns exactly the answered snapshot")
    plain = _fresh(t, await prepare_run(t, t.instance()))
    t.expect(not plain.HasField("task_priority"), "task_priority absent when first_task has none")


@check("RUN-4.1", "of 8 concurrent PrepareRun calls with policy FAIL exactly one is fresh, the others ALREADY_EXISTS")
async def _concurrent_fail(t: Trial) -> None:
    instance_id = t.instance()
    answers = await asyncio.gather(*(prepare_run(t, instance_id) for _ in range(8)))
    fresh = [a for a in answers if isinstance(a, rr.PrepareRunResponse) and a.outcome.HasField("fresh")]
    exists = [a for a in answers if isinstance(a, Refusal) and a.reason == "ALREADY_EXISTS"]
    t.expect(len(fresh) == 1 and len(exists) == 7, f"1 fresh and 7 ALREADY_EXISTS (got {len(fresh)}, {len(exists)})")
    assert isinstance(fresh[0], rr.PrepareRunResponse)
    t.expect(await load(t, instance_id) == fresh[0].outcome.fresh.snapshot, "the stored snapshot is the winner's")


@check("RUN-4.2", "concurrent TERMINATE_EXISTING calls all get a fresh run")
async def _concurrent_terminate(t: Trial) -> None:
    instance_id = t.instance()
    await prepare_run(t, instance_id)
    answers = await asyncio.gather(*(prepare_run(t, instance_id, policy=TERMINATE_EXISTING) for _ in range(4)))
    fresh = [a for a in answers if isinstance(a, rr.PrepareRunResponse) and a.outcome.HasField("fresh")]
    t.expect(len(fresh) == 4, f"4 fresh outcomes (got {len(fresh)})")
    stored = await load(t, instance_id)
    t.expect(
        any(isinstance(a, rr.PrepareRunResponse) and a.outcome.fresh.snapshot == stored for a in answers),
        "the stored snapshot is one of theirs",
    )
