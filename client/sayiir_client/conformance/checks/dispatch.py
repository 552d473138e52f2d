"""DISP (FindAvailableTasks rules 1 to 5, FindHintedTask) and the MODEL rules dispatch shows.

Every task of these checks carries a tag of its check and is looked for with that tag,
and answers are filtered to the check's own instances: a shared server offers other
programs' untagged tasks too (DISP-3.6). Where the raw answer matters (the limit), the
tasks carry an updated_at in year 1, which makes them more urgent than any real task.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sayiir_client.conformance import _build as build
from sayiir_client.conformance._kit import NotObservableError, Trial, check
from sayiir_client.conformance._steps import (
    CANCEL,
    PAUSE,
    claim,
    find,
    hold,
    instance_ids,
    load,
    ready,
    save,
    send_event,
    store_signal,
    within_slack,
)
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr

PAST = timedelta(seconds=-30)
FUTURE = timedelta(hours=1)


def _hint(snapshot: pb.WorkflowSnapshot, task: str = "step") -> rr.FindHintedTaskRequest:
    return rr.FindHintedTaskRequest(
        hint=pb.TaskWakeupHint(
            instance_id=snapshot.instance_id,
            task_id=build.task_id(task),
            definition_hash=snapshot.definition_hash,
            task_tags=snapshot.task_tags,
        )
    )


async def _advance(t: Trial, tag: str) -> None:
    """Run dispatch once (any FindAvailableTasks advances every due instance, DISP-2)."""
    await find(t, t.worker(), [tag])


async def _waiting(
    t: Trial,
    tag: str,
    position: pb.ExecutionPosition,
    outputs: dict[str, bytes] | None = None,
    last_completed: str | None = None,
) -> pb.WorkflowSnapshot:
    """Save a new InProgress instance of this check, tagged `tag`, at `position`."""
    snapshot = build.in_progress(
        t.instance(), t.definition, position, outputs=outputs, last_completed=last_completed, tags=[tag]
    )
    await save(t, snapshot)
    return snapshot


async def due_pair(t: Trial) -> tuple[pb.WorkflowSnapshot, pb.WorkflowSnapshot]:
    """Two instances due to advance: a control, saved first, and the one a check calls something on.

    Each waits at AtSignal("go") without a timeout, with its event buffered before the snapshot was saved: only a
    find advances it (DISP-2.2). A due delay would not do, as the server's own timer advances it (WAKE-5.1), and
    an event sent to the waiting run would advance it at once (SIG-2.5)."""
    pair = []
    for _ in range(2):
        instance_id = t.instance()
        await send_event(t, instance_id, "go", b"due")
        snapshot = build.in_progress(instance_id, t.definition, build.at_signal("go", None, "after"))
        await save(t, snapshot)
        pair.append(snapshot)
    return pair[0], pair[1]


async def expect_not_advanced(t: Trial, due: pb.WorkflowSnapshot, control: pb.WorkflowSnapshot) -> None:
    """`due` is unchanged, unless another program's dispatch advanced both it and the control."""
    call = t.last
    if await load(t, due.instance_id) == due:
        return
    if await load(t, control.instance_id) != control:
        raise NotObservableError("another program's dispatch advanced the due runs meanwhile")
    t.fail("the snapshot unchanged: the call advanced the due run (the untouched control was not)", call)


@check("DISP-1.1", "FindAvailableTasks deletes expired claims")
async def _expired_claims_deleted(t: Trial) -> None:
    instance_id, holder, tag = t.instance(), t.worker(), t.tag()
    await claim(t, instance_id, build.task_id("step"), holder, timedelta(milliseconds=100))
    await asyncio.sleep(0.3)
    await _advance(t, tag)
    request = rr.ReleaseTaskClaimRequest(instance_id=instance_id, task_id=build.task_id("step"), worker_id=holder)
    refusal = await t.attempt(t.stubs.claims.ReleaseTaskClaim, request)
    t.expect(
        not isinstance(refusal, rr.ReleaseTaskClaimResponse) and refusal.reason == "NOT_FOUND",
        "NOT_FOUND: the expired claim was deleted by FindAvailableTasks (CLAIM-4.1)",
    )


