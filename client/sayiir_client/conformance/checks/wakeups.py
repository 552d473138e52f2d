"""WAKE: task-ready hints, WaitForWakeup and WatchWakeups.

Hints are advisory (WAKE-1.5): these checks assume that on an idle subscription a
hint is delivered within a few seconds. Other programs' untagged tasks fit every
worker (DISP-3.6), so a check ignores hints that are not its own, and retries
when a foreign hint took the one answer WaitForWakeup gives.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sayiir_client.conformance import _build as build
from sayiir_client.conformance._kit import NotObservableError, Trial, check
from sayiir_client.conformance._steps import (
    HINT_WAIT,
    QUIET_WAIT,
    Watch,
    claim,
    find,
    load,
    prepare_run,
    save,
)
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr

ATTEMPTS = 3
"""How often a WaitForWakeup check starts again when another program's hint took its answer."""

SUBSCRIBE_PAUSE = timedelta(milliseconds=200)
"""How long a check lets a WaitForWakeup call reach the server and subscribe before it writes."""


def _fits(hint: pb.TaskWakeupHint, snapshot: pb.WorkflowSnapshot) -> bool:
    return (
        hint.instance_id == snapshot.instance_id
        and hint.task_id == snapshot.in_progress.position.at_task.task_id
        and hint.definition_hash == snapshot.definition_hash
        and list(hint.task_tags) == list(snapshot.task_tags)
    )


async def _expect_hint(t: Trial, watch: Watch, snapshot: pb.WorkflowSnapshot, what: str) -> None:
    hint = await watch.hint_for(snapshot.instance_id)
    t.expect(
        hint is not None and _fits(hint, snapshot),
        f"{what}: a hint {{instance_id, task_id, definition_hash, task_tags}} of the task within {HINT_WAIT}; "
        + watch.describe(),
    )


async def _expect_no_hint(t: Trial, watch: Watch, instance_id: str, control: pb.WorkflowSnapshot, what: str) -> None:
    """No hint for `instance_id`, proved by the hint of a later control write arriving first."""
    await save(t, control)
    await watch.hint_for(control.instance_id)
    await asyncio.sleep(QUIET_WAIT.total_seconds())
    t.expect(not watch.of(instance_id), f"{what}: no hint; " + watch.describe())


@check("WAKE-1.1", "SaveSnapshot leaving a run at a new ready task publishes its hint")
async def _save_publishes(t: Trial) -> None:
    tag = t.tag()
    async with Watch(t, [tag]) as watch:
        snapshot = build.in_progress(t.instance(), t.definition, build.at_task("step"), tags=[tag])
        await save(t, snapshot)
        await _expect_hint(t, watch, snapshot, "after SaveSnapshot")


@check("WAKE-1.1", "PrepareRun's fresh run publishes the hint of its first task")
async def _prepare_run_publishes(t: Trial) -> None:
    tag = t.tag()
    async with Watch(t, [tag]) as watch:
        outcome = await prepare_run(t, t.instance(), tags=[tag])
        t.expect(isinstance(outcome, rr.PrepareRunResponse), "a fresh run")
        assert isinstance(outcome, rr.PrepareRunResponse)
        await _expect_hint(t, watch, outcome.outcome.fresh.snapshot, "after PrepareRun")


@check("WAKE-1.1", "Unpause back to a ready task publishes its hint")
async def _unpause_publishes(t: Trial) -> None:
    tag = t.tag()
    snapshot = build.paused(t.instance(), t.definition, build.at_task("step"))
    snapshot.task_tags.append(tag)
    await save(t, snapshot)
    async with Watch(t, [tag]) as watch:
        resumed = await t.ok(t.stubs.signals.Unpause, rr.UnpauseRequest(instance_id=snapshot.instance_id))
        await _expect_hint(t, watch, resumed.snapshot, "after Unpause")


@check("WAKE-1.1", "a fenced save moving the run on publishes the next task's hint")
async def _fenced_save_publishes(t: Trial) -> None:
    tag, worker = t.tag(), t.worker()
    instance_id = t.instance()
    await save(t, build.in_progress(instance_id, t.definition, build.at_task("step"), tags=[tag]))
    await claim(t, instance_id, build.task_id("step"), worker, timedelta(hours=1))
    async with Watch(t, [tag]) as watch:
        after = build.in_progress(instance_id, t.definition, build.at_task("next"), outputs={"step": b"x"}, tags=[tag])
        request = rr.SaveSnapshotFencedRequest(snapshot=after, task_id=build.task_id("step"), worker_id=worker)
        await t.ok(t.stubs.claims.SaveSnapshotFenced, request)
        await _expect_hint(t, watch, after, "after SaveSnapshotFenced")


@check("DISP-2.6", "a delay advanced to a ready task announces it")
async def _advancement_publishes(t: Trial) -> None:
    tag = t.tag()
    snapshot = build.in_progress(
        t.instance(), t.definition, build.at_delay("nap", build.now() - timedelta(seconds=5), "after"), tags=[tag]
    )
    async with Watch(t, [tag]) as watch:  # open first: another program's dispatch may advance it at once
        await save(t, snapshot)
        await find(t, t.worker(), [tag])
        await _expect_hint(t, watch, await load(t, snapshot.instance_id), "after the delay advanced")


