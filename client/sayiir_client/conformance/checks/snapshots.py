"""SNAP (snapshot store) and RES (task results)."""

from __future__ import annotations

import asyncio

import grpc

from sayiir_client.conformance import _build as build
from sayiir_client.conformance._kit import Trial, check
from sayiir_client.conformance._steps import (
    CANCEL,
    PAUSE,
    claim,
    get_signal,
    hold,
    load,
    save,
    send_event,
    task_result,
)
from sayiir_client.v1 import request_response_pb2 as rr

NOT_FOUND = grpc.StatusCode.NOT_FOUND
REFUSED = grpc.StatusCode.FAILED_PRECONDITION


@check("SNAP-1.1", "LoadSnapshot returns a saved snapshot field for field")
async def _load_returns_the_saved_snapshot(t: Trial) -> None:
    snapshot = build.in_progress(
        t.instance(), t.definition, build.at_task("b"), outputs={"a": b"out-a"}, last_completed="a", priority=2
    )
    snapshot.task_tags.append(t.tag())
    await save(t, snapshot)
    t.expect(await load(t, snapshot.instance_id) == snapshot, "the snapshot exactly as saved")


@check("SNAP-1.1", "SaveSnapshot overwrites whatever the two states, short of a final one")
async def _save_overwrites_whatever_the_states(t: Trial) -> None:
    instance_id = t.instance()
    for snapshot in (
        build.in_progress(instance_id, t.definition, build.at_task("b"), outputs={"a": b"out-a"}),
        build.paused(instance_id, t.definition, build.at_task("c")),
        build.in_progress(instance_id, t.definition, build.at_task("again")),
        build.failed(instance_id, t.definition),
    ):
        await save(t, snapshot)
        t.expect(await load(t, instance_id) == snapshot, "the last snapshot saved, no transition checked")


@check("SNAP-1.2", "a Completed save keeps the replaced snapshot's results readable")
async def _completed_keeps_results(t: Trial) -> None:
    instance_id = t.instance()
    await save(t, build.in_progress(instance_id, t.definition, build.at_task("b"), outputs={"a": b"out-a"}))
    await save(t, build.completed(instance_id, t.definition))
    t.expect((await task_result(t, instance_id, "a")).output == b"out-a", "LoadTaskResult answers b'out-a'")


@check("SNAP-1.2", "a Failed save after Paused keeps the Paused results readable")
async def _failed_keeps_results(t: Trial) -> None:
    instance_id = t.instance()
    await save(t, build.paused(instance_id, t.definition, build.at_task("b"), outputs={"a": b"out-a"}))
    await save(t, build.failed(instance_id, t.definition))
    t.expect((await task_result(t, instance_id, "a")).output == b"out-a", "LoadTaskResult answers b'out-a'")


@check("SNAP-1.3", "the results a Completed run retains stay through a refused save over it, and go with the row")
async def _retained_results_survive_terminal_resaves(t: Trial) -> None:
    # Under SNAP-1.4 nothing replaces a final row but DeleteSnapshot or TERMINATE_EXISTING: the retained results
    # stay as long as the Completed row does, and a new row saved after a delete starts without them.
    instance_id = t.instance()
    await save(t, build.in_progress(instance_id, t.definition, build.at_task("b"), outputs={"a": b"out-a"}))
    await save(t, build.completed(instance_id, t.definition))
    over = rr.SaveSnapshotRequest(snapshot=build.failed(instance_id, t.definition))
    await t.refused(t.stubs.snapshots.SaveSnapshot, over, REFUSED, "FINAL_STATE", {"state": "Completed"})
    t.expect((await task_result(t, instance_id, "a")).output == b"out-a", "the results retained before are kept")
    await t.ok(t.stubs.snapshots.DeleteSnapshot, rr.DeleteSnapshotRequest(instance_id=instance_id))
    await save(t, build.in_progress(instance_id, t.definition, build.at_task("b")))
    t.expect(not (await task_result(t, instance_id, "a")).HasField("output"), "retained results dropped: no output")