@check("DISP-2.1", "a due delay moves to its next task; without one the run completes with the delay's output")
async def _due_delay_advances(t: Trial) -> None:
    tag = t.tag()
    onward = await _waiting(
        t, tag, build.at_delay("nap", build.now() + PAST, "after"), outputs={"a": b"out-a"}, last_completed="a"
    )
    last = await _waiting(t, tag, build.at_delay("nap", build.now() + PAST, None), outputs={"nap": b"slept"})
    before = build.now()
    offered = await find(t, t.worker(), [tag])
    after = build.now()
    moved = await load(t, onward.instance_id)
    t.expect(
        moved.in_progress.position == build.at_task("after")
        and moved.in_progress.last_completed_task_id == build.task_id("a")
        and within_slack(t, moved.updated_at, before, after),
        "AtTask(after), last_completed_task_id unchanged (a), updated_at = now",
    )
    t.expect(onward.instance_id in instance_ids(offered), "the task after the delay offered in the same call")
    done = await load(t, last.instance_id)
    t.expect(
        build.state_of(done) == "completed" and done.completed.final_output == b"slept",
        "Completed with final_output = the output of the delay's entry (b'slept')",
    )


@check("DISP-2.1", "a delay not yet due is not advanced")
async def _delay_not_due(t: Trial) -> None:
    tag = t.tag()
    snapshot = await _waiting(t, tag, build.at_delay("nap", build.now() + FUTURE, "after"))
    await _advance(t, tag)
    t.expect(await load(t, snapshot.instance_id) == snapshot, "the snapshot unchanged")


@check("DISP-2.2", "a signal wait with buffered events consumes the oldest one as the wait's result")
async def _signal_wait_consumes_oldest(t: Trial) -> None:
    tag = t.tag()
    snapshot = await _waiting(t, tag, build.at_signal("go", None, "after"))
    await send_event(t, snapshot.instance_id, "go", b"first")
    await send_event(t, snapshot.instance_id, "go", b"second")
    await _advance(t, tag)
    state = (await load(t, snapshot.instance_id)).in_progress
    signal_task = build.task_id("go")
    t.expect(
        state.position == build.at_task("after")
        and [(r.task_id, r.output) for r in state.completed_tasks] == [(signal_task, b"first")]
        and state.last_completed_task_id == signal_task,
        "AtTask(after), completed_tasks = [SHA-256('go'): b'first'], last_completed_task_id = SHA-256('go')",
    )
    left = await t.ok(
        t.stubs.signals.ConsumeEvent, rr.ConsumeEventRequest(instance_id=snapshot.instance_id, signal_name="go")
    )
    t.expect(left.payload == b"second", "the later event stays buffered")


@check("DISP-2.2", "a signal wait without a next task completes with the payload")
async def _signal_wait_completes(t: Trial) -> None:
    tag = t.tag()
    snapshot = await _waiting(t, tag, build.at_signal("go", None, None))
    await send_event(t, snapshot.instance_id, "go", b"answer")
    await _advance(t, tag)
    done = await load(t, snapshot.instance_id)
    t.expect(
        build.state_of(done) == "completed" and done.completed.final_output == b"answer",
        "Completed with final_output b'answer'",
    )


@check("DISP-2.3", "a timed-out signal wait advances with an empty payload; other names' events do not count")
async def _signal_timeout(t: Trial) -> None:
    tag = t.tag()
    timed_out = await _waiting(t, tag, build.at_signal("go", build.now() + PAST, "after"))
    waiting = await _waiting(t, tag, build.at_signal("go", build.now() + FUTURE, "after"))
    await send_event(t, waiting.instance_id, "other", b"not this one")
    await _advance(t, tag)
    state = (await load(t, timed_out.instance_id)).in_progress
    t.expect(
        state.position == build.at_task("after")
        and [(r.task_id, r.output) for r in state.completed_tasks] == [(build.task_id("go"), b"")],
        "AtTask(after) with an empty result under SHA-256('go')",
    )
    t.expect(await load(t, waiting.instance_id) == waiting, "the wait with only another name's event unchanged")