@check("WAKE-1.2", "no hint for a re-save at the same task, a refused fenced save, or SaveTaskResult")
async def _no_hint_without_a_move(t: Trial) -> None:
    tag = t.tag()
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("step"), tags=[tag])
    await save(t, snapshot)
    async with Watch(t, [tag]) as watch:
        await save(t, snapshot)
        moved = build.in_progress(snapshot.instance_id, t.definition, build.at_task("next"), tags=[tag])
        refused = rr.SaveSnapshotFencedRequest(snapshot=moved, task_id=build.task_id("step"), worker_id=t.worker())
        answer = await t.ok(t.stubs.claims.SaveSnapshotFenced, refused)
        t.expect(not answer.saved, "the fenced save without a claim refused")
        result = rr.SaveTaskResultRequest(instance_id=snapshot.instance_id, task_id=build.task_id("x"), output=b"x")
        await t.ok(t.stubs.snapshots.SaveTaskResult, result)
        control = build.in_progress(t.instance(), t.definition, build.at_task("step"), tags=[tag])
        await _expect_no_hint(t, watch, snapshot.instance_id, control, "after the re-save, refused save and result")


async def _wait_for_own_hint(t: Trial, tags: list[str], publish: pb.WorkflowSnapshot) -> rr.WaitForWakeupResponse:
    request = rr.WaitForWakeupRequest(timeout=build.duration(HINT_WAIT), worker_tags=tags)
    waiting = asyncio.create_task(t.ok(t.stubs.claims.WaitForWakeup, request))
    await asyncio.sleep(SUBSCRIBE_PAUSE.total_seconds())
    await save(t, publish)
    return await waiting


@check("WAKE-2.1", "WaitForWakeup returns the first fitting hint published after the call")
async def _wait_returns_hint(t: Trial) -> None:
    tag = t.tag()
    for _ in range(ATTEMPTS):
        snapshot = build.in_progress(t.instance(), t.definition, build.at_task("step"), tags=[tag])
        answer = await _wait_for_own_hint(t, [tag], snapshot)
        t.expect(answer.HasField("hint"), "a hint before the timeout")
        if answer.hint.instance_id == snapshot.instance_id:
            t.expect(_fits(answer.hint, snapshot), "the hint of the saved task")
            return
    raise NotObservableError("every attempt got another program's hint first")


@check("WAKE-2.1", "WaitForWakeup skips hints whose tags do not fit the worker, and answers none after its timeout")
async def _wait_skips_and_times_out(t: Trial) -> None:
    mine, other = t.tag(), t.tag()
    for _ in range(ATTEMPTS):
        unfit = build.in_progress(t.instance(), t.definition, build.at_task("step"), tags=[other])
        request = rr.WaitForWakeupRequest(timeout=build.duration(timedelta(milliseconds=600)), worker_tags=[mine])
        started = asyncio.get_running_loop().time()
        waiting = asyncio.create_task(t.ok(t.stubs.claims.WaitForWakeup, request))
        await asyncio.sleep(SUBSCRIBE_PAUSE.total_seconds())
        await save(t, unfit)
        answer = await waiting
        elapsed = asyncio.get_running_loop().time() - started
        t.expect(answer.hint.instance_id != unfit.instance_id, f"not the hint of a task tagged [{other}]")
        if not answer.HasField("hint"):
            t.expect(0.5 <= elapsed <= 0.6 + 2.0, f"no hint after about the 600 ms timeout (took {elapsed:.2f} s)")
            return
    raise NotObservableError("every attempt got another program's hint before the timeout")


@check("WAKE-2.1", "a hint published before WaitForWakeup is not delivered to it")
async def _earlier_hints_not_delivered(t: Trial) -> None:
    tag = t.tag()
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("step"), tags=[tag])
    await save(t, snapshot)
    request = rr.WaitForWakeupRequest(timeout=build.duration(timedelta(milliseconds=300)), worker_tags=[tag])
    answer = await t.ok(t.stubs.claims.WaitForWakeup, request)
    t.expect(answer.hint.instance_id != snapshot.instance_id, "not the hint of the task saved before the call")


@check("WAKE-2.2", "a WaitForWakeup timeout longer than the server's cap is shortened to the cap")
async def _wait_clamped(t: Trial) -> None:
    cap = t.settings.max_wait_timeout
    if cap is None:
        raise NotObservableError("give --max-wait-timeout (the server's cap) to check it")
    if cap + timedelta(seconds=2) >= t.settings.deadline:
        raise NotObservableError(f"the cap of {cap} needs a --deadline above {cap + timedelta(seconds=2)}")
    request = rr.WaitForWakeupRequest(timeout=build.duration(cap + timedelta(seconds=30)), worker_tags=[t.tag()])
    started = asyncio.get_running_loop().time()
    answer = await t.attempt(t.stubs.claims.WaitForWakeup, request)
    elapsed = asyncio.get_running_loop().time() - started
    t.expect(isinstance(answer, rr.WaitForWakeupResponse), "an answer, not a refusal")
    t.expect(elapsed <= cap.total_seconds() + 2.0, f"an answer within the cap of {cap} (took {elapsed:.2f} s)")


@check("WAKE-3.1", "WatchWakeups streams every later fitting hint, and skips the others")
async def _watch_streams(t: Trial) -> None:
    mine, other = t.tag(), t.tag()
    async with Watch(t, [mine]) as watch:
        first = build.in_progress(t.instance(), t.definition, build.at_task("step"), tags=[mine])
        unfit = build.in_progress(t.instance(), t.definition, build.at_task("step"), tags=[other])
        second = build.in_progress(t.instance(), t.definition, build.at_task("step"), tags=[mine])
        for snapshot in (first, unfit, second):
            await save(t, snapshot)
        await _expect_hint(t, watch, first, "the first write")
        await _expect_hint(t, watch, second, "the second write")
        t.expect(not watch.of(unfit.instance_id), f"no hint of the task tagged [{other}]; " + watch.describe())
