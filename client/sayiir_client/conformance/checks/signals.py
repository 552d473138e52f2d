"""SIG: cancel and pause requests, events, the check-and-apply composites and Unpause."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import grpc

from sayiir_client.conformance import _build as build
from sayiir_client.conformance._kit import Refusal, Trial, check
from sayiir_client.conformance._steps import (
    CANCEL,
    PAUSE,
    Watch,
    claim,
    get_signal,
    hold,
    load,
    save,
    send_event,
    store_signal,
)
from sayiir_client.v1 import enums_pb2 as enums
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr

REFUSED = grpc.StatusCode.FAILED_PRECONDITION


def _store(instance_id: str, kind: enums.SignalKind.ValueType, reason: str = "conformance") -> rr.StoreSignalRequest:
    return rr.StoreSignalRequest(instance_id=instance_id, kind=kind, request=build.signal_request(reason))


async def _in_progress(t: Trial, outputs: dict[str, bytes] | None = None) -> pb.WorkflowSnapshot:
    snapshot = build.in_progress(
        t.instance(), t.definition, build.at_task("b"), outputs=outputs, last_completed="a" if outputs else None
    )
    snapshot.task_deadline.task_id = build.task_id("b")
    snapshot.task_deadline.deadline.CopyFrom(build.timestamp(build.now()))
    await save(t, snapshot)
    return snapshot


@check("SIG-1.1", "StoreSignal without a snapshot is NOT_FOUND")
async def _store_not_found(t: Trial) -> None:
    await t.refused(t.stubs.signals.StoreSignal, _store(t.instance(), CANCEL), grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


async def _refused_over(t: Trial, kind: enums.SignalKind.ValueType, reason: str, finals: tuple[str, ...]) -> None:
    """A request of `kind` for a run in each of the `finals` states is refused with `reason`, storing nothing."""
    builders: dict[str, Callable[[str, bytes], pb.WorkflowSnapshot]] = {
        "Completed": build.completed,
        "Failed": build.failed,
        "Cancelled": build.cancelled,
    }
    for state in finals:
        snapshot = builders[state](t.instance(), t.definition)
        await save(t, snapshot)
        request = _store(snapshot.instance_id, kind)
        await t.refused(t.stubs.signals.StoreSignal, request, REFUSED, reason, {"state": state})
        t.expect(not (await get_signal(t, snapshot.instance_id, kind)).HasField("request"), "nothing stored")


@check("SIG-1.2", "a cancel of a Completed or Failed run is CANNOT_CANCEL and stores nothing")
async def _cancel_refused_when_finished(t: Trial) -> None:
    await _refused_over(t, CANCEL, "CANNOT_CANCEL", ("Completed", "Failed"))


@check("SIG-1.2", "a cancel of a Cancelled run is accepted and ignored")
async def _cancel_of_cancelled_ignored(t: Trial) -> None:
    snapshot = build.cancelled(t.instance(), t.definition)
    await save(t, snapshot)
    await t.ok(t.stubs.signals.StoreSignal, _store(snapshot.instance_id, CANCEL))
    t.expect(not (await get_signal(t, snapshot.instance_id, CANCEL)).HasField("request"), "nothing stored")


@check("SIG-1.2", "a cancel of a held InProgress or a Paused run is stored, replacing a pending one")
async def _cancel_stored(t: Trial) -> None:
    for snapshot in (
        build.in_progress(t.instance(), t.definition, build.at_task("a")),
        build.paused(t.instance(), t.definition, build.at_task("a")),
    ):
        await save(t, snapshot)
        if build.state_of(snapshot) == "in_progress":
            await hold(t, snapshot.instance_id, "a")  # SIG-9.2: held, the request stays pending
        await t.ok(t.stubs.signals.StoreSignal, _store(snapshot.instance_id, CANCEL, "first"))
        second = _store(snapshot.instance_id, CANCEL, "second")
        await t.ok(t.stubs.signals.StoreSignal, second)
        pending = await get_signal(t, snapshot.instance_id, CANCEL)
        t.expect(pending.request == second.request, "the second request, as stored")


@check("SIG-1.3", "a pause of a Completed, Failed or Cancelled run is CANNOT_PAUSE and stores nothing")
async def _pause_refused_when_finished(t: Trial) -> None:
    await _refused_over(t, PAUSE, "CANNOT_PAUSE", ("Completed", "Failed", "Cancelled"))


@check("SIG-1.3", "a pause of a Paused run is ignored; of a held InProgress run stored, replacing a pending one")
async def _pause_stored_or_ignored(t: Trial) -> None:
    held = build.paused(t.instance(), t.definition, build.at_task("a"))
    await save(t, held)
    await t.ok(t.stubs.signals.StoreSignal, _store(held.instance_id, PAUSE))
    t.expect(not (await get_signal(t, held.instance_id, PAUSE)).HasField("request"), "nothing stored for Paused")
    running = build.in_progress(t.instance(), t.definition, build.at_task("a"))
    await save(t, running)
    await hold(t, running.instance_id, "a")  # SIG-9.2: held, the request stays pending
    await t.ok(t.stubs.signals.StoreSignal, _store(running.instance_id, PAUSE, "first"))
    second = _store(running.instance_id, PAUSE, "second")
    await t.ok(t.stubs.signals.StoreSignal, second)
    t.expect((await get_signal(t, running.instance_id, PAUSE)).request == second.request, "the second request")


@check("SIG-1.4", "refusals name the state InProgress, Completed, Failed, Cancelled")
async def _state_names(t: Trial) -> None:
    running = build.in_progress(t.instance(), t.definition, build.at_task("a"))
    await save(t, running)
    unpause = rr.UnpauseRequest(instance_id=running.instance_id)
    await t.refused(t.stubs.signals.Unpause, unpause, REFUSED, "CANNOT_PAUSE", {"state": "InProgress"})
    for snapshot, state in (
        (build.completed(t.instance(), t.definition), "Completed"),
        (build.failed(t.instance(), t.definition), "Failed"),
        (build.cancelled(t.instance(), t.definition), "Cancelled"),
    ):
        await save(t, snapshot)
        request = _store(snapshot.instance_id, PAUSE)
        await t.refused(t.stubs.signals.StoreSignal, request, REFUSED, "CANNOT_PAUSE", {"state": state})


@check("SIG-1.5", "GetSignal of an instance that does not exist answers no request")
async def _get_signal_of_missing(t: Trial) -> None:
    t.expect(not (await get_signal(t, t.instance(), CANCEL)).HasField("request"), "an absent request, not NOT_FOUND")


@check("SIG-1.6", "ClearSignal removes the pending request and never fails")
async def _clear_signal(t: Trial) -> None:
    await t.ok(t.stubs.signals.ClearSignal, rr.ClearSignalRequest(instance_id=t.instance(), kind=PAUSE))
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("a"))
    await save(t, snapshot)
    await hold(t, snapshot.instance_id, "a")  # SIG-9.2: held, the request stays pending
    await store_signal(t, snapshot.instance_id, CANCEL)
    t.expect((await get_signal(t, snapshot.instance_id, CANCEL)).HasField("request"), "the held run's cancel pending")
    await t.ok(t.stubs.signals.ClearSignal, rr.ClearSignalRequest(instance_id=snapshot.instance_id, kind=CANCEL))
    t.expect(not (await get_signal(t, snapshot.instance_id, CANCEL)).HasField("request"), "no pending request")
    await t.ok(t.stubs.signals.ClearSignal, rr.ClearSignalRequest(instance_id=snapshot.instance_id, kind=CANCEL))


@check("SIG-1.7", "the cancel and pause requests of one instance are independent")
async def _kinds_independent(t: Trial) -> None:
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("a"))
    await save(t, snapshot)
    await hold(t, snapshot.instance_id, "a")  # SIG-9.2: held, both requests stay pending
    await store_signal(t, snapshot.instance_id, CANCEL)
    await store_signal(t, snapshot.instance_id, PAUSE)
    await t.ok(t.stubs.signals.ClearSignal, rr.ClearSignalRequest(instance_id=snapshot.instance_id, kind=CANCEL))
    t.expect((await get_signal(t, snapshot.instance_id, PAUSE)).HasField("request"), "the pause still pending")


@check("SIG-2.1", "SendEvent is accepted for an instance that does not exist")
async def _event_without_instance(t: Trial) -> None:
    instance_id = t.instance()
    await send_event(t, instance_id, "go", b"early")
    consumed = await t.ok(
        t.stubs.signals.ConsumeEvent, rr.ConsumeEventRequest(instance_id=instance_id, signal_name="go")
    )
    t.expect(consumed.payload == b"early", "the event buffered: payload b'early'")


@check("SIG-2.2", "ConsumeEvent pops the oldest event; FIFOs are separate per name")
async def _events_are_fifo(t: Trial) -> None:
    instance_id = t.instance()
    for name, payload in (("x", b"1"), ("y", b"other"), ("x", b"2")):
        await send_event(t, instance_id, name, payload)
    popped = []
    for name in ("x", "x", "x", "y"):
        answer = await t.ok(
            t.stubs.signals.ConsumeEvent, rr.ConsumeEventRequest(instance_id=instance_id, signal_name=name)
        )
        popped.append(answer.payload if answer.HasField("payload") else None)
    t.expect(popped == [b"1", b"2", None, b"other"], "x: b'1', b'2', then none; y: b'other'")


@check("SIG-2.3", "an empty event payload comes back present and empty")
async def _empty_payload(t: Trial) -> None:
    instance_id = t.instance()
    await send_event(t, instance_id, "go", b"")
    answer = await t.ok(t.stubs.signals.ConsumeEvent, rr.ConsumeEventRequest(instance_id=instance_id, signal_name="go"))
    t.expect(answer.HasField("payload") and answer.payload == b"", "payload present and empty")


@check("SIG-2.5", "SendEvent advances a run waiting at AtSignal for it at once, and announces the next task")
async def _event_advances_waiting_run(t: Trial) -> None:
    tag = t.tag()
    waiting = build.in_progress(
        t.instance(), t.definition, build.at_signal("go", None, "after"), outputs={"a": b"out-a"}, tags=[tag]
    )
    await save(t, waiting)
    async with Watch(t, [tag]) as watch:
        before = build.now()
        await send_event(t, waiting.instance_id, "go", b"payload")
        after = build.now()
        stored = await load(t, waiting.instance_id)
        signal_task = build.task_id("go")
        state = stored.in_progress
        t.expect(
            build.state_of(stored) == "in_progress"
            and state.position == build.at_task("after")
            and {r.task_id: r.output for r in state.completed_tasks}
            == {build.task_id("a"): b"out-a", signal_task: b"payload"}
            and state.last_completed_task_id == signal_task
            and before - t.settings.clock_slack <= build.moment(stored.updated_at) <= after + t.settings.clock_slack,
            "at once, without a find: AtTask(after), the payload recorded under SHA-256('go') and last completed, "
            "updated_at = now (DISP-2.2)",
        )
        left = await t.ok(
            t.stubs.signals.ConsumeEvent, rr.ConsumeEventRequest(instance_id=waiting.instance_id, signal_name="go")
        )
        t.expect(not left.HasField("payload"), "the event consumed by the advancement, none left buffered")
        hint = await watch.hint_for(waiting.instance_id)
        t.expect(
            hint is not None and hint.task_id == build.task_id("after"),
            f"the hint of the task that became ready (WAKE-1.1); {watch.describe()}",
        )
    done = build.in_progress(t.instance(), t.definition, build.at_signal("go", None, None))
    await save(t, done)
    await send_event(t, done.instance_id, "go", b"the end")
    stored = await load(t, done.instance_id)
    t.expect(
        build.state_of(stored) == "completed" and stored.completed.final_output == b"the end",
        "without next_task_id: Completed with final_output = the payload",
    )


@check("SIG-2.5", "SendEvent for a run with a pending request, or under another name, only buffers the event")
async def _event_buffered_when_not_awaited(t: Trial) -> None:
    other = build.in_progress(t.instance(), t.definition, build.at_signal("go", None, "after"))
    await save(t, other)
    await send_event(t, other.instance_id, "not go", b"x")
    t.expect(await load(t, other.instance_id) == other, "an event under another name: the snapshot unchanged")
    held = build.in_progress(t.instance(), t.definition, build.at_signal("go", None, "after"))
    await save(t, held)
    await hold(t, held.instance_id, "go")  # SIG-9.2: held, the pause stays pending
    await store_signal(t, held.instance_id, PAUSE)
    await send_event(t, held.instance_id, "go", b"held")
    t.expect(await load(t, held.instance_id) == held, "a pending request: the snapshot unchanged (DISP-2.4)")
    left = await t.ok(
        t.stubs.signals.ConsumeEvent, rr.ConsumeEventRequest(instance_id=held.instance_id, signal_name="go")
    )
    t.expect(left.payload == b"held", "the event still buffered")


@check("SIG-3.1", "CheckAndCancel applies a pending cancel to an InProgress run")
async def _check_and_cancel_applies(t: Trial) -> None:
    snapshot = await _in_progress(t, {"a": b"out-a"})
    await hold(t, snapshot.instance_id, "b")  # SIG-9.2: held, the request waits for the check
    await t.ok(t.stubs.signals.StoreSignal, _store(snapshot.instance_id, CANCEL, "enough"))
    before = build.now()
    request = rr.CheckAndCancelRequest(instance_id=snapshot.instance_id, interrupted_at_task=build.task_id("b"))
    answer = await t.ok(t.stubs.signals.CheckAndCancel, request)
    after = build.now()
    t.expect(answer.cancelled, "cancelled = true")
    stored = await load(t, snapshot.instance_id)
    state = stored.cancelled
    slack = t.settings.clock_slack
    t.expect(
        build.state_of(stored) == "cancelled"
        and state.reason == "enough"
        and state.cancelled_by == "sayiir-conformance"
        and list(state.completed_tasks) == list(snapshot.in_progress.completed_tasks)
        and state.interrupted_at_task == build.task_id("b")
        and not stored.HasField("task_deadline")
        and before - slack <= build.moment(state.cancelled_at) <= after + slack
        and before - slack <= build.moment(stored.updated_at) <= after + slack,
        "Cancelled{reason 'enough', cancelled_by, cancelled_at = now, completed_tasks kept, interrupted_at_task = b}, "
        "task_deadline cleared, updated_at = now",
    )
    t.expect(not (await get_signal(t, snapshot.instance_id, CANCEL)).HasField("request"), "the request cleared")


@check("SIG-3.2", "CheckAndCancel without a pending cancel, or of a Paused run, answers false and keeps the request")
async def _check_and_cancel_declines(t: Trial) -> None:
    snapshot = await _in_progress(t)
    answer = await t.ok(t.stubs.signals.CheckAndCancel, rr.CheckAndCancelRequest(instance_id=snapshot.instance_id))
    t.expect(not answer.cancelled, "cancelled = false without a pending cancel")
    missing = await t.ok(t.stubs.signals.CheckAndCancel, rr.CheckAndCancelRequest(instance_id=t.instance()))
    t.expect(not missing.cancelled, "cancelled = false without a snapshot")
    held = build.paused(t.instance(), t.definition, build.at_task("a"))
    await save(t, held)
    await store_signal(t, held.instance_id, CANCEL)
    answer = await t.ok(t.stubs.signals.CheckAndCancel, rr.CheckAndCancelRequest(instance_id=held.instance_id))
    t.expect(not answer.cancelled, "cancelled = false for a Paused run")
    t.expect(await load(t, held.instance_id) == held, "the Paused run unchanged")
    t.expect((await get_signal(t, held.instance_id, CANCEL)).HasField("request"), "the request stays pending")


@check("SIG-4.1", "CheckAndPause applies a pending pause, keeping position, results and last completed task")
async def _check_and_pause_applies(t: Trial) -> None:
    snapshot = await _in_progress(t, {"a": b"out-a"})
    await hold(t, snapshot.instance_id, "b")  # SIG-9.2: held, the request waits for the check
    await t.ok(t.stubs.signals.StoreSignal, _store(snapshot.instance_id, PAUSE, "hold on"))
    answer = await t.ok(t.stubs.signals.CheckAndPause, rr.CheckAndPauseRequest(instance_id=snapshot.instance_id))
    t.expect(answer.paused, "paused = true")
    stored = await load(t, snapshot.instance_id)
    state, before = stored.paused, snapshot.in_progress
    t.expect(
        build.state_of(stored) == "paused"
        and state.reason == "hold on"
        and state.paused_by == "sayiir-conformance"
        and state.HasField("paused_at")
        and state.position == before.position
        and list(state.completed_tasks) == list(before.completed_tasks)
        and state.last_completed_task_id == before.last_completed_task_id
        and not stored.HasField("task_deadline"),
        "Paused{reason, paused_by, paused_at, position, completed_tasks, last_completed_task_id}, deadline cleared",
    )
    t.expect(not (await get_signal(t, snapshot.instance_id, PAUSE)).HasField("request"), "the request cleared")


@check("SIG-4.2", "CheckAndPause without a pending pause answers false and changes nothing")
async def _check_and_pause_declines(t: Trial) -> None:
    snapshot = await _in_progress(t)
    answer = await t.ok(t.stubs.signals.CheckAndPause, rr.CheckAndPauseRequest(instance_id=snapshot.instance_id))
    t.expect(not answer.paused, "paused = false")
    t.expect(await load(t, snapshot.instance_id) == snapshot, "the snapshot unchanged")


@check("SIG-5.1", "CheckControlSignals applies a pending pause, and answers none without a request")
async def _control_signals(t: Trial) -> None:
    snapshot = await _in_progress(t)
    request = rr.CheckControlSignalsRequest(instance_id=snapshot.instance_id)
    t.expect(not (await t.ok(t.stubs.signals.CheckControlSignals, request)).HasField("control_signal"), "none")
    await hold(t, snapshot.instance_id, "b")  # SIG-9.2: held, the request waits for the check
    await store_signal(t, snapshot.instance_id, PAUSE)
    answer = await t.ok(t.stubs.signals.CheckControlSignals, request)
    t.expect(answer.control_signal == enums.CONTROL_SIGNAL_PAUSED, "CONTROL_SIGNAL_PAUSED")
    t.expect(build.state_of(await load(t, snapshot.instance_id)) == "paused", "the run Paused")


@check("SIG-5.2", "with a cancel and a pause pending, CheckControlSignals cancels and the pause stays pending")
async def _cancel_wins(t: Trial) -> None:
    snapshot = await _in_progress(t)
    await hold(t, snapshot.instance_id, "b")  # SIG-9.2: held, both requests wait for the check
    await store_signal(t, snapshot.instance_id, PAUSE)
    await store_signal(t, snapshot.instance_id, CANCEL)
    request = rr.CheckControlSignalsRequest(instance_id=snapshot.instance_id, interrupted_at_task=build.task_id("b"))
    answer = await t.ok(t.stubs.signals.CheckControlSignals, request)
    t.expect(answer.control_signal == enums.CONTROL_SIGNAL_CANCELLED, "CONTROL_SIGNAL_CANCELLED")
    t.expect(build.state_of(await load(t, snapshot.instance_id)) == "cancelled", "the run Cancelled")
    t.expect((await get_signal(t, snapshot.instance_id, PAUSE)).HasField("request"), "the pause request stays")


@check("SIG-6.1", "Unpause restores the paused InProgress state and returns what LoadSnapshot returns")
async def _unpause_restores(t: Trial) -> None:
    snapshot = await _in_progress(t, {"a": b"out-a"})
    await hold(t, snapshot.instance_id, "b")  # SIG-9.2: held, the pause waits for CheckAndPause
    await store_signal(t, snapshot.instance_id, PAUSE)
    paused = await t.ok(t.stubs.signals.CheckAndPause, rr.CheckAndPauseRequest(instance_id=snapshot.instance_id))
    t.expect(paused.paused, "SIG-4.1: paused = true")
    answer = await t.ok(t.stubs.signals.Unpause, rr.UnpauseRequest(instance_id=snapshot.instance_id))
    resumed = answer.snapshot
    t.expect(
        build.state_of(resumed) == "in_progress" and resumed.in_progress == snapshot.in_progress,
        "InProgress with the paused position, completed_tasks and last_completed_task_id",
    )
    t.expect(await load(t, snapshot.instance_id) == resumed, "LoadSnapshot returns the snapshot Unpause returned")


@check("SIG-6.2", "Unpause of a run that is not Paused is CANNOT_PAUSE naming its state")
async def _unpause_refused(t: Trial) -> None:
    snapshot = build.completed(t.instance(), t.definition)
    await save(t, snapshot)
    request = rr.UnpauseRequest(instance_id=snapshot.instance_id)
    refusal = await t.refused(t.stubs.signals.Unpause, request, REFUSED, "CANNOT_PAUSE", {"state": "Completed"})
    t.expect("Completed" in refusal.message, "a message naming the state Completed")
    t.expect(await load(t, snapshot.instance_id) == snapshot, "nothing changes")


@check("SIG-6.3", "Unpause without a snapshot is NOT_FOUND")
async def _unpause_not_found(t: Trial) -> None:
    request = rr.UnpauseRequest(instance_id=t.instance())
    await t.refused(t.stubs.signals.Unpause, request, grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


@check("SIG-6.4", "a cancel stored while Paused stays pending; Unpause of a run nobody holds returns it Cancelled")
async def _cancel_after_unpause(t: Trial) -> None:
    snapshot = build.paused(t.instance(), t.definition, build.at_task("a"))
    await save(t, snapshot)
    await store_signal(t, snapshot.instance_id, CANCEL)
    t.expect((await get_signal(t, snapshot.instance_id, CANCEL)).HasField("request"), "the cancel pending while Paused")
    t.expect(build.state_of(await load(t, snapshot.instance_id)) == "paused", "still Paused (SIG-9.5)")
    answer = await t.ok(t.stubs.signals.Unpause, rr.UnpauseRequest(instance_id=snapshot.instance_id))
    t.expect(build.state_of(answer.snapshot) == "cancelled", "Unpause returns the Cancelled snapshot (SIG-9.4)")
    t.expect(
        await load(t, snapshot.instance_id) == answer.snapshot, "LoadSnapshot returns the snapshot Unpause returned"
    )
    t.expect(not (await get_signal(t, snapshot.instance_id, CANCEL)).HasField("request"), "the request cleared")


@check("SIG-6.4", "a cancel stored while Paused stays pending through Unpause of a held run, for its holder's check")
async def _cancel_after_unpause_held(t: Trial) -> None:
    snapshot = build.paused(t.instance(), t.definition, build.at_task("a"))
    await save(t, snapshot)
    await hold(t, snapshot.instance_id, "a")
    await store_signal(t, snapshot.instance_id, CANCEL)
    answer = await t.ok(t.stubs.signals.Unpause, rr.UnpauseRequest(instance_id=snapshot.instance_id))
    t.expect(build.state_of(answer.snapshot) == "in_progress", "Unpause of a held run returns it InProgress (SIG-9.2)")
    t.expect((await get_signal(t, snapshot.instance_id, CANCEL)).HasField("request"), "the cancel still pending")
    checked = await t.ok(t.stubs.signals.CheckAndCancel, rr.CheckAndCancelRequest(instance_id=snapshot.instance_id))
    t.expect(checked.cancelled, "cancelled = true at the holder's first check")


@check("SIG-7.1", "of 8 concurrent CheckAndCancel calls exactly one applies the cancel")
async def _check_and_cancel_is_atomic(t: Trial) -> None:
    snapshot = await _in_progress(t)
    await hold(t, snapshot.instance_id, "b")  # SIG-9.2: held, the request waits for the checks
    await store_signal(t, snapshot.instance_id, CANCEL)
    request = rr.CheckAndCancelRequest(instance_id=snapshot.instance_id)
    answers = await asyncio.gather(*(t.attempt(t.stubs.signals.CheckAndCancel, request) for _ in range(8)))
    applied = [a for a in answers if isinstance(a, rr.CheckAndCancelResponse) and a.cancelled]
    t.expect(
        len(applied) == 1 and not any(isinstance(a, Refusal) for a in answers),
        f"exactly one cancelled = true and seven false (got {len(applied)} true)",
    )


@check("SIG-7.1", "of 8 concurrent Unpause calls exactly one resumes, the others are CANNOT_PAUSE")
async def _unpause_is_atomic(t: Trial) -> None:
    snapshot = build.paused(t.instance(), t.definition, build.at_task("a"))
    await save(t, snapshot)
    request = rr.UnpauseRequest(instance_id=snapshot.instance_id)
    answers = await asyncio.gather(*(t.attempt(t.stubs.signals.Unpause, request) for _ in range(8)))
    resumed = [a for a in answers if isinstance(a, rr.UnpauseResponse)]
    refused = [a for a in answers if isinstance(a, Refusal) and a.reason == "CANNOT_PAUSE"]
    t.expect(
        len(resumed) == 1 and len(refused) == 7,
        f"one snapshot and seven CANNOT_PAUSE (got {len(resumed)} and {len(refused)})",
    )


@check("SIG-9.1", "a cancel of a run nobody holds applies at once, as CheckControlSignals would")
async def _unheld_cancel_applies(t: Trial) -> None:
    snapshot = await _in_progress(t, {"a": b"out-a"})
    before = build.now()
    await t.ok(t.stubs.signals.StoreSignal, _store(snapshot.instance_id, CANCEL, "enough"))
    after = build.now()
    stored = await load(t, snapshot.instance_id)
    state, slack = stored.cancelled, t.settings.clock_slack
    t.expect(
        build.state_of(stored) == "cancelled"
        and state.reason == "enough"
        and state.cancelled_by == "sayiir-conformance"
        and list(state.completed_tasks) == list(snapshot.in_progress.completed_tasks)
        and not state.HasField("interrupted_at_task")
        and not stored.HasField("task_deadline")
        and before - slack <= build.moment(state.cancelled_at) <= after + slack,
        "Cancelled at once {reason 'enough', cancelled_by, cancelled_at = now, completed_tasks kept, "
        "no interrupted_at_task}, task_deadline cleared (SIG-3.1)",
    )
    t.expect(not (await get_signal(t, snapshot.instance_id, CANCEL)).HasField("request"), "the request consumed")


@check("SIG-9.1", "a pause of a waiting run held only by an expired claim applies at once, keeping its position")
async def _unheld_pause_applies(t: Trial) -> None:
    waiting = build.in_progress(
        t.instance(), t.definition, build.at_signal("go", None, "after"), outputs={"a": b"out-a"}, last_completed="a"
    )
    await save(t, waiting)
    expired = await claim(t, waiting.instance_id, build.task_id("go"), t.worker(), timedelta(0))
    t.expect(expired.HasField("claim"), "a claim with ttl 0, expired at once (CLAIM-1.1)")
    await t.ok(t.stubs.signals.StoreSignal, _store(waiting.instance_id, PAUSE, "hold on"))
    stored = await load(t, waiting.instance_id)
    state = stored.paused
    t.expect(
        build.state_of(stored) == "paused"
        and state.reason == "hold on"
        and state.position == waiting.in_progress.position
        and list(state.completed_tasks) == list(waiting.in_progress.completed_tasks)
        and state.last_completed_task_id == build.task_id("a"),
        "Paused at once with the AtSignal position, completed_tasks and last_completed_task_id (SIG-4.1)",
    )
    t.expect(not (await get_signal(t, waiting.instance_id, PAUSE)).HasField("request"), "the request consumed")


@check("SIG-9.2", "with a live claim a cancel stays pending; ReleaseTaskClaim then applies it")
async def _held_cancel_waits_for_release(t: Trial) -> None:
    snapshot = await _in_progress(t)
    holder = await hold(t, snapshot.instance_id, "b")
    await store_signal(t, snapshot.instance_id, CANCEL)
    t.expect(await load(t, snapshot.instance_id) == snapshot, "the held run unchanged")
    t.expect((await get_signal(t, snapshot.instance_id, CANCEL)).HasField("request"), "the cancel pending")
    release = rr.ReleaseTaskClaimRequest(instance_id=snapshot.instance_id, task_id=build.task_id("b"), worker_id=holder)
    await t.ok(t.stubs.claims.ReleaseTaskClaim, release)
    t.expect(build.state_of(await load(t, snapshot.instance_id)) == "cancelled", "Cancelled once the claim ended")
    t.expect(not (await get_signal(t, snapshot.instance_id, CANCEL)).HasField("request"), "the request consumed")


@check("SIG-9.2", "with a live claim a pause stays pending; a CompleteTask that saved then applies it")
async def _held_pause_waits_for_completion(t: Trial) -> None:
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("step"))
    await save(t, snapshot)
    holder = await hold(t, snapshot.instance_id, "step")
    await store_signal(t, snapshot.instance_id, PAUSE)
    t.expect((await get_signal(t, snapshot.instance_id, PAUSE)).HasField("request"), "the pause pending")
    after = build.in_progress(
        snapshot.instance_id, t.definition, build.at_task("next"), outputs={"step": b"out"}, last_completed="step"
    )
    complete = rr.CompleteTaskRequest(snapshot=after, task_id=build.task_id("step"), worker_id=holder)
    t.expect((await t.ok(t.stubs.claims.CompleteTask, complete)).saved, "saved = true")
    stored = await load(t, snapshot.instance_id)
    t.expect(
        build.state_of(stored) == "paused" and stored.paused.position == build.at_task("next"),
        "Paused at the position CompleteTask saved, once its claim ended",
    )
    t.expect(not (await get_signal(t, snapshot.instance_id, PAUSE)).HasField("request"), "the request consumed")