@check("DISP-2.4", "a run with a pending cancel or pause is not advanced and its event stays buffered")
async def _signalled_not_advanced(t: Trial) -> None:
    tag = t.tag()
    for kind in (CANCEL, PAUSE):
        snapshot = await _waiting(t, tag, build.at_signal("go", None, "after"))
        # A live claim first, or the request would apply at once (SIG-9.1); then the request: another program's
        # dispatch may run at any moment, and must find it pending.
        await hold(t, snapshot.instance_id, "go")
        await store_signal(t, snapshot.instance_id, kind)
        await send_event(t, snapshot.instance_id, "go", b"held")
        await _advance(t, tag)
        t.expect(await load(t, snapshot.instance_id) == snapshot, "the snapshot unchanged")
        left = await t.ok(
            t.stubs.signals.ConsumeEvent, rr.ConsumeEventRequest(instance_id=snapshot.instance_id, signal_name="go")
        )
        t.expect(left.payload == b"held", "the event still buffered")


@check("DISP-2.5", "a fork, a join or a loop is never advanced, whatever its wake_at")
async def _other_positions_stay(t: Trial) -> None:
    tag = t.tag()
    fork = pb.ExecutionPosition(
        at_fork=pb.AtFork(fork_id=build.task_id("fork"), wake_at=build.timestamp(build.now() + PAST))
    )
    join = pb.ExecutionPosition(at_join=pb.AtJoin(join_id=build.task_id("join")))
    loop = pb.ExecutionPosition(in_loop=pb.InLoop(loop_id=build.task_id("loop"), iteration=2))
    snapshots = [await _waiting(t, tag, position) for position in (fork, join, loop)]
    offered = await find(t, t.worker(), [tag])
    for snapshot in snapshots:
        t.expect(await load(t, snapshot.instance_id) == snapshot, "the snapshot unchanged")
    t.expect(not offered, "no task offered")


@check("DISP-3.1", "only an InProgress run at AtTask offers its task")
async def _only_at_task(t: Trial) -> None:
    tag = t.tag()
    offered = await ready(t, tags=[tag])
    others = [
        build.in_progress(t.instance(), t.definition, build.at_delay("nap", build.now() + FUTURE, "x"), tags=[tag]),
        build.completed(t.instance(), t.definition),
        build.paused(t.instance(), t.definition, build.at_task("step")),
    ]
    for snapshot in others:
        snapshot.task_tags.append(tag)
        await save(t, snapshot)
    t.expect(instance_ids(await find(t, t.worker(), [tag])) == [offered.instance_id], "only the AtTask run offered")


@check("DISP-3.2", "a run with a pending cancel or pause offers nothing")
async def _signalled_not_offered(t: Trial) -> None:
    tag = t.tag()
    offered = await ready(t, tags=[tag])
    for kind in (CANCEL, PAUSE):
        signalled = await ready(t, tags=[tag])
        # Held by a claim on another of its tasks (SIG-9.2): the request stays pending, the ready task unclaimed.
        await hold(t, signalled.instance_id, "branch")
        await store_signal(t, signalled.instance_id, kind)
    t.expect(instance_ids(await find(t, t.worker(), [tag])) == [offered.instance_id], "only the unsignalled run")


@check("DISP-3.3", "a task already among completed_tasks is not offered")
async def _completed_task_not_offered(t: Trial) -> None:
    tag = t.tag()
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("step"), outputs={"step": b"x"}, tags=[tag])
    await save(t, snapshot)
    t.expect(not await find(t, t.worker(), [tag]), "no task offered")


@check("DISP-3.4", "a live claim hides the task; an expired claim or a claim on another task does not")
async def _claims_hide(t: Trial) -> None:
    tag = t.tag()
    hidden, expired, elsewhere = [await ready(t, tags=[tag]) for _ in range(3)]
    step = build.task_id("step")
    await claim(t, hidden.instance_id, step, t.worker(), FUTURE)
    await claim(t, expired.instance_id, step, t.worker(), timedelta(0))
    await claim(t, elsewhere.instance_id, build.task_id("other"), t.worker(), FUTURE)
    found = set(instance_ids(await find(t, t.worker(), [tag])))
    t.expect(
        found == {expired.instance_id, elsewhere.instance_id},
        "offered: the runs with an expired claim and with a claim on another task; not the live-claimed one",
    )


