"""CLAIM-AVAIL (ClaimAvailableTasks) and COMPLETE (CompleteTask, CompleteTasks): the two-call worker path.

ClaimAvailableTasks claims for real, so every call names the check's own definition
hash in `definition_hashes`: it can never take another program's task.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sayiir_client.conformance import _build as build
from sayiir_client.conformance._kit import NotObservableError, Trial, check
from sayiir_client.conformance._steps import (
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
)
from sayiir_client.v1 import messages_pb2 as pb
from sayiir_client.v1 import request_response_pb2 as rr

TTL = timedelta(seconds=30)
STEP = build.task_id("step")


def _claim_request(
    t: Trial, worker_id: str, *, limit: int = 100, tags: tuple[str, ...] = (), wait: timedelta | None = None
) -> rr.ClaimAvailableTasksRequest:
    request = rr.ClaimAvailableTasksRequest(
        worker_id=worker_id,
        limit=limit,
        ttl=build.duration(TTL),
        worker_tags=tags,
        definition_hashes=[t.definition],
    )
    if wait is not None:
        request.wait.CopyFrom(build.duration(wait))
    return request


async def _claim_available(
    t: Trial, worker_id: str, *, limit: int = 100, tags: tuple[str, ...] = (), wait: timedelta | None = None
) -> list[pb.ClaimedTask]:
    request = _claim_request(t, worker_id, limit=limit, tags=tags, wait=wait)
    return list((await t.ok(t.stubs.claims.ClaimAvailableTasks, request)).tasks)


def _ids(claimed: list[pb.ClaimedTask]) -> list[str]:
    return [item.task.instance_id for item in claimed]


@check("CLAIM-AVAIL-1.1", "ClaimAvailableTasks claims the most urgent ready tasks for the caller, up to limit")
async def _claims_most_urgent(t: Trial) -> None:
    worker_id = t.worker()
    normal, urgent, lazy = [await ready(t, priority=p) for p in (3, 1, 5)]
    claimed = await _claim_available(t, worker_id, limit=2)
    t.expect(_ids(claimed) == [urgent.instance_id, normal.instance_id], "the priority-1 then the priority-3 task")
    for item, snapshot in zip(claimed, (urgent, normal), strict=True):
        lease = build.moment(item.claim.expires_at) - build.moment(item.claim.claimed_at)
        t.expect(
            (item.claim.instance_id, item.claim.task_id, item.claim.worker_id)
            == (snapshot.instance_id, STEP, worker_id)
            and abs(lease - TTL) <= timedelta(milliseconds=1)
            and item.task.task_id == STEP
            and item.task.snapshot == snapshot,
            "each a claim of the caller with expires_at = claimed_at + ttl, and the AvailableTask (DISP-3.8)",
        )
    again = await claim(t, urgent.instance_id, STEP, t.worker(), TTL)
    t.expect(not again.HasField("claim"), "the claimed task is held: ClaimTask by another worker gets no claim")
    t.expect(instance_ids(await find(t, t.worker(), [])) == [lazy.instance_id], "only the unclaimed task still offered")


@check("CLAIM-AVAIL-1.2", "only ready, unsignalled, unclaimed tasks of the asked definitions and fitting tags")
async def _claims_only_what_fits(t: Trial) -> None:
    mine, other = t.tag(), t.tag()
    fits = await ready(t, tags=[mine])
    await ready(t, tags=[other])
    signalled = await ready(t, tags=[mine])
    await hold(t, signalled.instance_id, "branch")  # SIG-9.2: the pause stays pending, "step" unclaimed
    await store_signal(t, signalled.instance_id, PAUSE)
    held = await ready(t, tags=[mine])
    await claim(t, held.instance_id, STEP, t.worker(), TTL)
    foreign = build.in_progress(t.instance(), build.task_id("another definition"), build.at_task("step"), tags=[mine])
    await save(t, foreign)
    claimed = await _claim_available(t, t.worker(), tags=(mine,))
    t.expect(
        _ids(claimed) == [fits.instance_id],
        "only the task that fits: not another tag's, a paused-pending one, a claimed one, or another definition's",
    )


@check("CLAIM-AVAIL-1.3", "concurrent ClaimAvailableTasks callers never get the same task")
async def _concurrent_claimers(t: Trial) -> None:
    snapshots = [await ready(t) for _ in range(6)]
    answers = await asyncio.gather(*(_claim_available(t, t.worker(), limit=6) for _ in range(4)))
    claimed = [instance_id for answer in answers for instance_id in _ids(answer)]
    t.expect(
        sorted(claimed) == sorted(s.instance_id for s in snapshots),
        f"each of the 6 tasks claimed exactly once (got {sorted(claimed)})",
    )


@check("CLAIM-AVAIL-1.4", "with nothing to claim, ClaimAvailableTasks waits and claims a task that becomes ready")
async def _waiting_claim(t: Trial) -> None:
    worker_id = t.worker()
    waiting = asyncio.create_task(_claim_available(t, worker_id, wait=timedelta(seconds=1)))
    await asyncio.sleep(0.3)
    snapshot = await ready(t)
    claimed = await waiting
    t.expect(_ids(claimed) == [snapshot.instance_id], "the task saved while the call waited, claimed")


@check("CLAIM-AVAIL-1.4", "with nothing to claim, ClaimAvailableTasks answers empty once its wait has passed")
async def _waiting_claim_times_out(t: Trial) -> None:
    started = asyncio.get_running_loop().time()
    claimed = await _claim_available(t, t.worker(), wait=timedelta(milliseconds=400))
    elapsed = asyncio.get_running_loop().time() - started
    t.expect(not claimed, "no task")
    t.expect(0.3 <= elapsed <= 2.4, f"the answer after about the 400 ms wait (took {elapsed:.2f} s)")


@check("CLAIM-AVAIL-1.5", "ClaimAvailableTasks advances a due signal wait first, then claims the task it reaches")
async def _claims_after_advancing(t: Trial) -> None:
    # A wait whose event was buffered before the snapshot was saved: only a find advances it (DISP-2.2). A due delay
    # would race the server's own timer (WAKE-5.1), and an event sent to the waiting run advances it at once (SIG-2.5).
    instance_id = t.instance()
    await send_event(t, instance_id, "go", b"due")
    due = build.in_progress(instance_id, t.definition, build.at_signal("go", None, "step"))
    await save(t, due)
    claimed = await _claim_available(t, t.worker())
    call = t.last
    if not _ids(claimed) and (await load(t, instance_id)).in_progress.position == build.at_task("step"):
        # Another program's find advanced the wait while the call ran (it skips a row being advanced).
        raise NotObservableError("another program's dispatch advanced the due wait meanwhile")
    t.expect(_ids(claimed) == [instance_id], "the task after the wait, claimed", call)


@check("CLAIM-AVAIL-1.6", "ClaimAvailableTasks needs a ttl")
async def _needs_ttl(t: Trial) -> None:
    request = _claim_request(t, t.worker())
    request.ClearField("ttl")
    await t.invalid(t.stubs.claims.ClaimAvailableTasks, request, "ttl")


def _complete(snapshot: pb.WorkflowSnapshot, worker_id: str) -> rr.CompleteTaskRequest:
    return rr.CompleteTaskRequest(snapshot=snapshot, task_id=STEP, worker_id=worker_id)


@check("COMPLETE-1.1", "CompleteTask by the holder saves, releases the claim, and a repeat answers false")
async def _complete_saves_and_releases(t: Trial) -> None:
    instance_id, worker_id = t.instance(), t.worker()
    await save(t, build.in_progress(instance_id, t.definition, build.at_task("step")))
    await claim(t, instance_id, STEP, worker_id, TTL)
    after = build.in_progress(instance_id, t.definition, build.at_task("next"), outputs={"step": b"out"})
    t.expect((await t.ok(t.stubs.claims.CompleteTask, _complete(after, worker_id))).saved, "saved = true")
    t.expect(await load(t, instance_id) == after, "the snapshot saved as sent")
    t.expect(not (await t.ok(t.stubs.claims.CompleteTask, _complete(after, worker_id))).saved, "a repeat: false")
    t.expect((await claim(t, instance_id, STEP, t.worker(), TTL)).HasField("claim"), "the claim released")


@check("COMPLETE-1.2", "CompleteTask without the caller's live claim writes nothing and releases nothing")
async def _complete_refused(t: Trial) -> None:
    for case, ttl in (("another worker's claim", TTL), ("an expired claim", timedelta(0))):
        instance_id, holder = t.instance(), t.worker()
        before = build.in_progress(instance_id, t.definition, build.at_task("step"))
        await save(t, before)
        await claim(t, instance_id, STEP, holder, ttl)
        asker = t.worker() if ttl else holder
        after = build.in_progress(instance_id, t.definition, build.at_task("next"))
        answer = await t.ok(t.stubs.claims.CompleteTask, _complete(after, asker))
        t.expect(not answer.saved, f"saved = false with {case}")
        t.expect(await load(t, instance_id) == before, f"nothing written with {case}")
    held = t.instance()
    await save(t, build.in_progress(held, t.definition, build.at_task("step")))
    await claim(t, held, STEP, t.worker(), TTL)
    await t.ok(t.stubs.claims.CompleteTask, _complete(build.completed(held, t.definition), t.worker()))
    t.expect(not (await claim(t, held, STEP, t.worker(), TTL)).HasField("claim"), "the holder's claim stays")


@check("COMPLETE-1.2", "CompleteTask without any claim answers false")
async def _complete_without_claim(t: Trial) -> None:
    snapshot = build.in_progress(t.instance(), t.definition, build.at_task("step"))
    await save(t, snapshot)
    answer = await t.ok(
        t.stubs.claims.CompleteTask, _complete(build.completed(snapshot.instance_id, t.definition), t.worker())
    )
    t.expect(not answer.saved, "saved = false")
    t.expect(await load(t, snapshot.instance_id) == snapshot, "nothing written")


@check("COMPLETE-2.1", "CompleteTasks answers each completion as CompleteTask would: saved, false, or final_state")
async def _complete_tasks_answers_each(t: Trial) -> None:
    held, other, final = t.instance(), t.instance(), t.instance()
    holder = t.worker()
    for instance_id in (held, other, final):
        await save(t, build.in_progress(instance_id, t.definition, build.at_task("step")))
        await claim(t, instance_id, STEP, holder, TTL)
    await save(t, build.completed(final, t.definition))
    after = build.in_progress(held, t.definition, build.at_task("next"), outputs={"step": b"out"})
    request = rr.CompleteTasksRequest(
        completions=[
            _complete(after, holder),
            _complete(build.completed(other, t.definition), t.worker()),
            _complete(build.completed(final, t.definition), holder),
        ]
    )
    results = list((await t.ok(t.stubs.claims.CompleteTasks, request)).results)
    t.expect([result.saved for result in results] == [True, False, False], "saved = [true, false, false]")
    t.expect([result.final_state for result in results] == ["", "", "Completed"], 'final_state "Completed" last')
    t.expect(await load(t, held) == after, "the first snapshot saved as sent")


@check("COMPLETE-2.2", "CompleteTasks with one invalid completion is INVALID_ARGUMENT and writes none of them")
async def _complete_tasks_refused_whole(t: Trial) -> None:
    instance_id, holder = t.instance(), t.worker()
    before = build.in_progress(instance_id, t.definition, build.at_task("step"))
    await save(t, before)
    await claim(t, instance_id, STEP, holder, TTL)
    broken = rr.CompleteTaskRequest(snapshot=build.completed(t.instance(), t.definition), task_id=b"short")
    request = rr.CompleteTasksRequest(
        completions=[_complete(build.completed(instance_id, t.definition), holder), broken]
    )
    await t.invalid(t.stubs.claims.CompleteTasks, request, "completions[1].task_id")
    t.expect(await load(t, instance_id) == before, "nothing written")