@check("SNAP-1.4", "SaveSnapshot over a Completed, Failed or Cancelled run is FINAL_STATE and writes nothing")
async def _save_over_final_refused(t: Trial) -> None:
    for final, state in (
        (build.completed(t.instance(), t.definition), "Completed"),
        (build.failed(t.instance(), t.definition), "Failed"),
        (build.cancelled(t.instance(), t.definition), "Cancelled"),
    ):
        await save(t, final)
        again = build.in_progress(final.instance_id, t.definition, build.at_task("again"))
        request = rr.SaveSnapshotRequest(snapshot=again)
        await t.refused(t.stubs.snapshots.SaveSnapshot, request, REFUSED, "FINAL_STATE", {"state": state})
        t.expect(await load(t, final.instance_id) == final, f"the {state} snapshot unchanged")


@check("SNAP-1.4", "a fenced save or CompleteTask over a final run is FINAL_STATE, writes nothing, keeps the claim")
async def _fenced_over_final_refused(t: Trial) -> None:
    final = build.completed(t.instance(), t.definition)
    await save(t, final)
    holder = await hold(t, final.instance_id, "step")
    again = build.in_progress(final.instance_id, t.definition, build.at_task("next"), outputs={"step": b"out"})
    fenced = rr.SaveSnapshotFencedRequest(snapshot=again, task_id=build.task_id("step"), worker_id=holder)
    await t.refused(t.stubs.claims.SaveSnapshotFenced, fenced, REFUSED, "FINAL_STATE", {"state": "Completed"})
    t.expect(await load(t, final.instance_id) == final, "the Completed snapshot unchanged")
    complete = rr.CompleteTaskRequest(snapshot=again, task_id=build.task_id("step"), worker_id=holder)
    await t.refused(t.stubs.claims.CompleteTask, complete, REFUSED, "FINAL_STATE", {"state": "Completed"})
    t.expect(await load(t, final.instance_id) == final, "the Completed snapshot unchanged")
    other = await claim(t, final.instance_id, build.task_id("step"), t.worker())
    t.expect(not other.HasField("claim"), "the claim neither released nor changed: another worker gets no claim")
    stranger = rr.SaveSnapshotFencedRequest(snapshot=again, task_id=build.task_id("step"), worker_id=t.worker())
    await t.refused(t.stubs.claims.SaveSnapshotFenced, stranger, REFUSED, "FINAL_STATE", {"state": "Completed"})


@check("SNAP-1.4", "after DeleteSnapshot a final run's id takes a new save")
async def _save_after_delete(t: Trial) -> None:
    instance_id = t.instance()
    await save(t, build.cancelled(instance_id, t.definition))
    await t.ok(t.stubs.snapshots.DeleteSnapshot, rr.DeleteSnapshotRequest(instance_id=instance_id))
    fresh = build.in_progress(instance_id, t.definition, build.at_task("again"))
    await save(t, fresh)
    t.expect(await load(t, instance_id) == fresh, "the new snapshot, as saved")


@check("SNAP-2.1", "SaveTaskResult records the output and last_completed_task_id, and leaves the position")
async def _save_task_result_records(t: Trial) -> None:
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("b"))
    await save(t, snapshot)
    before = build.now()
    await t.ok(
        t.stubs.snapshots.SaveTaskResult,
        rr.SaveTaskResultRequest(instance_id=snapshot.instance_id, task_id=build.task_id("a"), output=b"out-a"),
    )
    after = build.now()
    stored = await load(t, snapshot.instance_id)
    state = stored.in_progress
    t.expect(
        [(r.task_id, r.output) for r in state.completed_tasks] == [(build.task_id("a"), b"out-a")]
        and state.last_completed_task_id == build.task_id("a")
        and state.position == snapshot.in_progress.position,
        "completed_tasks = [a: b'out-a'], last_completed_task_id = a, position unchanged (AtTask b)",
    )
    slack = t.settings.clock_slack
    updated = build.moment(stored.updated_at)
    t.expect(before - slack <= updated <= after + slack, "MODEL-1.6: updated_at = the server's now")