@check("DISP-3.5", "a task waits out its retry backoff")
async def _retry_backoff(t: Trial) -> None:
    tag = t.tag()
    snapshots = []
    for delay in (FUTURE, PAST, None):
        snapshot = build.in_progress(t.instance(), t.definition, build.at_task("step"), tags=[tag])
        retry = pb.TaskRetryState(task_id=build.task_id("step"), attempts=1, last_error="boom")
        if delay is not None:
            retry.next_retry_at.CopyFrom(build.timestamp(build.now() + delay))
        snapshot.task_retries.append(retry)
        await save(t, snapshot)
        snapshots.append(snapshot)
    found = set(instance_ids(await find(t, t.worker(), [tag])))
    t.expect(
        found == {snapshots[1].instance_id, snapshots[2].instance_id},
        "offered: next_retry_at past, and no next_retry_at; not next_retry_at in an hour",
    )


@check("DISP-3.6", "tags fit when every task tag is among the worker's, or either side has none")
async def _tags_fit(t: Trial) -> None:
    mine, more, extra = t.tag(), t.tag(), t.tag()
    fits = await ready(t, tags=[mine])
    too_many = await ready(t, tags=[mine, extra])
    untagged = await ready(t)
    found = set(instance_ids(await find(t, t.worker(), [mine, more])))
    t.expect(
        found == {fits.instance_id, untagged.instance_id},
        f"worker [{mine}, {more}] offered the task tagged [{mine}] and the untagged one, not [{mine}, {extra}]",
    )
    for snapshot in (fits, too_many, untagged):
        untagged_worker = await find(t, t.worker(), [])
        t.expect(snapshot.instance_id in instance_ids(untagged_worker), "a worker without tags is offered every task")


@check("DISP-3.7", "a candidate without an input is skipped")
async def _no_input_skipped(t: Trial) -> None:
    tag = t.tag()
    bare = build.in_progress(t.instance(), t.definition, build.at_task("step"), initial_input=None, tags=[tag])
    dangling = build.in_progress(t.instance(), t.definition, build.at_task("step"), last_completed="gone", tags=[tag])
    for snapshot in (bare, dangling):
        await save(t, snapshot)
    t.expect(not await find(t, t.worker(), [tag]), "no task offered: neither has an input (MODEL-1.3)")


@check("DISP-3.8", "an AvailableTask carries instance, task, input, definition hash, trace parent and the snapshot")
async def _available_task_fields(t: Trial) -> None:
    tag = t.tag()
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("step"), tags=[tag])
    snapshot.trace_parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await save(t, snapshot)
    found = await find(t, t.worker(), [tag])
    t.expect(len(found) == 1, "one task offered")
    task = found[0]
    t.expect(
        task.instance_id == snapshot.instance_id
        and task.task_id == build.task_id("step")
        and task.definition_hash == snapshot.definition_hash
        and task.trace_parent == snapshot.trace_parent
        and task.snapshot == snapshot,
        "instance_id, task_id = step, definition_hash, trace_parent (MODEL-3.2) and the stored snapshot",
    )
    t.expect(
        task.input == build.INPUT or (task.input_in_snapshot and not task.input),
        "input = the initial input, or input_in_snapshot with the input left to the snapshot (SIZE-1.1)",
    )


@check("DISP-3.9", "FindAvailableTasks claims nothing: two workers are offered the same task")
async def _find_claims_nothing(t: Trial) -> None:
    tag = t.tag()
    snapshot = await ready(t, tags=[tag])
    for _ in range(2):
        t.expect(instance_ids(await find(t, t.worker(), [tag])) == [snapshot.instance_id], "the task offered")
    t.expect((await claim(t, snapshot.instance_id, build.task_id("step"), t.worker())).HasField("claim"), "claimable")


