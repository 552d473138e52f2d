"""MODEL (data model, times, maybe-results, trace context) and ERR-4 (what a repeat does)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from sayiir_client.conformance import _build as build
from sayiir_client.conformance._kit import Refusal, Trial, UnaryMethod, check
from sayiir_client.conformance._steps import CANCEL, claim, find, instance_ids, load, prepare_run, save, send_event
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import request_response_pb2 as rr

_Request = TypeVar("_Request", bound=Message)
_Response = TypeVar("_Response", bound=Message)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
STEP = build.task_id("step")


@check("MODEL-1.2", "an absent priority ranks as 3: after 2, before 4")
async def _absent_priority_is_three(t: Trial) -> None:
    tag, moment = t.tag(), build.now()
    snapshots = [
        build.in_progress(
            t.instance(label), t.definition, build.at_task("step"), priority=p, tags=[tag], updated_at=moment
        )
        for label, p in (("a", 4), ("b", None), ("c", 2))
    ]
    for snapshot in snapshots:
        await save(t, snapshot)
    order = instance_ids(await find(t, t.worker(), [tag]))
    t.expect(order == [snapshots[2].instance_id, snapshots[1].instance_id, snapshots[0].instance_id], "2, absent, 4")


@check("MODEL-1.4", "a claim of ttl 0 is expired at once; a claim without expiry never expires")
async def _claim_liveness(t: Trial) -> None:
    zero, forever = t.instance(), t.instance()
    await claim(t, zero, STEP, t.worker(), timedelta(0))
    t.expect((await claim(t, zero, STEP, t.worker(), timedelta(hours=1))).HasField("claim"), "a new claim at once")
    await claim(t, forever, STEP, t.worker())
    await asyncio.sleep(0.2)
    t.expect(not (await claim(t, forever, STEP, t.worker())).HasField("claim"), "the claim without expiry holds")


@check("MODEL-1.6", "SaveSnapshot stores updated_at as sent; the server's own writes set it to now")
async def _updated_at(t: Trial) -> None:
    snapshot = build.paused(t.instance(), t.definition, build.at_task("step"))
    snapshot.updated_at.CopyFrom(build.timestamp(build.ANCIENT))
    await save(t, snapshot)
    t.expect((await load(t, snapshot.instance_id)).updated_at == snapshot.updated_at, "updated_at as sent (year 1)")
    before = build.now()
    resumed = await t.ok(t.stubs.signals.Unpause, rr.UnpauseRequest(instance_id=snapshot.instance_id))
    after, slack = build.now(), t.settings.clock_slack
    updated = build.moment(resumed.snapshot.updated_at)
    t.expect(before - slack <= updated <= after + slack, "Unpause sets updated_at = the server's now")


@check("MODEL-1.7", "maybe-results are absent fields, never errors")
async def _maybe_results(t: Trial) -> None:
    instance_id = t.instance()
    await save(t, build.in_progress(instance_id, t.definition, build.at_task("step")))
    signal = await t.ok(t.stubs.signals.GetSignal, rr.GetSignalRequest(instance_id=instance_id, kind=CANCEL))
    t.expect(not signal.HasField("request"), "GetSignal: no request field")
    event = await t.ok(t.stubs.signals.ConsumeEvent, rr.ConsumeEventRequest(instance_id=instance_id, signal_name="x"))
    t.expect(not event.HasField("payload"), "ConsumeEvent: no payload field")
    result = await t.ok(t.stubs.results.LoadTaskResult, rr.LoadTaskResultRequest(instance_id=instance_id, task_id=STEP))
    t.expect(not result.HasField("output"), "LoadTaskResult: no output field")
    control = await t.ok(t.stubs.signals.CheckControlSignals, rr.CheckControlSignalsRequest(instance_id=instance_id))
    t.expect(not control.HasField("control_signal"), "CheckControlSignals: no control_signal field")
    await claim(t, instance_id, STEP, t.worker(), timedelta(hours=1))
    t.expect(not (await claim(t, instance_id, STEP, t.worker())).HasField("claim"), "ClaimTask: no claim field")


@check("MODEL-3.1", "a call's W3C traceparent is stored with a snapshot that has none; its own wins; bad ones ignored")
async def _trace_context(t: Trial) -> None:
    metadata = (("traceparent", TRACEPARENT),)
    taken = build.in_progress(t.instance(), t.definition, build.at_task("step"))
    await t.ok(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=taken), metadata)
    t.expect((await load(t, taken.instance_id)).trace_parent == TRACEPARENT, "trace_parent = the call's traceparent")
    own = build.in_progress(t.instance(), t.definition, build.at_task("step"))
    own.trace_parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await t.ok(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=own), metadata)
    t.expect((await load(t, own.instance_id)).trace_parent == own.trace_parent, "the snapshot's own trace_parent")
    bad = build.in_progress(t.instance(), t.definition, build.at_task("step"))
    invalid = (("traceparent", "ff-" + TRACEPARENT[3:]),)
    await t.ok(t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=bad), invalid)
    t.expect(not (await load(t, bad.instance_id)).HasField("trace_parent"), "an invalid traceparent (ff) ignored")


async def _twice(t: Trial, method: UnaryMethod[_Request, _Response], request: _Request, instance_id: str) -> None:
    """Call twice: the same answer, and the same stored snapshot apart from updated_at (MODEL-1.6)."""
    first = await t.ok(method, request)
    state = await load(t, instance_id)
    again = await t.ok(method, request)
    t.expect(again == first, "the same answer as the first call")
    stored = await load(t, instance_id)
    for snapshot in (state, stored):
        snapshot.ClearField("updated_at")
    t.expect(stored == state, "the same stored snapshot as after the first call (updated_at aside)")


@check("ERR-4.1", "a repeat of a retry-safe write has the same effect and the same answer")
async def _safe_repeats(t: Trial) -> None:
    instance_id, worker_id = t.instance(), t.worker()
    snapshot = build.in_progress(instance_id, t.definition, build.at_task("step"))
    await claim(t, instance_id, STEP, worker_id, timedelta(hours=1))
    await _twice(t, t.stubs.snapshots.SaveSnapshot, rr.SaveSnapshotRequest(snapshot=snapshot), instance_id)
    result = rr.SaveTaskResultRequest(instance_id=instance_id, task_id=build.task_id("a"), output=b"out")
    await _twice(t, t.stubs.snapshots.SaveTaskResult, result, instance_id)
    signal = rr.StoreSignalRequest(instance_id=instance_id, kind=CANCEL, request=build.signal_request())
    await _twice(t, t.stubs.signals.StoreSignal, signal, instance_id)
    extend = rr.ExtendTaskClaimRequest(
        instance_id=instance_id, task_id=STEP, worker_id=worker_id, ttl=build.duration(timedelta(hours=1))
    )
    await _twice(t, t.stubs.claims.ExtendTaskClaim, extend, instance_id)
    fenced = rr.SaveSnapshotFencedRequest(snapshot=snapshot, task_id=STEP, worker_id=worker_id)
    await _twice(t, t.stubs.claims.SaveSnapshotFenced, fenced, instance_id)


@check("ERR-4.2", "a repeat of a non-idempotent call answers differently: NOT_FOUND, CANNOT_PAUSE, ALREADY_EXISTS")
async def _unsafe_repeats(t: Trial) -> None:
    instance_id, worker_id = t.instance(), t.worker()
    await claim(t, instance_id, STEP, worker_id, timedelta(hours=1))
    release = rr.ReleaseTaskClaimRequest(instance_id=instance_id, task_id=STEP, worker_id=worker_id)
    await t.ok(t.stubs.claims.ReleaseTaskClaim, release)
    await t.refused(t.stubs.claims.ReleaseTaskClaim, release, grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    await save(t, build.paused(instance_id, t.definition, build.at_task("step")))
    unpause = rr.UnpauseRequest(instance_id=instance_id)
    await t.ok(t.stubs.signals.Unpause, unpause)
    await t.refused(t.stubs.signals.Unpause, unpause, grpc.StatusCode.FAILED_PRECONDITION, "CANNOT_PAUSE")
    delete = rr.DeleteSnapshotRequest(instance_id=instance_id)
    await t.ok(t.stubs.snapshots.DeleteSnapshot, delete)
    await t.refused(t.stubs.snapshots.DeleteSnapshot, delete, grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    t.expect(isinstance(await prepare_run(t, instance_id), rr.PrepareRunResponse), "a fresh run")
    again = await prepare_run(t, instance_id)
    t.expect(isinstance(again, Refusal) and again.reason == "ALREADY_EXISTS", "the repeat: ALREADY_EXISTS")


@check("SIG-2.4", "each buffered event is consumed once by concurrent ConsumeEvent calls")
async def _events_consumed_once(t: Trial) -> None:
    instance_id = t.instance()
    payloads = [f"event-{n}".encode() for n in range(5)]
    for payload in payloads:
        await send_event(t, instance_id, "go", payload)
    request = rr.ConsumeEventRequest(instance_id=instance_id, signal_name="go")
    answers = await asyncio.gather(*(t.ok(t.stubs.signals.ConsumeEvent, request) for _ in range(10)))
    got = sorted(answer.payload for answer in answers if answer.HasField("payload"))
    t.expect(got == payloads, f"the 5 payloads, each once, and 5 empty answers (got {got})")


@check("DISP-2.7", "concurrent FindAvailableTasks calls advance a due signal wait once, consuming one event")
async def _advanced_once(t: Trial) -> None:
    tag = t.tag()
    snapshot = build.in_progress(t.instance(), t.definition, build.at_signal("go", None, "after"), tags=[tag])
    # The events before the snapshot: sent to the waiting run, the first would advance it at once (SIG-2.5).
    for payload in (b"first", b"second"):
        await send_event(t, snapshot.instance_id, "go", payload)
    await save(t, snapshot)
    await asyncio.gather(*(find(t, t.worker(), [tag]) for _ in range(4)))
    state = (await load(t, snapshot.instance_id)).in_progress
    t.expect(
        state.position == build.at_task("after") and [r.output for r in state.completed_tasks] == [b"first"],
        "AtTask(after) with the first event as the one result",
    )
    left = await t.ok(
        t.stubs.signals.ConsumeEvent, rr.ConsumeEventRequest(instance_id=snapshot.instance_id, signal_name="go")
    )
    t.expect(left.payload == b"second", "the second event still buffered: one event consumed")


@check("RUN-4.3", "concurrent USE_EXISTING calls for a new id: one fresh run, the others its existing status")
async def _concurrent_use_existing(t: Trial) -> None:
    instance_id = t.instance()
    answers = await asyncio.gather(
        *(prepare_run(t, instance_id, policy=enums.CONFLICT_POLICY_USE_EXISTING) for _ in range(6))
    )
    outcomes = [
        (a.outcome.WhichOneof("outcome") or "none") if isinstance(a, rr.PrepareRunResponse) else "refused"
        for a in answers
    ]
    t.expect(
        sorted(outcomes) == ["existing_status"] * 5 + ["fresh"],
        f"one fresh and five existing_status (got {sorted(outcomes)})",
    )