@check("SNAP-2.2", "a second result for the same task replaces the first")
async def _second_result_replaces(t: Trial) -> None:
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("b"), outputs={"a": b"first"})
    await save(t, snapshot)
    request = rr.SaveTaskResultRequest(instance_id=snapshot.instance_id, task_id=build.task_id("a"), output=b"second")
    await t.ok(t.stubs.snapshots.SaveTaskResult, request)
    stored = (await load(t, snapshot.instance_id)).in_progress.completed_tasks
    t.expect([r.output for r in stored] == [b"second"], "one entry for task a, output b'second'")


@check("SNAP-2.3", "SaveTaskResult on a Completed snapshot succeeds and changes nothing")
async def _save_task_result_outside_in_progress(t: Trial) -> None:
    snapshot = build.completed(t.instance(), t.definition)
    await save(t, snapshot)
    request = rr.SaveTaskResultRequest(instance_id=snapshot.instance_id, task_id=build.task_id("a"), output=b"x")
    await t.ok(t.stubs.snapshots.SaveTaskResult, request)
    t.expect(await load(t, snapshot.instance_id) == snapshot, "the Completed snapshot unchanged")


@check("SNAP-2.4", "SaveTaskResult without a snapshot is NOT_FOUND")
async def _save_task_result_not_found(t: Trial) -> None:
    request = rr.SaveTaskResultRequest(instance_id=t.instance(), task_id=build.task_id("a"), output=b"x")
    await t.refused(t.stubs.snapshots.SaveTaskResult, request, NOT_FOUND, "NOT_FOUND")


@check("SNAP-2.5", "concurrent SaveTaskResult calls for different tasks all land")
async def _concurrent_results_all_land(t: Trial) -> None:
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("join"))
    await save(t, snapshot)
    names = [f"branch-{n}" for n in range(8)]
    await asyncio.gather(
        *(
            t.ok(
                t.stubs.snapshots.SaveTaskResult,
                rr.SaveTaskResultRequest(
                    instance_id=snapshot.instance_id, task_id=build.task_id(name), output=name.encode()
                ),
            )
            for name in names
        )
    )
    stored = {r.task_id: r.output for r in (await load(t, snapshot.instance_id)).in_progress.completed_tasks}
    t.expect(stored == {build.task_id(name): name.encode() for name in names}, "all 8 results in completed_tasks")


@check("SNAP-3.1", "LoadSnapshot without a snapshot is NOT_FOUND")
async def _load_not_found(t: Trial) -> None:
    await t.refused(
        t.stubs.snapshots.LoadSnapshot, rr.LoadSnapshotRequest(instance_id=t.instance()), NOT_FOUND, "NOT_FOUND"
    )


@check("SNAP-4.1", "DeleteSnapshot removes the snapshot and its retained results")
async def _delete_removes_everything(t: Trial) -> None:
    instance_id = t.instance()
    await save(t, build.in_progress(instance_id, t.definition, build.at_task("b"), outputs={"a": b"out-a"}))
    await save(t, build.completed(instance_id, t.definition))
    await t.ok(t.stubs.snapshots.DeleteSnapshot, rr.DeleteSnapshotRequest(instance_id=instance_id))
    await t.refused(
        t.stubs.snapshots.LoadSnapshot, rr.LoadSnapshotRequest(instance_id=instance_id), NOT_FOUND, "NOT_FOUND"
    )
    result = rr.LoadTaskResultRequest(instance_id=instance_id, task_id=build.task_id("a"))
    await t.refused(t.stubs.results.LoadTaskResult, result, NOT_FOUND, "NOT_FOUND")
    await save(t, build.completed(instance_id, t.definition))
    t.expect(not (await task_result(t, instance_id, "a")).HasField("output"), "a new snapshot starts without results")