@check("MODEL-1.3", "the input of a task is the output of the last completed task")
async def _input_after_a_task(t: Trial) -> None:
    tag = t.tag()
    snapshot = build.in_progress(
        t.instance(),
        t.definition,
        build.at_task("b"),
        outputs={"a": b"out-a", "z": b"z"},
        last_completed="a",
        tags=[tag],
    )
    await save(t, snapshot)
    found = await find(t, t.worker(), [tag])
    t.expect(len(found) == 1, "one task offered")
    task = found[0]
    t.expect(
        task.input == b"out-a" or (task.input_in_snapshot and build.expected_input(task.snapshot) == b"out-a"),
        "input b'out-a' (directly, or through the snapshot with input_in_snapshot)",
    )


@check("DISP-4.1", "tasks the asking worker was the last to fail come after all others")
async def _anti_affinity(t: Trial) -> None:
    tag, me = t.tag(), t.worker()
    failed_by_me = build.in_progress(t.instance("a"), t.definition, build.at_task("step"), priority=1, tags=[tag])
    failed_by_me.task_retries.append(
        pb.TaskRetryState(task_id=build.task_id("step"), attempts=1, last_error="boom", last_failed_worker=me)
    )
    other = build.in_progress(t.instance("b"), t.definition, build.at_task("step"), priority=5, tags=[tag])
    for snapshot in (failed_by_me, other):
        await save(t, snapshot)
    order = instance_ids(await find(t, me, [tag]))
    t.expect(order == [other.instance_id, failed_by_me.instance_id], "the priority-5 task first, then mine")
    order = instance_ids(await find(t, t.worker(), [tag]))
    t.expect(order == [failed_by_me.instance_id, other.instance_id], "for another worker: priority order")


@check("DISP-4.2", "ascending priority, an absent priority counting as 3 (MODEL-1.2)")
async def _priority_order(t: Trial) -> None:
    tag, moment = t.tag(), build.now()
    low = build.in_progress(
        t.instance("a"), t.definition, build.at_task("step"), priority=5, tags=[tag], updated_at=moment
    )
    plain = build.in_progress(t.instance("b"), t.definition, build.at_task("step"), tags=[tag], updated_at=moment)
    high = build.in_progress(
        t.instance("c"), t.definition, build.at_task("step"), priority=1, tags=[tag], updated_at=moment
    )
    four = build.in_progress(
        t.instance("d"), t.definition, build.at_task("step"), priority=4, tags=[tag], updated_at=moment
    )
    for snapshot in (low, plain, high, four):
        await save(t, snapshot)
    order = instance_ids(await find(t, t.worker(), [tag]))
    t.expect(
        order == [high.instance_id, plain.instance_id, four.instance_id, low.instance_id],
        "priority 1, absent (3), 4, 5",
    )


async def _aged_pair(t: Trial, tag: str, waited: timedelta) -> tuple[str, str]:
    """A priority-5 task updated `waited` before a fresh priority-1 one; their ids, old first."""
    moment = build.now()
    old = build.in_progress(
        t.instance("z"), t.definition, build.at_task("step"), priority=5, tags=[tag], updated_at=moment - waited
    )
    fresh = build.in_progress(
        t.instance("a"), t.definition, build.at_task("step"), priority=1, tags=[tag], updated_at=moment
    )
    for snapshot in (old, fresh):
        await save(t, snapshot)
    return old.instance_id, fresh.instance_id


async def _order(t: Trial, tag: str, aging: timedelta | None) -> list[str]:
    return instance_ids(await find(t, t.worker(), [tag], aging_interval=aging))


@check("DISP-4.2", "aging: a long-waiting low-priority task overtakes a fresh urgent one")
async def _aging(t: Trial) -> None:
    tag = t.tag()
    old, fresh = await _aged_pair(t, tag, timedelta(seconds=30))
    t.expect(await _order(t, tag, timedelta(seconds=5)) == [old, fresh], "aging 5 s: e = 5 - 30/5 = -1 < 1: old first")
    t.expect(await _order(t, tag, timedelta(hours=1)) == [fresh, old], "aging 1 h: e ≈ 5 > 1: fresh first")


@check("DISP-4.3", "an aging interval that is absent, zero, negative or under 1 s counts as 1 s")
async def _aging_clamped(t: Trial) -> None:
    tag = t.tag()
    old, fresh = await _aged_pair(t, tag, timedelta(seconds=3))
    # With a = 1 s: e(old) = 5 - 3 = 2 > 1, fresh first; a true 0.5 s interval would give -1 and put old first.
    for aging in (None, timedelta(0), timedelta(seconds=-5), timedelta(milliseconds=500)):
        t.expect(await _order(t, tag, aging) == [fresh, old], f"aging {aging}: counted as 1 s, the fresh task first")


@check("DISP-4.4", "ties are broken by ascending instance id")
async def _ties(t: Trial) -> None:
    tag, moment = t.tag(), build.now()
    snapshots = [
        build.in_progress(t.instance(label), t.definition, build.at_task("step"), tags=[tag], updated_at=moment)
        for label in ("c", "a", "b")
    ]
    for snapshot in snapshots:
        await save(t, snapshot)
    order = instance_ids(await find(t, t.worker(), [tag]))
    t.expect(order == sorted(s.instance_id for s in snapshots), "ascending instance id")


@check("DISP-5.1", "at most `limit` tasks, the first ones in dispatch order")
async def _limit(t: Trial) -> None:
    tag = t.tag()
    snapshots = [
        await ready(t, tags=[tag], updated_at=build.ANCIENT + timedelta(seconds=seconds)) for seconds in (2, 0, 1)
    ]
    answer = await t.ok(
        t.stubs.claims.FindAvailableTasks,
        rr.FindAvailableTasksRequest(worker_id=t.worker(), limit=2, worker_tags=[tag]),
    )
    t.expect(
        instance_ids(answer.tasks) == [snapshots[1].instance_id, snapshots[2].instance_id],
        "exactly the two most urgent tasks (waiting since year 1), most urgent first",
    )


@check("DISP-6.1", "FindHintedTask returns the available task a hint names, and none once it is not available")
async def _hinted_task(t: Trial) -> None:
    snapshot = await ready(t)
    found = await t.ok(t.stubs.claims.FindHintedTask, _hint(snapshot))
    t.expect(found.task.instance_id == snapshot.instance_id and found.task.snapshot == snapshot, "the AvailableTask")
    claimed, signalled, moved = await ready(t), await ready(t), await ready(t)
    await claim(t, claimed.instance_id, build.task_id("step"), t.worker(), FUTURE)
    await hold(t, signalled.instance_id, "branch")  # SIG-9.2: the pause stays pending, "step" unclaimed
    await store_signal(t, signalled.instance_id, PAUSE)
    await save(t, build.in_progress(moved.instance_id, t.definition, build.at_task("next")))
    gone = pb.WorkflowSnapshot(instance_id=t.instance(), definition_hash=t.definition)
    for case, hinted in (("claimed", claimed), ("signalled", signalled), ("moved on", moved), ("missing", gone)):
        answer = await t.ok(t.stubs.claims.FindHintedTask, _hint(hinted))
        t.expect(not answer.HasField("task"), f"no task ({case}), never NOT_FOUND")


@check("DISP-6.2", "FindHintedTask matches neither the hint's tags nor its definition hash")
async def _hint_fields_not_compared(t: Trial) -> None:
    snapshot = await ready(t, tags=[t.tag()])
    request = _hint(snapshot)
    request.hint.definition_hash = build.task_id("another definition")
    request.hint.task_tags[:] = [t.tag()]
    found = await t.ok(t.stubs.claims.FindHintedTask, request)
    t.expect(found.task.instance_id == snapshot.instance_id, "the AvailableTask all the same")


@check("DISP-6.3", "FindHintedTask claims nothing and advances nothing")
async def _hint_changes_nothing(t: Trial) -> None:
    snapshot = await ready(t)
    await t.ok(t.stubs.claims.FindHintedTask, _hint(snapshot))
    t.expect((await claim(t, snapshot.instance_id, build.task_id("step"), t.worker())).HasField("claim"), "claimable")
    control, due = await due_pair(t)
    answer = await t.ok(t.stubs.claims.FindHintedTask, _hint(due, "after"))
    await expect_not_advanced(t, due, control)
    t.expect(not answer.HasField("task"), "no task: the due run was not advanced")