@check("SNAP-4.2", "DeleteSnapshot without a snapshot is NOT_FOUND")
async def _delete_not_found(t: Trial) -> None:
    request = rr.DeleteSnapshotRequest(instance_id=t.instance())
    await t.refused(t.stubs.snapshots.DeleteSnapshot, request, NOT_FOUND, "NOT_FOUND")


@check("SNAP-4.3", "pending signal requests stay after DeleteSnapshot")
async def _delete_keeps_signals(t: Trial) -> None:
    instance_id = t.instance()
    await save(t, build.in_progress(instance_id, t.definition, build.at_task("a")))
    await hold(t, instance_id, "a")  # SIG-9.2: held, the cancel stays pending
    await t.ok(
        t.stubs.signals.StoreSignal,
        rr.StoreSignalRequest(instance_id=instance_id, kind=CANCEL, request=build.signal_request()),
    )
    await t.ok(t.stubs.snapshots.DeleteSnapshot, rr.DeleteSnapshotRequest(instance_id=instance_id))
    t.expect((await get_signal(t, instance_id, CANCEL)).HasField("request"), "the cancel request still pending")
    t.expect(not (await get_signal(t, instance_id, PAUSE)).HasField("request"), "no pause request")


@check("SNAP-4.4", "buffered events and claims stay after DeleteSnapshot")
async def _delete_keeps_events_and_claims(t: Trial) -> None:
    instance_id = t.instance()
    await save(t, build.in_progress(instance_id, t.definition, build.at_task("a")))
    await send_event(t, instance_id, "go", b"payload")
    await claim(t, instance_id, build.task_id("a"), t.worker())
    await t.ok(t.stubs.snapshots.DeleteSnapshot, rr.DeleteSnapshotRequest(instance_id=instance_id))
    consumed = await t.ok(
        t.stubs.signals.ConsumeEvent, rr.ConsumeEventRequest(instance_id=instance_id, signal_name="go")
    )
    t.expect(consumed.payload == b"payload", "the event still buffered")
    again = await claim(t, instance_id, build.task_id("a"), t.worker())
    t.expect(not again.HasField("claim"), "the claim still held: another worker gets no claim")


@check("RES-1.1", "LoadTaskResult without a snapshot is NOT_FOUND")
async def _result_not_found(t: Trial) -> None:
    request = rr.LoadTaskResultRequest(instance_id=t.instance(), task_id=build.task_id("a"))
    await t.refused(t.stubs.results.LoadTaskResult, request, NOT_FOUND, "NOT_FOUND")


@check("RES-1.2", "LoadTaskResult answers from an InProgress, Paused or Cancelled state; none without an entry")
async def _result_from_live_states(t: Trial) -> None:
    outputs = {"a": b"out-a"}
    for snapshot in (
        build.in_progress(t.instance(), t.definition, build.at_task("b"), outputs=outputs),
        build.paused(t.instance(), t.definition, build.at_task("b"), outputs=outputs),
        build.cancelled(t.instance(), t.definition, outputs=outputs),
    ):
        await save(t, snapshot)
        t.expect((await task_result(t, snapshot.instance_id, "a")).output == b"out-a", "output b'out-a'")
        t.expect(not (await task_result(t, snapshot.instance_id, "never")).HasField("output"), "no output (absent)")


@check("RES-1.3", "LoadTaskResult of a Completed run answers from the retained results; none for other tasks")
async def _result_from_retained(t: Trial) -> None:
    instance_id = t.instance()
    await save(t, build.in_progress(instance_id, t.definition, build.at_task("b"), outputs={"a": b"out-a"}))
    await save(t, build.completed(instance_id, t.definition))
    t.expect((await task_result(t, instance_id, "a")).output == b"out-a", "output b'out-a'")
    t.expect(not (await task_result(t, instance_id, "never")).HasField("output"), "no output (absent)")
